#!/usr/bin/env bash
# The CPU a live stream's posters cost: one real-time RTMP publish (ffmpeg -re) of SECONDS
# (default 60) of SIZE (default 1280x720) at 30 fps, keyframe every 2 s, into a server with no
# ladder, with posters off, on (the default: every 5 s, 640 px, sprite tile every 2 s) and on
# every second. Reports the server process's CPU seconds (utime + stime from /proc) from before
# the publish until its VOD is ready, and the posters it made (vshare_posters_total).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
size=${2:-1280x720}
bin=${VSHARE_BIN:-target/release/vshare}
[ -x "$bin" ] || cargo build --release --locked -p vshare
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
tck=$(getconf CLK_TCK)
echo "encoding a ${seconds}-second ${size} clip…"
ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=size=$size:rate=30" \
  -f lavfi -i "sine=frequency=1000:sample_rate=44100" -t "$seconds" \
  -c:v libx264 -preset veryfast -g 60 -b:v 2500k -c:a aac -b:a 96k "$work/clip.mp4"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {
  local name=$1 conf=$2 data="$work/data-$1"
  printf '%b' "$conf" >"$work/$name.toml"
  local key
  key=$("$bin" keys create --data "$data" --quiet)
  "$bin" serve --ladder none --config "$work/$name.toml" --data "$data" \
    --rtmp 127.0.0.1:0 --http 127.0.0.1:0 >"$work/$name.out" 2>"$work/$name.log" &
  local pid=$!
  for _ in $(seq 100); do grep -q "watch:" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  local rtmp http
  rtmp=$(grep -o "rtmp://[0-9.:]*/live" "$work/$name.out")
  http=$(grep -o "watch: *http://[0-9.:]*" "$work/$name.out" | grep -o "http://.*")
  local before after
  before=$(cpu_ticks "$pid")
  ffmpeg -hide_banner -loglevel error -re -i "$work/clip.mp4" -c copy -f flv "$rtmp/$key"
  for _ in $(seq 300); do grep -q "VOD ready" "$work/$name.log" && break; sleep 0.1; done
  after=$(cpu_ticks "$pid")
  local posters
  posters=$(curl -s "$http/metrics" | awk '/^vshare_posters_total /{print $2}')
  local id sizes=""
  id=$(curl -s "$http/api/v1/videos" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  for f in poster.jpg sprite.jpg; do
    sizes="$sizes $f=$(curl -s -o /dev/null -w '%{http_code}:%{size_download}' "$http/vod/$id/$f")"
  done
  # The poster thread's own CPU time, as it logged it when the stream ended.
  local thread
  thread=$(sed 's/\x1b\[[0-9;]*m//g' "$work/$name.log" | grep "pictures made" | grep -o 'cpu_ms=[0-9]*' | cut -d= -f2 || true)
  python3 - "$name" "$before" "$after" "$tck" "$seconds" "${posters:-0}" "${thread:-0}" <<'PY'
import sys
name, before, after, tck, seconds, posters, thread_ms = sys.argv[1:]
cpu = (int(after) - int(before)) / int(tck)
s = int(seconds)
print(f"{name:>9}: server {cpu:6.2f} CPU-s for {s} s live = {100 * cpu / s:5.2f} % of a core; "
      f"posters {posters}; poster thread {int(thread_ms) / 1000:5.2f} CPU-s = {int(thread_ms) / 10 / s:5.2f} % of a core")
PY
  echo "           stored (HTTP status:bytes):$sizes"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

run off "[posters]\nenabled = false\n"
run default "[posters]\nenabled = true\n"
run every-1s "[posters]\nlive_interval_s = 1\nsprite_interval_s = 1\n"
run no-sprite "[posters]\nsprite_interval_s = 0\n"
