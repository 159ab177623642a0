#!/usr/bin/env bash
# Runs every cargo-fuzz target (one per parser of outside bytes).
#   scripts/fuzz.sh            each target for 60 s
#   scripts/fuzz.sh 600        each target for 600 s
#   scripts/fuzz.sh --smoke    each target for 100,000 runs with a fixed seed (used by the tests;
#                              webrtc_offer, a whole negotiation a run, 10,000)
#   scripts/fuzz.sh --long     each target for 10,000,000 runs, as many targets at once as there
#                              are cores (FUZZ_JOBS=n to change), with a 64 MB limit on any one
#                              allocation: a length field from the input must not size memory.
#                              Built without AddressSanitizer: the targets are safe Rust, where
#                              it finds nothing, and it makes each run about 5 times slower
# Every mode prints, per target, how many runs it did in how many seconds.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain provide them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
jobs=1
sanitizer=address
case "${1:-}" in
  --smoke) limit=(-seed=1 -runs=100000) smoke=1 ;;
  --long)
    limit=(-runs=10000000 -malloc_limit_mb=64 -rss_limit_mb=2048 -timeout=10)
    jobs=${FUZZ_JOBS:-$(nproc)}
    sanitizer=none
    ;;
  *) limit=(-max_total_time="${1:-60}") ;;
esac
targets=$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -v '^vshare-fuzz$')
cargo fuzz build -s "$sanitizer" >/dev/null
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# Targets whose runs are each a whole SDP negotiation (~10 ms under ASan): fewer smoke runs.
slow_smoke=(webrtc_offer=10000)
run_one() {
  local t=$1 args=("${limit[@]}")
  for s in "${slow_smoke[@]}"; do
    if [ -n "${smoke:-}" ] && [ "${s%%=*}" = "$t" ]; then args=(-seed=1 "-runs=${s#*=}"); fi
  done
  mkdir -p "corpus/$t"
  if cargo fuzz run -s "$sanitizer" "$t" "corpus/$t" -- "${args[@]}" > "$logs/$t" 2>&1; then
    echo "fuzz: $t ok ($(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$logs/$t" | tail -1))"
  else
    tail -30 "$logs/$t"
    echo "fuzz: $t FAILED"
    return 1
  fi
}
failed=0
running=0
for t in $targets; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
[ "$failed" -eq 0 ] || { echo "fuzz: a target failed"; exit 1; }
