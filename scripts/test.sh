#!/usr/bin/env bash
# One command to set up and run every test: installs FFmpeg and the independent tools the tests
# use (ffprobe, tshark, libwbxml, gammu, Kannel, PostgreSQL, pebble, Garage, s3s-fs, Python
# SMS/SMPP packages), runs each fuzz target briefly, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
# PostgreSQL for the tests that run the same code on it as on SQLite.
VSHARE_TEST_POSTGRES_URL=$(./scripts/postgres.sh)
export VSHARE_TEST_POSTGRES_URL
mkdir -p target
# Every fuzz target builds and survives 100,000 runs (scripts/fuzz.sh N fuzzes for longer).
./scripts/fuzz.sh --smoke
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test.log
status=${PIPESTATUS[0]}
set -e
# Close on one summary line for the whole run.
python3 - <<'PY'
import re
p = f = i = 0
for line in open("target/test.log", encoding="utf-8", errors="replace"):
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
    if m:
        p += int(m.group(1)); f += int(m.group(2)); i += int(m.group(3))
print(f"{p} passed, {f} failed, {i} skipped")
PY
exit "$status"
