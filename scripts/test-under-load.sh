#!/usr/bin/env bash
# Runs the whole suite (scripts/test.sh) while stress-ng keeps one of the machine's cores busy:
# no test may depend on how fast this machine happens to be. Ends on the suite's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
stress-ng --cpu 1 --cpu-method matrixprod --timeout 4h --quiet &
hog=$!
trap 'kill "$hog" 2>/dev/null || true' EXIT
echo "test-under-load: stress-ng --cpu 1 (pid $hog) keeps a core busy"
./scripts/test.sh
