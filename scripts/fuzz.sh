#!/usr/bin/env bash
# Runs every cargo-fuzz target (one per parser of outside bytes).
#   scripts/fuzz.sh            each target for 60 s
#   scripts/fuzz.sh 600        each target for 600 s
#   scripts/fuzz.sh --smoke    each target for 100,000 runs with a fixed seed (used by the tests)
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain provide them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
if [ "${1:-}" = "--smoke" ]; then
  limit=(-seed=1 -runs=100000)
else
  limit=(-max_total_time="${1:-60}")
fi
targets=$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -v '^vshare-fuzz$')
cargo fuzz build >/dev/null
for t in $targets; do
  mkdir -p "corpus/$t"
  out=$(cargo fuzz run "$t" "corpus/$t" -- "${limit[@]}" 2>&1) || { echo "$out" | tail -30; echo "fuzz: $t FAILED"; exit 1; }
  echo "fuzz: $t ok ($(echo "$out" | grep -o 'Done [0-9]* runs in [0-9]* second(s)' | tail -1))"
done
