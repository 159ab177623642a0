#!/usr/bin/env bash
# Glass-to-glass latency (issues 6, 15): the studio page encodes a canvas with the wall clock
# burnt in, over the upload protocol, to `vshare serve` on loopback (WebRTC on); one page plays
# the stream with hls.js (LL-HLS) and one over WebRTC (WHEP), at the same time, and each reads
# the clock back from every displayed frame. Headless Chromium on this machine (playwright-core
# from web/node_modules). Prints p50 and p95 per engine over DURATION seconds (default 40).
# Goals: LL-HLS p50 ≤ 1.5 s, WHEP p50 ≤ 400 ms. ENGINES=hls (or webrtc) for one page alone.
#   bench/glass.sh [DURATION]     VSHARE_BIN=… to use another build; QUALITY=adaptive to let the
#                                 studio step its picture size (default: fixed 640×360 at 30 fps)
set -euo pipefail
cd "$(dirname "$0")/.."
export DURATION=${1:-40}
bin=${VSHARE_BIN:-target/release/vshare}
[ -x "$bin" ] || cargo build --release --locked -p vshare
[ -d web/node_modules/playwright-core ] || (cd web && npm ci --no-audit --no-fund)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
printf '[webrtc]\nenabled = true\nudp_port = 0\n' > "$work/vshare.toml"
"$bin" serve --ladder "${LADDER:-none}" --data "$work/data" --rtmp 127.0.0.1:0 --http 127.0.0.1:0 \
  --config "$work/vshare.toml" >"$work/out" 2>"$work/log" &
for _ in $(seq 100); do grep -q "watch:" "$work/out" 2>/dev/null && break; sleep 0.1; done
http=$(grep -o "watch: *http://[0-9.:]*" "$work/out" | grep -o "http://.*")
[ -n "$http" ] || { echo "server did not start:" >&2; cat "$work/log" >&2; exit 1; }
ENGINES=${ENGINES:-hls,webrtc} VSHARE_HTTP=$http node tests/browser/glass.mjs
