#!/usr/bin/env bash
# The upload protocol against RTMP with the same media: N real-time publishers of the test
# pattern (640x360, 30 fps, x264 veryfast/zerolatency at a fixed 1 Mbit/s, AAC), first over
# `--protocol upload` (the bitrate pinned: start = max), then over RTMP, each against a fresh
# `vshare serve`. Prints the upload's bytes on the wire per media byte (WebSocket payloads and
# frame headers; TCP/IP headers not counted) and the server's CPU-seconds per stream-minute for
# each protocol (utime+stime from /proc/PID/stat).
#
# Environment: N=3  DURATION=30  VSHARE=target/release/vshare  KEEP=1
set -euo pipefail
N=${N:-3}
DURATION=${DURATION:-30}
VSHARE=${VSHARE:-target/release/vshare}
[ -x "$VSHARE" ] || { echo "upload bench: build first: cargo build --release -p vshare" >&2; exit 1; }
WORK=$(mktemp -d /tmp/vshare-upload-bench.XXXXXX)
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    [ -z "${KEEP:-}" ] && rm -rf "$WORK" || echo "kept $WORK" >&2
}
trap cleanup EXIT
TICKS=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

start_server() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    "$VSHARE" serve --data "$dir" --http 127.0.0.1:0 --rtmp 127.0.0.1:0 --no-proxy --ladder none \
        > "$dir/serve.out" 2> "$dir/serve.log" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q "watch:" "$dir/serve.out" 2>/dev/null && break
        sleep 0.1
    done
    HTTP=$(grep -o 'watch: *http://[0-9.:]*' "$dir/serve.out" | awk '{print $2}')
    RTMP=$(grep -o 'publish: *rtmp://[0-9.:]*/live' "$dir/serve.out" | awk '{print $2}')
}

stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

run_protocol() {
    local proto=$1 dir=$WORK/$1
    start_server "$proto"
    local keys=()
    for i in $(seq "$N"); do keys+=("$("$VSHARE" keys create --quiet --data "$dir")"); done
    local before pids=()
    before=$(cpu_ticks "$SERVER_PID")
    for i in $(seq "$N"); do
        if [ "$proto" = upload ]; then
            "$VSHARE" publish --protocol upload "$HTTP" --key "${keys[$((i-1))]}" --test-pattern \
                --duration "${DURATION}s" --bitrate 1000k --max-bitrate 1000k --json --vod-wait 5 \
                > "$dir/pub$i.json" 2> "$dir/pub$i.log" &
        else
            "$VSHARE" publish "$RTMP/${keys[$((i-1))]}" --test-pattern --duration "${DURATION}s" \
                --bitrate 1000k --size 640x360 --fps 30 --json --no-status \
                > "$dir/pub$i.json" 2> "$dir/pub$i.log" &
        fi
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    sleep 2
    local after
    after=$(cpu_ticks "$SERVER_PID")
    stop_server
    python3 - "$proto" "$N" "$DURATION" "$TICKS" "$before" "$after" "$dir" <<'PY'
import json, sys, glob
proto, n, dur, ticks, before, after, d = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
cpu_s = (after - before) / ticks
per_stream_min = cpu_s / (n * dur / 60)
line = f"{proto:6s}  {n} publishers x {dur:.0f} s  server CPU {cpu_s:.2f} s  = {per_stream_min:.3f} CPU-s per stream-minute"
media = wire = hdr = 0
for f in glob.glob(f"{d}/pub*.json"):
    t = open(f).read(); s = json.loads(t[t.index("{"):])
    if proto == "upload":
        media += s["media_bytes"]; wire += s["wire_bytes"]; hdr += s["ws_header_bytes"]
    else:
        media += s["published"]["bytes"]
per_mb = cpu_s / (media / 1e6)
line += f"\n        {media/1e6:.1f} MB of media: {per_mb * 1000:.1f} CPU-ms per media MB"
if proto == "upload":
    line += f"\n        wire/media = {(wire + hdr) / media:.4f}  (payloads {wire / media:.4f}, WebSocket headers {hdr / media:.4f})"
print(line)
with open(f"{d}/../{proto}.cpu", "w") as out:
    out.write(f"{per_stream_min} {per_mb}")
PY
}

run_protocol upload
run_protocol rtmp
python3 -c "
u = [float(x) for x in open('$WORK/upload.cpu').read().split()]
r = [float(x) for x in open('$WORK/rtmp.cpu').read().split()]
print(f'upload / RTMP: server CPU per stream {u[0]/r[0]:.2f}, per media byte {u[1]/r[1]:.2f}')"
