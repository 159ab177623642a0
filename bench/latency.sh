#!/usr/bin/env bash
# Server-added latency: a frame arrives at ingest → the part holding it is listed in the LL-HLS
# playlist (the part's first frame, so the worst frame of each part). One real-time ffmpeg RTMP
# publisher (360p30, ~1 Mbit/s, keyframe every second) for DURATION seconds (default 60).
# Goal (issue 2): p99 ≤ part duration + 50 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-60}
bin=${VSHARE_BIN:-target/release/vshare}
[ -x "$bin" ] || cargo build --release --locked -p vshare
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
key=$("$bin" keys create --data "$work/data" --quiet)
"$bin" serve --ladder none --data "$work/data" --rtmp 127.0.0.1:0 --http 127.0.0.1:0 >"$work/out" 2>"$work/log" &
for _ in $(seq 100); do grep -q "watch:" "$work/out" 2>/dev/null && break; sleep 0.1; done
rtmp=$(grep -o "rtmp://[0-9.:]*/live" "$work/out")
http=$(grep -o "watch: *http://[0-9.:]*" "$work/out" | grep -o "http://.*")
ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=640x360:rate=30" \
  -f lavfi -i "sine=frequency=1000:sample_rate=44100" -t "$duration" \
  -c:v libx264 -preset ultrafast -tune zerolatency -g 30 -b:v 1M -c:a aac -b:a 96k \
  -f flv "$rtmp/$key"
playlist=$(curl -s $http/api/v1/videos | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
echo "part durations in the playlist (s):"
curl -s "$http/live/$playlist/index.m3u8" | grep -o 'PART:DURATION=[0-9.]*' | cut -d= -f2 | sort | uniq -c
python3 bench/quantiles.py $http/metrics vshare_part_publish_latency_seconds
