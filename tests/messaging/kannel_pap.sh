#!/usr/bin/env bash
# `vshare share --via pap` against Kannel's Push Proxy Gateway: Kannel compiles our SI (XML) to
# WBXML, wraps it in WSP and WDP, and hands the SMS parts to its fake SMSC; fakesmsc prints
# them; we rebuild SMS-DELIVER TPDUs from what it printed and `vshare open` decodes them.
#
# Needs: a built vshare (VSHARE=path, default target/debug/vshare), Debian packages
# `kannel kannel-extras` (bearerbox, wapbox, /usr/lib/kannel/test/fakesmsc), python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
V=${VSHARE:-target/debug/vshare}
FAKESMSC=${FAKESMSC:-/usr/lib/kannel/test/fakesmsc}
[ -x "$V" ] || { echo "build vshare first (cargo build -p vshare) or set VSHARE" >&2; exit 1; }
for t in /usr/sbin/bearerbox /usr/sbin/wapbox "$FAKESMSC" python3; do
  command -v "$t" >/dev/null || { echo "missing: $t (apt-get install kannel kannel-extras)" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  [ -n "${admin:-}" ] && curl -s "http://127.0.0.1:$admin/shutdown?password=vshare-test" >/dev/null 2>&1 || true
  sleep 0.5
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in bb.log wap.log fake.err; do echo "--- $f" >&2; grep -vE "DEBUG: (HTTP|Thread|Started)" "$work/$f" | tail -15 >&2 || true; done; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin=$(port); smsbox=$(port); wapbox=$(port); fake=$(port); ppg=$(port)

cat >"$work/kannel.conf" <<CONF
group = core
admin-port = $admin
admin-password = vshare-test
smsbox-port = $smsbox
wapbox-port = $wapbox
box-allow-ip = 127.0.0.1
log-level = 0

group = smsc
smsc = fake
smsc-id = fake
port = $fake
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1

group = wapbox
bearerbox-host = 127.0.0.1
log-level = 0

group = ppg
ppg-url = /wappush
ppg-port = $ppg
concurrent-pushes = 10
users = 10
trusted-pi = true
ppg-allow-ip = 127.0.0.1
CONF

/usr/sbin/bearerbox -v 0 "$work/kannel.conf" >"$work/bb.log" 2>&1 & pids+=($!)
sleep 1.5
/usr/sbin/wapbox -v 0 "$work/kannel.conf" >"$work/wap.log" 2>&1 & pids+=($!)
# fakesmsc reads what the SMSC sends only between the MO messages it generates.
stdbuf -oL -eL "$FAKESMSC" -H 127.0.0.1 -r "$fake" -i 0.2 "100 200 text keepalive" >"$work/fake.out" 2>"$work/fake.err" & pids+=($!)
for _ in $(seq 50); do grep -q "Connected to bearerbox" "$work/wap.log" 2>/dev/null && break; sleep 0.2; done

cat >"$work/video.json" <<'JSON'
{"id":"v7Kq2","title":"Harbour","state":"ready","created_at":"2026-11-25T07:00:00Z","attributes":[
 {"kind":"vod","video_id":"v7Kq2","url":"http://127.0.0.1:8080/vod/v7Kq2/video.mp4","format":"mp4",
  "codecs":"avc1.64001F,mp4a.40.2","width":1280,"height":720,"frame_rate":30.0,"bitrate":2500000,
  "size":18874368,"duration_ms":62040,"audio_sample_rate":48000,"audio_channels":2,"title":"Harbour"}]}
JSON

for form in wap-si-full wap-si wap-sl; do
  full=(); [ "$form" = wap-si-full ] && full=(--full)
  : >"$work/fake.err.mark"; lines_before=$(grep -c "Got message" "$work/fake.err" || true)
  "$V" share v7Kq2 --server "file:$work/video.json" --to +8613900139000 --as "${form%-full}" "${full[@]}" --via pap \
    --ppg "http://127.0.0.1:$ppg/wappush" >"$work/share.out" 2>"$work/share.err" || { cat "$work/share.err" >&2; fail "share --via pap --as $form"; }
  grep -q "PPG accepted push" "$work/share.out" || fail "PPG did not accept --as $form"
  # Wait for every part of the push to reach the fake SMSC's client.
  pdus=""
  for _ in $(seq 50); do
    pdus=$(tail -n +1 "$work/fake.err" | grep "Got message" | tail -n +$((lines_before + 1)) | python3 -c '
import sys, urllib.parse
parts = []
for line in sys.stdin:
    body = line.split("<", 1)[1].rsplit(">", 1)[0].split(" ")
    sender, to, kind = body[0], body[1], body[2]
    assert kind == "udh", kind
    # fakesmsc prints form-encoded octets: "+" is a space, "%2B" a plus.
    udh = urllib.parse.unquote_to_bytes(body[3].replace("+", " "))
    data = urllib.parse.unquote_to_bytes(body[5].replace("+", " "))
    ud = udh + data
    total = udh[-2] if len(udh) > 6 and udh[-5] == 0 else 1
    # SMS-DELIVER: MMS|UDHI, OA (sender as national digits), PID 0, DCS 8-bit, SCTS, UDL, UD.
    digits = "".join(c for c in sender if c.isdigit()) or "0"
    sw = "".join((digits + "F")[i + 1] + (digits + "F")[i] for i in range(0, len(digits) - len(digits) % 2 + (len(digits) % 2) * 2, 2))
    tpdu = bytes([0x44, len(digits), 0x81]) + bytes.fromhex(sw) + bytes([0, 4]) + bytes.fromhex("62115270030500") + bytes([len(ud)]) + ud
    parts.append((total, tpdu.hex()))
if parts and len(parts) >= parts[0][0]:
    print(" ".join(p for _, p in parts))
')
    [ -n "$pdus" ] && break
    sleep 0.2
  done
  [ -n "$pdus" ] || fail "nothing reached the fake SMSC for --as $form"
  # shellcheck disable=SC2086
  echo "$pdus" >"$work/pdus.txt"; [ -n "${KEEP:-}" ] && cp "$work/pdus.txt" "/tmp/kannel-$form.pdus"
  "$V" open --json $pdus >"$work/open.json" 2>"$work/open.err" || { cat "$work/open.err" >&2; fail "open --as $form"; }
  python3 - "$work/open.json" "$form" <<'PY'
import json, sys
records = json.load(open(sys.argv[1])); form = sys.argv[2]
r = records[0]
if form == "wap-si":
    # The compact SI: the short link and its summary (no server here to fetch the record from).
    assert r["url"] == "http://127.0.0.1:8080/w/v7Kq2" and r["format"] == "link", r
    assert r["width"] == 1280 and r["duration_ms"] == 62000 and r["title"] == "Harbour", r
else:
    assert r["url"] == "http://127.0.0.1:8080/vod/v7Kq2/video.mp4", r
    assert r["format"] == "mp4", r
if form == "wap-si-full":
    # Our field line travelled as the SI text through Kannel's compiler.
    assert r["size"] == 18874368 and r["width"] == 1280 and r["codecs"] == "avc1.64001F,mp4a.40.2", r
PY
  [ "$form" != wap-si ] || [ "$(echo $pdus | wc -w)" = 1 ] || fail "the compact SI took $(echo $pdus | wc -w) SMS"
  echo "ok: --as $form via Kannel PPG → $(echo $pdus | wc -w) SMS part(s) → $(grep '^message' "$work/open.err")"
done
echo "kannel PAP flow passed"
