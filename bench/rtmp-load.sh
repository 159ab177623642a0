#!/usr/bin/env bash
# RTMP ingest load: `vshare serve` and nginx-rtmp (hls on + record all), one after the other,
# under the same N real-time publishers from `vshare bench`. For each server and N it samples
# the server's CPU time (utime+stime of the process tree, /proc/PID/stat) and resident memory
# (VmRSS), and prints CPU-seconds per stream-minute and MB per publisher.
#
# Needs: ffmpeg (clip), nginx + libnginx-mod-rtmp (Debian), a built vshare (release is what you
# want to measure: cargo build --release -p vshare).
#
# Environment: COUNTS="10 50 100"  DURATION=60s  VSHARE=target/release/vshare
#              SERVERS="vshare nginx"  RAMP=5s  KEEP=1 (keep the temp dir)  OUT=results.json
#              CHUNK_SIZE=4096 (the publishers' RTMP chunk size; 128 is ffmpeg's)
#              PUBLISHER=$VSHARE (the vshare binary whose `bench` publishes: keep it fixed to
#              compare two server builds)
#              WORKERS=1 (vshare's runtime threads; nginx here runs one worker process, so
#              both servers get one event loop; 0 = one per core)
set -euo pipefail

COUNTS=${COUNTS:-"10 50 100"}
DURATION=${DURATION:-60s}
RAMP=${RAMP:-5s}
SERVERS=${SERVERS:-"vshare nginx"}
CHUNK_SIZE=${CHUNK_SIZE:-4096}
WORKERS=${WORKERS:-1}
VSHARE=${VSHARE:-target/release/vshare}
PUBLISHER=${PUBLISHER:-$VSHARE}
RTMP_MODULE=${RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
VSHARE_RTMP_PORT=${VSHARE_RTMP_PORT:-19351}
VSHARE_HTTP_PORT=${VSHARE_HTTP_PORT:-18081}
NGINX_PORT=${NGINX_PORT:-19352}

die() { echo "rtmp-load: $*" >&2; exit 1; }
command -v ffmpeg >/dev/null || die "ffmpeg is missing (apt-get install ffmpeg)"
[ -x "$VSHARE" ] || die "$VSHARE is missing: cargo build --release -p vshare, or set VSHARE="
if [[ " $SERVERS " == *" nginx "* ]]; then
    command -v nginx >/dev/null || die "nginx is missing (apt-get install nginx libnginx-mod-rtmp)"
    [ -f "$RTMP_MODULE" ] || die "$RTMP_MODULE is missing (apt-get install libnginx-mod-rtmp)"
fi

WORK=$(mktemp -d /tmp/vshare-rtmp-load.XXXXXX)
chmod 755 "$WORK"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then stop_server; fi
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

TICKS=$(getconf CLK_TCK)
dur_s=$(python3 -c "import sys; s='$DURATION'; print(float(s[:-1])*60 if s.endswith('m') else float(s.rstrip('s')))")

# The process and its descendants (nginx: master + worker).
tree() {
    local p=$1
    echo "$p"
    for c in $(pgrep -P "$p" 2>/dev/null || true); do tree "$c"; done
}

cpu_ticks() {
    local total=0
    for p in $(tree "$1"); do
        [ -r "/proc/$p/stat" ] || continue
        # Fields after the ")" of the command name: utime is the 12th, stime the 13th.
        local t
        t=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
        total=$((total + t))
    done
    echo "$total"
}

rss_kb() {
    local total=0
    for p in $(tree "$1"); do
        local r
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${r:-0}))
    done
    echo "$total"
}

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "nothing listens on port $1"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

echo "making the clip: 640x360 30 fps H.264 ~900 kbit/s + AAC 96 kbit/s, 10 s" >&2
ffmpeg -v error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=10" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
    -c:v libx264 -preset veryfast -b:v 900k -maxrate 1M -bufsize 1M -g 30 -pix_fmt yuv420p \
    -c:a aac -b:a 96k -f flv "$WORK/clip.flv"

start_vshare() {
    local n=$1 dir="$WORK/vshare-$n"
    mkdir -p "$dir"
    : > "$dir/keys"
    for _ in $(seq 1 "$n"); do
        "$VSHARE" keys create --data "$dir/data" 2>/dev/null | awk '/stream key:/ {print $3}' >> "$dir/keys"
    done
    [ "$(wc -l < "$dir/keys")" -eq "$n" ] || die "could not create $n vshare keys"
    # Every publisher comes from this one address: lift the per-address connection cap.
    printf '[limits]\nmax_connections_per_ip = %d\n' "$((n + 16))" > "$dir/vshare.toml"
    VSHARE_LOG=warn "$VSHARE" serve --workers "$WORKERS" --ladder none --data "$dir/data" --rtmp "127.0.0.1:$VSHARE_RTMP_PORT" \
        --http "127.0.0.1:$VSHARE_HTTP_PORT" --config "$dir/vshare.toml" > "$dir/serve.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$VSHARE_RTMP_PORT"
    URL="rtmp://127.0.0.1:$VSHARE_RTMP_PORT/live"
    KEYS="$dir/keys"
}

start_nginx() {
    local n=$1 dir="$WORK/nginx-$n"
    mkdir -p "$dir/logs" "$dir/hls" "$dir/rec"
    chmod 777 "$dir" "$dir/logs" "$dir/hls" "$dir/rec"
    seq -f "stream%g" 1 "$n" > "$dir/keys"
    cat > "$dir/nginx.conf" <<EOF
load_module $RTMP_MODULE;
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
rtmp {
    server {
        listen 127.0.0.1:$NGINX_PORT;
        chunk_size 4096;
        application live {
            live on;
            record all;
            record_path $dir/rec;
            record_unique on;
            hls on;
            hls_path $dir/hls;
            hls_fragment 2s;
            hls_playlist_length 10s;
        }
    }
}
EOF
    nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" &
    SERVER_PID=$!
    wait_port "$NGINX_PORT"
    URL="rtmp://127.0.0.1:$NGINX_PORT/live"
    KEYS="$dir/keys"
}

RESULTS="$WORK/results.tsv"
printf "server\tpublishers\tkept_real_time\tcpu_s\tcpu_s_per_stream_min\trss_idle_mb\trss_peak_mb\tmb_per_publisher\tbench_cpu_s\n" > "$RESULTS"

for n in $COUNTS; do
    for server in $SERVERS; do
        "start_$server" "$n"
        sleep 1
        idle_kb=$(rss_kb "$SERVER_PID")
        cpu0=$(cpu_ticks "$SERVER_PID")
        peak_kb=$idle_kb
        "$PUBLISHER" bench "$URL" --keys "$KEYS" --publishers "$n" --duration "$DURATION" \
            --input "$WORK/clip.flv" --ramp "$RAMP" --chunk-size "$CHUNK_SIZE" --json > "$WORK/bench-$server-$n.json" 2> "$WORK/bench-$server-$n.err" &
        bench_pid=$!
        while kill -0 "$bench_pid" 2>/dev/null; do
            r=$(rss_kb "$SERVER_PID")
            [ "$r" -gt "$peak_kb" ] && peak_kb=$r
            sleep 1
        done
        wait "$bench_pid" || echo "rtmp-load: bench against $server with $n publishers failed: $(tail -2 "$WORK/bench-$server-$n.err")" >&2
        cpu1=$(cpu_ticks "$SERVER_PID")
        stop_server
        python3 - "$server" "$n" "$cpu0" "$cpu1" "$TICKS" "$idle_kb" "$peak_kb" "$dur_s" "$WORK/bench-$server-$n.json" >> "$RESULTS" <<'EOF'
import json, sys
server, n, c0, c1, ticks, idle, peak, dur, path = sys.argv[1:]
n = int(n); cpu = (int(c1) - int(c0)) / int(ticks); dur = float(dur)
try:
    b = json.load(open(path))
    kept, bench_cpu = f"{b['kept_real_time']}/{b['publishers']}", b["bench_cpu_s"]
except Exception:
    kept, bench_cpu = "bench failed", float("nan")
idle_mb, peak_mb = int(idle) / 1024, int(peak) / 1024
print(f"{server}\t{n}\t{kept}\t{cpu:.1f}\t{cpu / (n * dur / 60):.3f}\t{idle_mb:.1f}\t{peak_mb:.1f}\t{(peak_mb - idle_mb) / n:.2f}\t{bench_cpu:.1f}")
EOF
        tail -1 "$RESULTS" >&2
    done
done

echo
column -t -s $'\t' "$RESULTS"
if [ -n "${OUT:-}" ]; then cp "$RESULTS" "$OUT"; fi
