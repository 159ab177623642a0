#!/usr/bin/env bash
# What a live server in its own process costs per stream: memory (VmRSS of the live server with
# N streams against the same process idle) and CPU-seconds per stream-minute, with the hand-off's
# bytes against the media it carried.
#
# A video server (`--roles video --live-push`) and a live server (`--roles live --live-listen`)
# share one data directory; N real-time publishers (`vshare bench`, a 1 Mbit/s 640x360 clip,
# 2-s segments) publish to the video server, which pushes every stream to the live server.
#
# Needs: ffmpeg, a release build (cargo build --release -p vshare).
# Environment: COUNTS="10 50"  DURATION=30s  RAMP=5s  VSHARE=target/release/vshare
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS=${COUNTS:-"10 50"}
DURATION=${DURATION:-30s}
RAMP=${RAMP:-5s}
VSHARE=${VSHARE:-target/release/vshare}

die() { echo "live-tier: $*" >&2; exit 1; }
command -v ffmpeg >/dev/null || die "ffmpeg is missing"
[ -x "$VSHARE" ] || die "$VSHARE is missing: cargo build --release -p vshare"

WORK=$(mktemp -d /tmp/vshare-live-tier.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

TICKS=$(getconf CLK_TCK)
dur_s=$(python3 -c "import sys; s='$DURATION'; print(float(s[:-1])*60 if s.endswith('m') else float(s.rstrip('s')))")
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_line() {
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    die "no \"$2\" in $1: $(tail -3 "$1")"
}

echo "making the clip: 640x360 30 fps H.264 ~900 kbit/s + AAC 96 kbit/s, 10 s" >&2
ffmpeg -v error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=10" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
    -c:v libx264 -preset veryfast -b:v 900k -maxrate 1M -bufsize 1M -g 30 -pix_fmt yuv420p \
    -c:a aac -b:a 96k -f flv "$WORK/clip.flv"

# mb_per_stream divides the whole rise over idle by N, so it carries what the first stream
# costs once (buffers, runtime); mb_per_added_stream is the rise from the previous N's, per
# stream added: what one more stream costs.
printf "streams\tlive_rss_idle_mb\tlive_rss_peak_mb\tmb_per_stream\tmb_per_added_stream\tlive_cpu_s_per_stream_min\thandoff_bytes_per_media_byte\tkept_real_time\n"
prev="0 0"
for n in $COUNTS; do
    dir="$WORK/run-$n"
    mkdir -p "$dir"
    : > "$dir/keys"
    for _ in $(seq 1 "$n"); do
        "$VSHARE" keys create --data "$dir/data" --quiet >> "$dir/keys"
    done
    secret=$(head -c 24 /dev/urandom | base64)
    handoff=$(free_port)
    printf '[limits]\nmax_connections_per_ip = %d\n' "$((n + 16))" > "$dir/vshare.toml"
    VSHARE_LOG=warn VSHARE_LIVE_HANDOFF_SECRET=$secret "$VSHARE" serve --roles live \
        --live-listen "127.0.0.1:$handoff" --data "$dir/data" --config "$dir/vshare.toml" \
        --http 127.0.0.1:0 > "$dir/live.out" 2> "$dir/live.log" &
    live_pid=$!
    PIDS+=("$live_pid")
    wait_line "$dir/live.out" "watch:"
    VSHARE_LOG=warn VSHARE_LIVE_HANDOFF_SECRET=$secret "$VSHARE" serve --roles video --ladder none \
        --live-push "tcp://127.0.0.1:$handoff" --data "$dir/data" --config "$dir/vshare.toml" \
        --rtmp 127.0.0.1:0 --http 127.0.0.1:0 > "$dir/video.out" 2> "$dir/video.log" &
    video_pid=$!
    PIDS+=("$video_pid")
    wait_line "$dir/video.out" "publish:"
    rtmp=$(grep -o "rtmp://[0-9.:]*/live" "$dir/video.out")
    video_http=$(grep -o "watch: *http://[0-9.:]*" "$dir/video.out" | grep -o "http://.*")
    sleep 1
    idle_kb=$(rss_kb "$live_pid")
    cpu0=$(cpu_ticks "$live_pid")
    peak_kb=$idle_kb
    "$VSHARE" bench "$rtmp" --keys "$dir/keys" --publishers "$n" --duration "$DURATION" \
        --input "$WORK/clip.flv" --ramp "$RAMP" --json > "$dir/bench.json" 2> "$dir/bench.err" &
    bench_pid=$!
    while kill -0 "$bench_pid" 2>/dev/null; do
        r=$(rss_kb "$live_pid")
        [ "$r" -gt "$peak_kb" ] && peak_kb=$r
        sleep 1
    done
    wait "$bench_pid" || die "bench failed: $(tail -2 "$dir/bench.err")"
    cpu1=$(cpu_ticks "$live_pid")
    curl -s "$video_http/metrics" > "$dir/metrics"
    python3 - "$n" "$idle_kb" "$peak_kb" "$cpu0" "$cpu1" "$TICKS" "$dur_s" "$dir/bench.json" "$dir/metrics" "$dir/data" $prev <<'PY'
import json, os, sys
n, idle, peak, c0, c1, hz, dur, bench, metrics, data, prev_n, prev_rise = sys.argv[1:]
n, dur = int(n), float(dur)
cpu = (int(c1) - int(c0)) / int(hz)
sent = sum(float(l.split()[-1]) for l in open(metrics)
           if l.startswith("vshare_live_handoff_bytes_total"))
media = 0
for root, _, files in os.walk(os.path.join(data, "media")):
    media += sum(os.path.getsize(os.path.join(root, f)) for f in files
                 if f.endswith(".m4s") or f.startswith("init"))
b = json.load(open(bench))
idle_mb, peak_mb = int(idle) / 1024, int(peak) / 1024
ratio = sent / media if media else float("nan")
rise = peak_mb - idle_mb
added = (rise - float(prev_rise)) / (n - int(prev_n)) if n > int(prev_n) else float("nan")
print(f"{n}\t{idle_mb:.1f}\t{peak_mb:.1f}\t{rise / n:.2f}\t{added:.2f}\t{cpu / (n * dur / 60):.3f}\t{ratio:.2f}\t{b['kept_real_time']}/{b['publishers']}")
PY
    prev="$n $(python3 -c "print(($peak_kb - $idle_kb) / 1024)")"
    kill "$video_pid" "$live_pid" 2>/dev/null || true
    wait "$video_pid" "$live_pid" 2>/dev/null || true
done
