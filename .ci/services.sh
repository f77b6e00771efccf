#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis that the tests need are reachable, and prints `export` lines
# for their URLs (make test evals them): SYNIB_TEST_DATABASE_URL and SYNIB_TEST_REDIS_URL, the two
# variables every test reads (tests/db_testing.py). Uses the configured URLs when they answer;
# otherwise starts private throwaway instances from the installed server binaries on free ports
# (under /tmp) and lists their folders in SYNIB_TEST_SERVICE_DIRS; otherwise stops with one line
# saying what to install.
#
#   SYNIB_CI_PRIVATE_SERVICES=1 bash .ci/services.sh   private instances even when the configured
#                                                      servers answer (to test this path)
#   bash .ci/services.sh stop $SYNIB_TEST_SERVICE_DIRS  stop private instances, remove their folders
set -euo pipefail

PG_URL="${SYNIB_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${SYNIB_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
PRIVATE="${SYNIB_CI_PRIVATE_SERVICES:-0}"
PY=".venv/bin/python"; [ -x "$PY" ] || PY=python3

stop_private() {  # dir... (only folders this script made); their data is thrown away
  local dir pid pids=()
  for dir in "$@"; do
    case "$dir" in
      /tmp/synib-pg.*/*|/tmp/synib-redis.*/*) ;;
      /tmp/synib-pg.*|/tmp/synib-redis.*) continue ;;
    esac
    echo "services.sh stop: $dir is not a private instance folder of this script" >&2
    return 1
  done
  for dir in "$@"; do  # signal every server first, then wait for them together
    if [ -f "$dir/data/postmaster.pid" ]; then
      pid=$(head -n 1 "$dir/data/postmaster.pid"); kill -QUIT "$pid" 2>/dev/null && pids+=("$pid")
    fi
    if [ -f "$dir/redis.pid" ]; then
      pid=$(head -n 1 "$dir/redis.pid"); kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$@"
}

if [ "${1:-}" = stop ]; then
  shift
  stop_private "$@"
  exit 0
fi

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

reachable() {  # host port
  "$PY" - "$1" "$2" <<'PYEOF'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PYEOF
}

host_port() {  # url -> "host port"
  "$PY" -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p.hostname or "127.0.0.1", p.port or int(sys.argv[2]))' "$1" "$2"
}

use_configured() {  # host port: the configured server answers and no private one is asked for
  [ "$PRIVATE" != 1 ] && reachable "$1" "$2"
}

dirs=()

# --- PostgreSQL -------------------------------------------------------------------------------
read -r pg_host pg_port <<<"$(host_port "$PG_URL" 5432)"
if ! use_configured "$pg_host" "$pg_port"; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    why="PostgreSQL is not reachable at $pg_host:$pg_port"
    [ "$PRIVATE" != 1 ] || why="SYNIB_CI_PRIVATE_SERVICES=1 asks for a private PostgreSQL"
    echo "$why and no server is installed: install it (apt-get install -y postgresql) or set SYNIB_TEST_DATABASE_URL" >&2
    exit 1
  fi
  pg_port=$(free_port); pg_dir=$(mktemp -d /tmp/synib-pg.XXXXXX); dirs+=("$pg_dir")
  as_pg=(); if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; as_pg=(runuser -u postgres --); fi
  # -A trust: the tests connect as postgres without a password (local socket and TCP alike).
  if ! "${as_pg[@]}" "$pg_bin/initdb" --no-sync -D "$pg_dir/data" -A trust -U postgres \
      >"$pg_dir/initdb.log" 2>&1 \
    || ! "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
      -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null; then
    echo "could not start a throwaway PostgreSQL in $pg_dir (see initdb.log and log there)" >&2
    exit 1
  fi
  PG_URL="postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres"
  echo "started a throwaway PostgreSQL on port $pg_port ($pg_dir)" >&2
fi

# --- Redis ------------------------------------------------------------------------------------
read -r r_host r_port <<<"$(host_port "$REDIS_URL" 6379)"
if ! use_configured "$r_host" "$r_port"; then
  if ! command -v redis-server >/dev/null; then
    why="Redis is not reachable at $r_host:$r_port"
    [ "$PRIVATE" != 1 ] || why="SYNIB_CI_PRIVATE_SERVICES=1 asks for a private Redis"
    echo "$why and redis-server is not installed: install it (apt-get install -y redis-server) or set SYNIB_TEST_REDIS_URL" >&2
    [ -z "${pg_dir:-}" ] || stop_private "$pg_dir"
    exit 1
  fi
  r_port=$(free_port); r_dir=$(mktemp -d /tmp/synib-redis.XXXXXX); dirs+=("$r_dir")
  redis-server --daemonize yes --bind 127.0.0.1 --port "$r_port" --save "" --appendonly no \
    --dir "$r_dir" --logfile "$r_dir/log" --pidfile "$r_dir/redis.pid" >/dev/null
  for _ in $(seq 50); do reachable 127.0.0.1 "$r_port" && break; sleep 0.1; done
  if ! reachable 127.0.0.1 "$r_port"; then
    echo "could not start a throwaway Redis in $r_dir (see log there)" >&2
    [ -z "${pg_dir:-}" ] || stop_private "$pg_dir"
    exit 1
  fi
  REDIS_URL="redis://127.0.0.1:$r_port/0"
  echo "started a throwaway Redis on port $r_port ($r_dir)" >&2
fi

echo "export SYNIB_TEST_DATABASE_URL='$PG_URL'"
echo "export SYNIB_TEST_REDIS_URL='$REDIS_URL'"
echo "export SYNIB_TEST_SERVICE_DIRS='${dirs[*]}'"
