#!/usr/bin/env bash
# Run a command with CHIPREG_TEST_POSTGRES_URL pointing at a real PostgreSQL server.
#
# If the variable is already set, the command runs as is. Otherwise a throwaway cluster is
# created in a temporary directory (initdb + pg_ctl, listening on a unix socket and a free
# loopback port), used, and removed afterwards. As root the server runs as the `postgres`
# user, since PostgreSQL refuses to run as root. Without PostgreSQL installed, the
# PostgreSQL half of the suite is skipped locally, but fails under CI=true.
set -euo pipefail

if [ -n "${CHIPREG_TEST_POSTGRES_URL:-}" ]; then
  exec "$@"
fi

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "with-postgres: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 1
  fi
  echo "with-postgres: PostgreSQL not installed; the PostgreSQL tests will be skipped" >&2
  exec "$@"
fi

workdir=$(mktemp -d /tmp/chipreg-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" = "0" ]; then
  chown postgres:postgres "$workdir"
  as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$workdir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT

"${as_pg[@]}" "$pgbin/initdb" -D "$workdir/data" -U chipreg --auth=trust -E UTF8 >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$workdir/data" -l "$workdir/server.log" -w \
  -o "-p $port -k $workdir -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null
"${as_pg[@]}" "$pgbin/createdb" -h "$workdir" -p "$port" -U chipreg chipreg_test

export CHIPREG_TEST_POSTGRES_URL="postgresql+psycopg://chipreg@127.0.0.1:$port/chipreg_test"
echo "with-postgres: PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on port $port" >&2
set +e
"$@"
status=$?
set -e
exit $status
