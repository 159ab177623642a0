#!/usr/bin/env bash
# One command to set up and run vshare on embedded defaults: installs what is missing, builds,
# creates a stream key on first run, and starts `vshare serve` (RTMP :1935, HTTP :8080, ./data).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked -p vshare
bin=target/release/vshare
data=${VSHARE_DATA:-data}
if [ ! -f "$data/vshare.db" ]; then
  mkdir -p "$data"
  key=$("$bin" keys create --data "$data" --name default --quiet)
  echo "Your stream key (shown once): $key"
  echo "  ffmpeg -re -i clip.mp4 -c copy -f flv rtmp://127.0.0.1:1935/live/$key"
  echo "  $bin publish rtmp://127.0.0.1:1935/live/$key --test-pattern"
fi
exec "$bin" serve --data "$data" "$@"
