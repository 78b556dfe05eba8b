#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for tests and local experiments.
#
#   scripts/postgres.sh start DIR PORT   create (once) and start a cluster in DIR on 127.0.0.1:PORT,
#                                        with database ledgercrm_test; prints its SQLAlchemy URL
#   scripts/postgres.sh stop DIR         stop it (the data stays in DIR; delete DIR to discard it)
#
# Both are idempotent. The cluster trusts every local TCP connection (user postgres, no password) and
# runs without fsync: it is for tests, never for data anyone wants back. It has no Unix socket, so it
# cannot collide with a system cluster or with another test cluster on a different port.
# PostgreSQL refuses to run as root; as root, the server runs as the system user postgres (DIR is
# chowned to it; DIR's parents must let that user in, so /tmp/... rather than a 0700 pytest tmp dir).
# Without PostgreSQL binaries, as root, it installs the Debian package first.
set -euo pipefail

DB_NAME=ledgercrm_test
DB_USER=postgres

die() {
  echo "postgres.sh: $*" >&2
  exit 1
}

find_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir 2>/dev/null || true)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  fi
  # Debian installs the server outside PATH; take the newest major version present
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
    return 0
  fi
  return 1
}

ensure_binaries() {
  if BINDIR="$(find_bindir)"; then
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "PostgreSQL server binaries not found and not root: install the postgresql package"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL server binaries not found and no apt-get to install them"
  echo "postgres.sh: installing PostgreSQL with apt-get" >&2
  # policy-rc.d 101 keeps the package from starting a system cluster we would then leave running
  local policy=/usr/sbin/policy-rc.d created_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  local status=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } >&2 || status=$?
  [ -z "$created_policy" ] || rm -f "$policy"
  [ "$status" -eq 0 ] || die "apt-get install postgresql failed (exit $status)"
  BINDIR="$(find_bindir)" || die "PostgreSQL installed but initdb/pg_ctl still not found"
}

# Runs a server-side binary as the cluster's owner: postgres when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$DB_USER" -- "$@"
  else
    "$@"
  fi
}

is_running() {
  [ -f "$1/PG_VERSION" ] && as_owner "$BINDIR/pg_ctl" status -D "$1" >/dev/null 2>&1
}

start() {
  local dir="$1" port="$2"
  [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  ensure_binaries
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local data="$dir/data"

  if [ "$(id -u)" -eq 0 ]; then
    id -u "$DB_USER" >/dev/null 2>&1 || die "system user $DB_USER is missing (it comes with the postgresql package)"
    chown "$DB_USER": "$dir"
    chmod 700 "$dir"
    runuser -u "$DB_USER" -- test -w "$dir" || die "user $DB_USER cannot write $dir (is a parent directory private?)"
  fi

  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$BINDIR/initdb" -D "$data" -U "$DB_USER" --auth=trust --encoding=UTF8 --locale=C \
      --no-sync >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$dir/initdb.log")"
    # Test settings: durability off (the cluster is disposable), TCP on loopback only, no Unix socket.
    as_owner tee -a "$data/postgresql.conf" >/dev/null <<'EOF'

# --- scripts/postgres.sh: disposable test cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
EOF
  fi

  if ! is_running "$data"; then
    # the port is given at every start, so a stopped cluster can come back on another one
    as_owner "$BINDIR/pg_ctl" start -D "$data" -l "$dir/postgres.log" -w -t 60 -o "-p $port" >/dev/null ||
      die "server did not start: $(tail -n 5 "$dir/postgres.log")"
  fi
  local actual_port
  actual_port="$(sed -n 4p "$data/postmaster.pid")"
  [ "$actual_port" = "$port" ] || die "cluster in $dir is already running on port $actual_port, not $port"

  local psql=("$BINDIR/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" -X -q -v ON_ERROR_STOP=1)
  if [ -z "$("${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE $DB_NAME" >/dev/null
  fi
  echo "postgresql+psycopg://$DB_USER@127.0.0.1:$port/$DB_NAME"
}

stop() {
  local dir="$1"
  local data="$dir/data"
  [ -f "$data/PG_VERSION" ] || return 0
  BINDIR="$(find_bindir)" || die "PostgreSQL binaries not found"
  if is_running "$data"; then
    as_owner "$BINDIR/pg_ctl" stop -D "$data" -m fast -w -t 60 >/dev/null
  fi
}

case "${1:-}" in
  start)
    [ $# -eq 3 ] || die "usage: $0 start DIR PORT"
    start "$2" "$3"
    ;;
  stop)
    [ $# -eq 2 ] || die "usage: $0 stop DIR"
    stop "$2"
    ;;
  *)
    die "usage: $0 start DIR PORT | stop DIR"
    ;;
esac
