#!/usr/bin/env bash
# LL-HLS viewers on one live server: `vshare serve` with one ~1 Mbit/s live stream (published
# by `vshare publish --loop`), and `vshare bench --viewers N` for each N in turn against its
# playlist. For each N it prints the part delivery latency (p50/p99, from when a viewer learnt
# the part existed to its last byte), errors, and the server's CPU-seconds (utime+stime from
# /proc/PID/stat); then the largest N whose p99 is within one part target with no errors.
#
# Needs: ffmpeg (the clip), a built vshare (release is what you want to measure:
# cargo build --release -p vshare).
#
# With VIA=nginx the viewers go through nginx as a caching reverse proxy
# (docs/nginx-live-cache.conf, as docs/deployment.md shows it), and the table adds the requests
# per part that reached the server (its vshare_live_requests_total{file="part"}).
#
# Environment: COUNTS="250 500 1000 2000"  DURATION=30s  RAMP=5s  VSHARE=target/release/vshare
#              PART_TARGET_MS=333  SEGMENT_TARGET_MS=2000  KEEP=1 (keep the temp dir)
#              OUT=results.tsv  HTTP_PORT=18091  RTMP_PORT=19391  VIA=nginx  NGINX_PORT=18092
#              WORKERS=n (the server's --workers; unset: its default, one per core)
#
# The `workers_cpu_s` column gives each of the server's runtime threads' CPU-seconds
# for that N: how evenly the server spreads its viewers over the cores it has.
set -euo pipefail

COUNTS=${COUNTS:-"250 500 1000 2000"}
DURATION=${DURATION:-30s}
RAMP=${RAMP:-5s}
VSHARE=${VSHARE:-target/release/vshare}
PART_TARGET_MS=${PART_TARGET_MS:-333}
SEGMENT_TARGET_MS=${SEGMENT_TARGET_MS:-2000}
HTTP_PORT=${HTTP_PORT:-18091}
RTMP_PORT=${RTMP_PORT:-19391}
NGINX_PORT=${NGINX_PORT:-18092}
VIA=${VIA:-}
WORKERS=${WORKERS:-}

die() { echo "viewers: $*" >&2; exit 1; }
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || die "ffmpeg is missing (apt-get install ffmpeg)"
[ -x "$VSHARE" ] || die "$VSHARE is missing: cargo build --release -p vshare, or set VSHARE="
[ -z "$VIA" ] || [ "$VIA" = nginx ] || die "VIA is nginx or nothing"
[ -z "$VIA" ] || [ -x /usr/sbin/nginx ] || die "nginx is missing (apt-get install nginx)"

max=0
for n in $COUNTS; do [ "$n" -gt "$max" ] && max=$n; done
# Each viewer holds up to two connections (the blocking reload and the hinted part).
need=$((2 * max + 256))
raise_fd_limit "$need"

WORK=$(mktemp -d /tmp/vshare-viewers.XXXXXX)
# Started as root, nginx's workers run as `nobody`: they must reach its directory.
chmod 755 "$WORK"
SERVER_PID=""
PUB_PID=""
NGINX_PID=""
cleanup() {
    [ -n "$PUB_PID" ] && kill "$PUB_PID" 2>/dev/null || true
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

TICKS=$(getconf CLK_TCK)

echo "making the clip: 640x360 30 fps H.264 ~900 kbit/s + AAC 96 kbit/s, 10 s" >&2
ffmpeg -v error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=10" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
    -c:v libx264 -preset veryfast -b:v 900k -maxrate 1M -bufsize 1M -g 30 -pix_fmt yuv420p \
    -c:a aac -b:a 96k -f flv "$WORK/clip.flv"

KEY=$("$VSHARE" keys create --data "$WORK/data" 2>/dev/null | awk '/stream key:/ {print $3}')
[ -n "$KEY" ] || die "could not create a stream key"
# Every viewer comes from this one address: lift the connection caps.
cat > "$WORK/vshare.toml" <<CONF
[live]
part_target_ms = $PART_TARGET_MS
segment_target_ms = $SEGMENT_TARGET_MS

[limits]
max_connections = $need
max_connections_per_ip = $need
CONF
VSHARE_LOG=warn "$VSHARE" serve ${WORKERS:+--workers "$WORKERS"} --ladder none --data "$WORK/data" --rtmp "127.0.0.1:$RTMP_PORT" \
    --http "127.0.0.1:$HTTP_PORT" --config "$WORK/vshare.toml" > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
wait_port "$HTTP_PORT"
"$VSHARE" publish --file "$WORK/clip.flv" --loop --no-status \
    "rtmp://127.0.0.1:$RTMP_PORT/live/$KEY" > "$WORK/publish.log" 2>&1 &
PUB_PID=$!

URL=""
for _ in $(seq 1 100); do
    URL=$(curl -s "http://127.0.0.1:$HTTP_PORT/api/v1/streams" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print(next((a["url"] for x in v for a in x.get("attributes", []) if a.get("kind") == "live"), ""))' 2>/dev/null || true)
    [ -n "$URL" ] && break
    sleep 0.2
done
[ -n "$URL" ] || die "the stream did not go live: $(tail -3 "$WORK/publish.log")"
# A few parts in the playlist before the first viewers come.
sleep 3
echo "stream: $URL (part target $PART_TARGET_MS ms)" >&2
ORIGIN="http://127.0.0.1:$HTTP_PORT"
if [ "$VIA" = nginx ]; then
    mkdir -p "$WORK/nginx"
    sed -e "s#@DIR@#$WORK/nginx#g" -e "s#@LISTEN@#127.0.0.1:$NGINX_PORT#" \
        -e "s#@ORIGINS@#server 127.0.0.1:$HTTP_PORT;#" \
        "$(dirname "$0")/../docs/nginx-live-cache.conf" > "$WORK/nginx/nginx.conf"
    /usr/sbin/nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
    NGINX_PID=$!
    wait_port "$NGINX_PORT"
    URL=${URL/$ORIGIN/http://127.0.0.1:$NGINX_PORT}
    echo "through nginx: $URL" >&2
fi
origin_parts() {
    curl -s "$ORIGIN/metrics" | awk '/^vshare_live_requests_total\{file="part"\}/ {print $2 + 0; f = 1} END {if (!f) print 0}'
}

RESULTS="$WORK/results.tsv"
printf "viewers\tparts\tp50_ms\tp99_ms\tmax_ms\terrors\tMB\tserver_cpu_s\tserver_cpu_per_viewer_min_ms\tbench_cpu_s\torigin_reqs_per_part\tok\tworkers_cpu_s\n" > "$RESULTS"
# Each runtime worker thread's CPU ticks, "tid:ticks" per thread.
worker_ticks() {
    for t in /proc/"$SERVER_PID"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = tokio-rt-worker ] || continue
        echo "$(basename "$t"):$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
    done
}
for n in $COUNTS; do
    parts0=$(origin_parts)
    cpu0=$(cpu_ticks "$SERVER_PID")
    w0=$(worker_ticks | tr '\n' ' ')
    "$VSHARE" bench --viewers "$n" --duration "$DURATION" --ramp "$RAMP" --json "$URL" \
        > "$WORK/bench-$n.json" 2> "$WORK/bench-$n.err" \
        || echo "viewers: the bench with $n viewers failed: $(tail -2 "$WORK/bench-$n.err")" >&2
    cpu1=$(cpu_ticks "$SERVER_PID")
    parts1=$(origin_parts)
    w1=$(worker_ticks | tr '\n' ' ')
    python3 - "$n" "$cpu0" "$cpu1" "$TICKS" "$WORK/bench-$n.json" "$parts0" "$parts1" "$w0" "$w1" >> "$RESULTS" <<'PY'
import json, sys
n, c0, c1, ticks, path, p0, p1, w0, w1 = sys.argv[1:]
n = int(n); cpu = (int(c1) - int(c0)) / int(ticks)
before = dict(x.split(":") for x in w0.split())
# The runtime's threads that worked (its blocking threads share the name and mostly idle).
spent = [(int(v) - int(before.get(k, 0))) / int(ticks) for k, v in (x.split(":") for x in w1.split())]
workers = "/".join(f"{s:.1f}" for s in sorted(spent, reverse=True) if s >= 0.1) or "-"
try:
    b = json.load(open(path))
except Exception:
    print(f"{n}\t-\t-\t-\t-\tbench failed\t-\t{cpu:.1f}\t-\t-\t-\tno\t{workers}")
    sys.exit()
minutes = b["wall_s"] / 60
ok = b["errors"] == 0 and b["parts"] > 0 and b["p99_latency_ms"] <= b["part_target_ms"]
per_part = (float(p1) - float(p0)) / max(b["distinct_parts"], 1)
print(f"{n}\t{b['parts']}\t{b['p50_latency_ms']:.1f}\t{b['p99_latency_ms']:.1f}\t{b['max_latency_ms']:.0f}\t"
      f"{b['errors']}\t{b['bytes'] / 1e6:.0f}\t{cpu:.1f}\t{cpu * 1000 / (n * minutes):.1f}\t"
      f"{b['bench_cpu_s']:.1f}\t{per_part:.2f}\t{'yes' if ok else 'no'}\t{workers}")
PY
    tail -1 "$RESULTS" >&2
done

echo
column -t -s $'\t' "$RESULTS"
best=$(awk -F'\t' 'NR > 1 && $12 == "yes" { if ($1 > b) b = $1 } END { print b + 0 }' "$RESULTS")
echo "largest N with p99 within one part target ($PART_TARGET_MS ms) and no errors: $best"
if [ -n "${OUT:-}" ]; then cp "$RESULTS" "$OUT"; fi
