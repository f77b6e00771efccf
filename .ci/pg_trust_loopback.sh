#!/usr/bin/env bash
# Usage: pg_trust_loopback.sh PG_HBA_CONF
# Makes a PostgreSQL cluster trust TCP connections from this machine (127.0.0.1, ::1): the tests
# connect as postgres@127.0.0.1 without a password, while a cluster Debian creates asks for one
# over TCP (pg_createcluster's host method, scram-sha-256 since PostgreSQL 14). The rules go
# first (pg_hba.conf is first match wins), once; the file keeps its owner and mode. Only for a
# cluster that .ci/run starts or creates itself, never for one that already runs.
set -euo pipefail
hba="$1"
marker="# synib-ci: trust loopback TCP connections (the tests connect without a password)"
grep -qxF "$marker" "$hba" && exit 0
new=$(printf '%s\n' "$marker" "host all all 127.0.0.1/32 trust" "host all all ::1/128 trust" \
  && cat "$hba")
printf '%s\n' "$new" >"$hba"
