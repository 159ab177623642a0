#!/usr/bin/env bash
# Requests per CPU-second of the live server's HTTP side against nginx serving the same objects
# as static files, side by side in one run, both with one worker.
#
# A real-time 1 Mbit/s RTMP stream (ffmpeg) goes live on `vshare serve --workers 1`; one of its
# parts (~40 KB) and its media playlist are copied into a directory that nginx (one worker,
# sendfile) serves. wrk then runs against each server in turn:
#   part   — the part only;
#   mix    — every second request a playlist reload with `_HLS_msn`/`_HLS_part` naming the part
#            (vshare answers it through its blocking-reload path; nginx serves the static file).
# For each run the server's CPU time (utime+stime of the process tree, /proc/PID/stat) is
# sampled around wrk: requests ÷ CPU-seconds is the figure (CPU time, not wall time, so a busy
# machine moves it less than requests per second).
#
# Needs: ffmpeg, nginx, wrk (apt-get install -y ffmpeg nginx wrk), a release build
# (cargo build --release -p vshare).
# Environment: VSHARE=target/release/vshare  DURATION=2s ROUNDS=5 (wrk runs per server and load,
#              each on a freshly listed part)  CONNECTIONS=200  THREADS=1
set -euo pipefail
cd "$(dirname "$0")/.."

VSHARE=${VSHARE:-target/release/vshare}
DURATION=${DURATION:-2s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-200}
THREADS=${THREADS:-1}
NGINX_PORT=${NGINX_PORT:-18095}

die() { echo "live-http: $*" >&2; exit 1; }
for t in ffmpeg nginx wrk curl python3; do
    command -v "$t" >/dev/null || die "$t is missing"
done
[ -x "$VSHARE" ] || die "$VSHARE is missing: cargo build --release -p vshare"

WORK=$(mktemp -d /tmp/vshare-live-http.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

TICKS=$(getconf CLK_TCK)
tree() {
    echo "$1"
    for c in $(pgrep -P "$1" 2>/dev/null || true); do tree "$c"; done
}
cpu_ticks() {
    local total=0
    for p in $(tree "$1"); do
        [ -r "/proc/$p/stat" ] || continue
        local f
        f=$(sed 's/.*) //' "/proc/$p/stat")
        total=$((total + $(echo "$f" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

# The stream.
key=$("$VSHARE" keys create --data "$WORK/data" --quiet)
printf '[limits]\nmax_connections_per_ip = %d\n' "$((CONNECTIONS + 64))" > "$WORK/vshare.toml"
VSHARE_LOG=warn "$VSHARE" serve --workers 1 --ladder none --data "$WORK/data" --config "$WORK/vshare.toml" \
    --rtmp 127.0.0.1:0 --http 127.0.0.1:0 > "$WORK/out" 2> "$WORK/log" &
VSHARE_PID=$!
PIDS+=("$VSHARE_PID")
for _ in $(seq 100); do grep -q "watch:" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
rtmp=$(grep -o "rtmp://[0-9.:]*/live" "$WORK/out") || die "vshare did not start: $(cat "$WORK/log")"
http=$(grep -o "watch: *http://[0-9.:]*" "$WORK/out" | grep -o "http://.*")
ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=640x360:rate=30" \
    -f lavfi -i "sine=frequency=1000:sample_rate=44100" \
    -c:v libx264 -preset ultrafast -tune zerolatency -g 30 -b:v 1M -maxrate 1M -bufsize 1M \
    -c:a aac -b:a 96k -f flv "$rtmp/$key" &
PIDS+=("$!")

# The last complete part the playlist lists, once the stream has a few segments.
id=""
for _ in $(seq 100); do
    id=$(curl -s "$http/api/v1/videos" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v[0]["id"] if v else "")' 2>/dev/null || true)
    [ -n "$id" ] && curl -s "$http/live/$id/index.m3u8" | grep -q "seg2.m4s" && break
    sleep 0.2
done
[ -n "$id" ] || die "the stream did not go live"
# The newest complete part the playlist lists, and a copy of it (and of the playlist) for nginx.
# Picked again before each run: a real viewer fetches a part within a second of its listing, and
# a part leaves the playlist after a few segments.
mkdir -p "$WORK/www/live/$id" "$WORK/nginx/logs"
pick_part() {
    local playlist
    playlist=$(curl -s "$http/live/$id/index.m3u8")
    part=$(echo "$playlist" | grep '^#EXT-X-PART:' | grep -o 'URI="part[0-9]*\.[0-9]*\.m4s"' | tail -1 | cut -d'"' -f2)
    [ -n "$part" ] || die "no part in the playlist"
    msn=$(echo "$part" | sed 's/part\([0-9]*\)\.\([0-9]*\)\.m4s/\1/')
    idx=$(echo "$part" | sed 's/part\([0-9]*\)\.\([0-9]*\)\.m4s/\2/')
    curl -s -o "$WORK/www/live/$id/$part" "$http/live/$id/$part"
    echo "$playlist" > "$WORK/www/live/$id/index.m3u8"
    chmod -R a+rX "$WORK/www"
    size=$(stat -c %s "$WORK/www/live/$id/$part")
    # wrk's mix: a part, then a playlist reload naming that part.
    cat > "$WORK/mix.lua" <<EOF
local n = 0
request = function()
    n = n + 1
    if n % 2 == 0 then
        return wrk.format("GET", "/live/$id/index.m3u8?_HLS_msn=$msn&_HLS_part=$idx")
    end
    return wrk.format("GET", "/live/$id/$part")
end
EOF
}
pick_part

# nginx serves the same bytes as static files.
cat > "$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types { video/iso.segment m4s; application/vnd.apple.mpegurl m3u8; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
    }
}
EOF
nginx -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/live/$id/$part" && break; sleep 0.1; done


# Short rounds, each on a freshly listed part, summed per server and load.
ROUNDS_FILE="$WORK/rounds.tsv"
: > "$ROUNDS_FILE"
run() {
    local name=$1 pid=$2 base=$3 load=$4
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION")
    [ "$load" = mix ] && args+=(-s "$WORK/mix.lua")
    local before after out requests failed
    before=$(cpu_ticks "$pid")
    out=$(wrk "${args[@]}" "$base/live/$id/$part" 2>&1)
    after=$(cpu_ticks "$pid")
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    failed=$(echo "$out" | awk '/Non-2xx/ {n += $NF} /Socket errors/ {for (i = 3; i <= NF; i += 2) n += $(i + 1)} END {print n + 0}')
    printf "%s\t%s\t%s\t%s\t%s\n" "$name" "$load" "${requests:-0}" "$((after - before))" "$failed" >> "$ROUNDS_FILE"
}
echo "wrk -t$THREADS -c$CONNECTIONS, $ROUNDS rounds of $DURATION per server and load" >&2
for load in part mix; do
    for _ in $(seq "$ROUNDS"); do
        pick_part
        run vshare "$VSHARE_PID" "$http" "$load"
        run nginx "$NGINX_PID" "http://127.0.0.1:$NGINX_PORT" "$load"
    done
done
python3 - "$ROUNDS_FILE" "$TICKS" "$size" <<'PY'
import sys
from collections import defaultdict
path, hz, size = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tot = defaultdict(lambda: [0, 0, 0])
for line in open(path):
    name, load, req, ticks, failed = line.split()
    t = tot[(name, load)]
    t[0] += int(req); t[1] += int(ticks); t[2] += int(failed)
print(f"(last part: {size} bytes)")
print("server\tload\trequests\tfailed\tcpu_s\trequests_per_cpu_s")
per = {}
for (name, load), (req, ticks, failed) in tot.items():
    cpu = ticks / hz
    per[(name, load)] = req / cpu if cpu else 0
    print(f"{name}\t{load}\t{req}\t{failed}\t{cpu:.2f}\t{per[(name, load)]:.0f}")
for load in ("part", "mix"):
    if per.get(("nginx", load)):
        print(f"ratio vshare/nginx ({load}): {per[('vshare', load)] / per[('nginx', load)]:.2f}")
PY
