#!/usr/bin/env bash
# The whole share flow on one machine, with real processes:
#   vshare serve ← ffmpeg publishes a 6 s clip over RTMP → the VOD becomes ready
#   vshare smsc (SMPP server)
#   vshare open, bound as +8613900139000, waits for the message and downloads the VOD
#   vshare share VIDEO --via smpp --as FORM (every form in turn), with delivery receipts
# and checks that the downloaded file has the size in the attributes and the server's bytes.
#
# Needs: a built vshare (VSHARE=path, default target/debug/vshare), ffmpeg, curl, sha256sum.
set -euo pipefail
cd "$(dirname "$0")/../.."
V=${VSHARE:-target/debug/vshare}
[ -x "$V" ] || { echo "build vshare first (cargo build -p vshare) or set VSHARE" >&2; exit 1; }
for t in ffmpeg curl sha256sum; do command -v $t >/dev/null || { echo "missing tool: $t" >&2; exit 1; }; done

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- serve log" >&2; tail -20 "$work/serve.log" >&2 || true; echo "--- smsc log" >&2; tail -20 "$work/smsc.log" >&2 || true; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

key=$("$V" keys create --quiet --data "$work/data")
VSHARE_LOG=info "$V" serve --rtmp 127.0.0.1:0 --http 127.0.0.1:0 --data "$work/data" >"$work/serve.out" 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^ *watch:' "$work/serve.out" 2>/dev/null && grep -q 'publish: rtmp://' "$work/serve.out" && break; sleep 0.2; done
http=$(sed -n 's/^ *watch: *\(http:\/\/[^/]*\).*/\1/p' "$work/serve.out" | head -1)
rtmp_port=$(sed -n 's/.*publish: rtmp:\/\/[^:]*:\([0-9]*\)\/.*/\1/p' "$work/serve.out" | head -1)
[ -n "$http" ] && [ -n "$rtmp_port" ] || fail "server did not start"
echo "server $http, rtmp port $rtmp_port"

ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=30:duration=6 \
  -f lavfi -i sine=frequency=1000:sample_rate=44100:duration=6 \
  -c:v libx264 -preset veryfast -g 30 -b:v 800k -c:a aac -b:a 96k -ac 2 "$work/clip.mp4"
ffmpeg -hide_banner -loglevel error -re -i "$work/clip.mp4" -c copy -f flv "rtmp://127.0.0.1:$rtmp_port/live/$key"

id=""
for _ in $(seq 150); do
  status=$(curl -s -H "Authorization: Bearer $key" "$http/api/v1/publish/status" || true)
  if echo "$status" | python3 -c 'import json,sys; v=json.load(sys.stdin); sys.exit(0 if v["state"]=="ready" and any(a["format"]=="mp4" for a in v["attributes"]) else 1)' 2>/dev/null; then
    id=$(echo "$status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'); break
  fi
  sleep 0.2
done
[ -n "$id" ] || fail "VOD not ready; last status: $status"
mp4_url=$(echo "$status" | python3 -c 'import json,sys; print([a for a in json.load(sys.stdin)["attributes"] if a["format"]=="mp4"][0]["url"])')
mp4_size=$(echo "$status" | python3 -c 'import json,sys; print([a for a in json.load(sys.stdin)["attributes"] if a["format"]=="mp4"][0]["size"])')
curl -s -o "$work/server.mp4" "$mp4_url"
echo "video $id ready: $mp4_url ($mp4_size bytes)"
[ "$(stat -c %s "$work/server.mp4")" = "$mp4_size" ] || fail "server file size differs from its attributes"

smsc_port=$(free_port)
VSHARE_LOG=info "$V" smsc --listen "127.0.0.1:$smsc_port" 2>"$work/smsc.log" &
pids+=($!)
sleep 0.5

for form in text tlv xml wap-si wap-sl; do
  rm -f "$work/got.mp4"
  "$V" open --smsc "127.0.0.1:$smsc_port" --number +8613900139000 --timeout 30 \
    --download --output "$work/got.mp4" --player none >"$work/open-$form.out" 2>"$work/open-$form.err" &
  open_pid=$!
  sleep 0.5
  "$V" share "$id" --server "$http" --to +8613900139000 --as "$form" --via smpp \
    --smsc "127.0.0.1:$smsc_port" --from +8613800138000 --receipts 10 >"$work/share-$form.out" 2>"$work/share-$form.err" \
    || { cat "$work/share-$form.err" >&2; fail "share --as $form"; }
  wait "$open_pid" || { cat "$work/open-$form.err" >&2; fail "open after --as $form"; }
  grep -q "receipt for .*: DELIVRD" "$work/share-$form.out" || fail "no DELIVRD receipt for --as $form"
  [ "$(stat -c %s "$work/got.mp4")" = "$mp4_size" ] || fail "--as $form: downloaded size differs"
  [ "$(sha256sum <"$work/got.mp4")" = "$(sha256sum <"$work/server.mp4")" ] || fail "--as $form: checksum differs"
  echo "ok: --as $form → $(grep -c accepted "$work/share-$form.out") part(s), downloaded $(stat -c %s "$work/got.mp4") bytes, sha256 matches"
done
echo "full flow passed"
