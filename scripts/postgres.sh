#!/usr/bin/env bash
# Starts a private PostgreSQL cluster for the tests (Debian's postgresql package) on port 54329
# and prints its URL. Idempotent: a running cluster is reused.
set -euo pipefail
port=${VSHARE_TEST_PG_PORT:-54329}
dir=${VSHARE_TEST_PG_DIR:-/tmp/vshare-test-pg}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg=(runuser -u postgres --)
[ "$(id -u)" -ne 0 ] && as_pg=(sudo -u postgres)
if ! "${as_pg[@]}" "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    chown postgres "$dir" 2>/dev/null || sudo chown postgres "$dir"
    "${as_pg[@]}" "$bin/initdb" -D "$dir" -A trust -U postgres >/dev/null
  fi
  "${as_pg[@]}" "$bin/pg_ctl" -D "$dir" -o "-p $port -k /tmp -c listen_addresses=127.0.0.1" -l "$dir/log" -w start >/dev/null
fi
echo "postgres://postgres@127.0.0.1:$port/postgres"
