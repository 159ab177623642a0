#!/usr/bin/env bash
# Fan-out benchmarks of the communication proxy (crates/proxy/examples/fanout_bench.rs).
#
#   bench/fanout.sh            # 100,000 SMS subscribers, 10,000 WebSocket listeners
#   FANOUT_SMS=20000 FANOUT_WS=2000 bench/fanout.sh
#
# SMS: one event fanned out to N SMS subscribers through a `vshare smsc` process on loopback
#      (the subscribers are not bound, so the SMSC stores each message: what is measured is the
#      proxy's outbox and SMPP path). Goal: <= 60 s. Prints where the dispatcher spent its time.
# WS:  one event to N WebSocket listeners (a second process) connected over loopback to the
#      proxy's router. Goal: <= 2 s from the event to the last delivery.
# The database is SQLite in a temporary directory (FANOUT_DATABASE=postgres://… to use another).
set -euo pipefail
cd "$(dirname "$0")/.."
SMS=${FANOUT_SMS:-100000}
WS=${FANOUT_WS:-10000}
PORT=${FANOUT_SMSC_PORT:-27751}
DB_ARGS=()
[ -n "${FANOUT_DATABASE:-}" ] && DB_ARGS=(--database "$FANOUT_DATABASE")

cargo build --release -q -p vshare-proxy --example fanout_bench
BIN=target/release/examples/fanout_bench
VSHARE=${VSHARE_BIN:-target/release/vshare}
[ -x "$VSHARE" ] || cargo build --release -q -p vshare

"$VSHARE" smsc --listen "127.0.0.1:$PORT" --window 256 >/dev/null 2>&1 &
SMSC_PID=$!
trap 'kill $SMSC_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

echo "== one event to $SMS SMS subscribers through vshare smsc (127.0.0.1:$PORT)"
"$BIN" sms --count "$SMS" --smsc "127.0.0.1:$PORT" "${DB_ARGS[@]}"

need=$((WS + 200))
if [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || { echo "ulimit -n is $(ulimit -n); $need file descriptors are needed for $WS listeners" >&2; exit 1; }
fi
echo "== one event to $WS WebSocket listeners"
"$BIN" ws --count "$WS" "${DB_ARGS[@]}"
