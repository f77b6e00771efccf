#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis that the tests need are reachable, and prints `export` lines
# for their URLs (make test evals them). Uses the configured URLs when they answer; otherwise starts
# private throwaway instances from the installed server binaries on free ports (under /tmp, removed
# on reboot); otherwise stops with one line saying what to install.
set -euo pipefail

PG_URL="${SYNIB_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${SYNIB_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
PY=".venv/bin/python"; [ -x "$PY" ] || PY=python3

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

# --- PostgreSQL -------------------------------------------------------------------------------
read -r pg_host pg_port <<<"$(host_port "$PG_URL" 5432)"
if ! reachable "$pg_host" "$pg_port"; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    echo "PostgreSQL is not reachable at $pg_host:$pg_port and no server is installed: install it (apt-get install -y postgresql) or set SYNIB_TEST_DATABASE_URL" >&2
    exit 1
  fi
  pg_port=$(free_port); pg_dir=$(mktemp -d /tmp/synib-pg.XXXXXX)
  as_pg=(); if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; as_pg=(runuser -u postgres --); fi
  "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres >/dev/null
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
  PG_URL="postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres"
  echo "started a throwaway PostgreSQL on port $pg_port ($pg_dir)" >&2
fi

# --- Redis ------------------------------------------------------------------------------------
read -r r_host r_port <<<"$(host_port "$REDIS_URL" 6379)"
if ! reachable "$r_host" "$r_port"; then
  if ! command -v redis-server >/dev/null; then
    echo "Redis is not reachable at $r_host:$r_port and redis-server is not installed: install it (apt-get install -y redis-server) or set SYNIB_TEST_REDIS_URL" >&2
    exit 1
  fi
  r_port=$(free_port); r_dir=$(mktemp -d /tmp/synib-redis.XXXXXX)
  redis-server --daemonize yes --bind 127.0.0.1 --port "$r_port" --save "" --appendonly no \
    --dir "$r_dir" --logfile "$r_dir/log" >/dev/null
  for _ in $(seq 50); do reachable 127.0.0.1 "$r_port" && break; sleep 0.1; done
  REDIS_URL="redis://127.0.0.1:$r_port/0"
  echo "started a throwaway Redis on port $r_port ($r_dir)" >&2
fi

echo "export SYNIB_TEST_DATABASE_URL='$PG_URL'"
echo "export SYNIB_TEST_REDIS_URL='$REDIS_URL'"
