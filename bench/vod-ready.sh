#!/usr/bin/env bash
# Publisher stop → VOD ready, for a recording of MINUTES minutes (default 10) at ~1 Mbit/s.
# The clip is sent as fast as ffmpeg can (no -re): the time to finish the VOD depends on how much
# was recorded, not on how long it took to arrive. Goal (issue 2): ≤ 1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
bin=${VSHARE_BIN:-target/release/vshare}
[ -x "$bin" ] || cargo build --release --locked -p vshare
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
seconds=$((minutes * 60))
echo "encoding a ${minutes}-minute 360p30 clip…"
ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=size=640x360:rate=30" \
  -f lavfi -i "sine=frequency=1000:sample_rate=44100" -t "$seconds" \
  -c:v libx264 -preset ultrafast -g 30 -b:v 1M -c:a aac -b:a 96k "$work/clip.mp4"
key=$("$bin" keys create --data "$work/data" --quiet)
"$bin" serve --ladder none --data "$work/data" --rtmp 127.0.0.1:0 --http 127.0.0.1:0 >"$work/out" 2>"$work/log" &
for _ in $(seq 100); do grep -q "watch:" "$work/out" 2>/dev/null && break; sleep 0.1; done
rtmp=$(grep -o "rtmp://[0-9.:]*/live" "$work/out")
http=$(grep -o "watch: *http://[0-9.:]*" "$work/out" | grep -o "http://.*")
ffmpeg -hide_banner -loglevel error -i "$work/clip.mp4" -c copy -f flv "$rtmp/$key"
for _ in $(seq 100); do grep -q "VOD ready" "$work/log" && break; sleep 0.1; done
grep "VOD ready" "$work/log" | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'ready_ms=[0-9]*'
curl -s "$http/api/v1/videos" | python3 -c '
import json, sys
v = json.load(sys.stdin)[0]
for a in v["attributes"]:
    print("%s: %.1f MB, %.1f s, %.0f kb/s" % (a["format"], a["size"] / 1e6, a["duration_ms"] / 1000, a["bitrate"] / 1e3))
'
