#!/usr/bin/env bash
# CPU per viewer, WebRTC (WHEP) beside LL-HLS, in one run: `vshare serve` with WebRTC on and one
# ~1 Mbit/s live stream (a looped clip published over RTMP: H.264 baseline, no B-frames, so it
# is passed through to WebRTC; AAC, transcoded to Opus once). First the server's CPU with no
# viewers (the stream's own cost), then for each N: N LL-HLS viewers (`vshare bench --viewers`)
# and N WebRTC players (`vshare bench --whep-viewers`, str0m clients: ICE, DTLS-SRTP, no
# decoding), one after the other against the same stream. For each it prints the server's CPU
# per viewer-second above the idle cost, and the viewers' figures (WHEP: frames, per-frame delay
# from the server's sender-report clock; LL-HLS: part delivery p50/p99).
#
# Goal (issue 15): ≤ 0.5 ms of server CPU per WHEP viewer-second at N = 200.
#
# Needs: ffmpeg, a built vshare (release: cargo build --release -p vshare).
# Environment: COUNTS="50 200"  DURATION=30s  RAMP=5s  VSHARE=target/release/vshare
#              HTTP_PORT=18093  RTMP_PORT=19393  KEEP=1 (keep the temp dir)
#              UDP_GSO=false (the server's [webrtc] udp_gso: one sendmsg per datagram)
set -euo pipefail

COUNTS=${COUNTS:-"50 200"}
DURATION=${DURATION:-30s}
RAMP=${RAMP:-5s}
VSHARE=${VSHARE:-target/release/vshare}
HTTP_PORT=${HTTP_PORT:-18093}
RTMP_PORT=${RTMP_PORT:-19393}
UDP_GSO=${UDP_GSO:-true}

die() { echo "whep: $*" >&2; exit 1; }
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || die "ffmpeg is missing (apt-get install ffmpeg)"
[ -x "$VSHARE" ] || die "$VSHARE is missing: cargo build --release -p vshare, or set VSHARE="

max=0
for n in $COUNTS; do [ "$n" -gt "$max" ] && max=$n; done
need=$((2 * max + 256))
raise_fd_limit "$need"

WORK=$(mktemp -d /tmp/vshare-whep.XXXXXX)
SERVER_PID=""
PUB_PID=""
cleanup() {
    [ -n "$PUB_PID" ] && kill "$PUB_PID" 2>/dev/null || true
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

TICKS=$(getconf CLK_TCK)
seconds() { case "$1" in *s) echo "${1%s}" ;; *m) echo $(( ${1%m} * 60 )) ;; *) echo "$1" ;; esac; }

echo "making the clip: 640x360 30 fps H.264 baseline ~900 kbit/s + AAC 96 kbit/s, 10 s" >&2
ffmpeg -v error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=10" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
    -c:v libx264 -preset veryfast -profile:v baseline -bf 0 -b:v 900k -maxrate 1M -bufsize 1M \
    -g 30 -pix_fmt yuv420p -c:a aac -b:a 96k -f flv "$WORK/clip.flv"

KEY=$("$VSHARE" keys create --data "$WORK/data" 2>/dev/null | awk '/stream key:/ {print $3}')
[ -n "$KEY" ] || die "could not create a stream key"
# Every viewer comes from this one address: lift the caps.
cat > "$WORK/vshare.toml" <<CONF
[limits]
max_connections = $need
max_connections_per_ip = $need

[webrtc]
enabled = true
udp_port = 0
max_sessions = $need
max_sessions_per_ip = $need
udp_gso = $UDP_GSO
CONF
VSHARE_LOG=warn "$VSHARE" serve --ladder none --data "$WORK/data" --rtmp "127.0.0.1:$RTMP_PORT" \
    --http "127.0.0.1:$HTTP_PORT" --config "$WORK/vshare.toml" > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
wait_port "$HTTP_PORT"
"$VSHARE" publish --file "$WORK/clip.flv" --loop --no-status \
    "rtmp://127.0.0.1:$RTMP_PORT/live/$KEY" > "$WORK/publish.log" 2>&1 &
PUB_PID=$!

ID=""
URL=""
for _ in $(seq 1 100); do
    read -r ID URL < <(curl -s "http://127.0.0.1:$HTTP_PORT/api/v1/streams" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print(next((x["id"] + " " + a["url"] for x in v for a in x.get("attributes", []) if a.get("kind") == "live"), ""))' 2>/dev/null || true) || true
    [ -n "$URL" ] && break
    sleep 0.2
done
[ -n "$URL" ] || die "the stream did not go live: $(tail -3 "$WORK/publish.log")"
WHEP="http://127.0.0.1:$HTTP_PORT/whep/$ID"
sleep 3

idle_s=10
c0=$(cpu_ticks "$SERVER_PID"); sleep "$idle_s"; c1=$(cpu_ticks "$SERVER_PID")
IDLE=$(python3 -c "print(($c1 - $c0) / $TICKS / $idle_s)")
echo "stream $ID (udp_gso $UDP_GSO): the server uses $(python3 -c "print(f'{$IDLE * 1000:.1f}')") ms of CPU per second with no viewers" >&2

RESULTS="$WORK/results.tsv"
printf "viewers\tprotocol\tserver_cpu_ms_per_viewer_s\tabove_idle\tdelivery\terrors\tbench_cpu_s\n" > "$RESULTS"
dur_s=$(seconds "$DURATION")
for n in $COUNTS; do
    # LL-HLS: the server's CPU over the whole run (ramp included), per viewer-second watched.
    c0=$(cpu_ticks "$SERVER_PID"); t0=$(date +%s.%N)
    "$VSHARE" bench --viewers "$n" --duration "$DURATION" --ramp "$RAMP" --json "$URL" \
        > "$WORK/hls-$n.json" 2> "$WORK/hls-$n.err" || echo "whep: LL-HLS bench failed: $(tail -2 "$WORK/hls-$n.err")" >&2
    c1=$(cpu_ticks "$SERVER_PID"); t1=$(date +%s.%N)
    python3 - "$n" "$c0" "$c1" "$t0" "$t1" "$TICKS" "$IDLE" "$WORK/hls-$n.json" >> "$RESULTS" <<'PY'
import json, sys
n, c0, c1, t0, t1, ticks, idle, path = sys.argv[1:]
n = int(n); wall = float(t1) - float(t0); cpu = (int(c1) - int(c0)) / int(ticks)
b = json.load(open(path))
per = cpu * 1000 / (n * wall); above = (cpu - float(idle) * wall) * 1000 / (n * wall)
print(f"{n}\tLL-HLS\t{per:.3f}\t{above:.3f}\tpart p50 {b['p50_latency_ms']:.0f} ms p99 {b['p99_latency_ms']:.0f} ms\t{b['errors']}\t{b['bench_cpu_s']:.1f}")
PY
    tail -1 "$RESULTS" >&2
    # WHEP: the bench measures the server's CPU itself, once every player is in.
    "$VSHARE" bench --whep-viewers "$n" --duration "$DURATION" --ramp "$RAMP" \
        --server-pid "$SERVER_PID" --json "$WHEP" > "$WORK/whep-$n.json" 2> "$WORK/whep-$n.err" \
        || echo "whep: WHEP bench failed: $(tail -2 "$WORK/whep-$n.err")" >&2
    python3 - "$n" "$IDLE" "$WORK/whep-$n.json" "$dur_s" >> "$RESULTS" <<'PY'
import json, sys
n, idle, path, dur = sys.argv[1:]
n = int(n); b = json.load(open(path))
per = b["server_cpu_ms_per_viewer_s"]; above = per - float(idle) * 1000 / n
fps = b["video_frames"] / max(b["playing"], 1) / float(dur)
print(f"{n}\tWHEP\t{per:.3f}\t{above:.3f}\t{b['playing']}/{n} playing, {fps:.0f} fps each, delay p50 {b['p50_delay_ms']:.1f} ms p99 {b['p99_delay_ms']:.1f} ms\t{b['errors']}\t{b['bench_cpu_s']:.1f}")
PY
    tail -1 "$RESULTS" >&2
done

echo
column -t -s $'\t' "$RESULTS"
if [ -n "${OUT:-}" ]; then cp "$RESULTS" "$OUT"; fi
