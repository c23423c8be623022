#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the custody-log tests and benchmarks and
# print its URL on stdout (progress goes to stderr).
#
#   SOVEREIGN_PG_DIR   cluster directory (default /tmp/sovereign-pg): data/, sock/, log
#   SOVEREIGN_PG_PORT  loopback TCP port (default 55432)
#
# Installs the Debian "postgresql" package when no server binaries are found
# (apt-get update first; needs root or sudo). Runs initdb as the "postgres" user when
# started as root (the server refuses to run as root), else as the current user.
# Idempotent: if the cluster is already running, only prints the URL.
set -euo pipefail

PG_DIR="${SOVEREIGN_PG_DIR:-/tmp/sovereign-pg}"
PORT="${SOVEREIGN_PG_PORT:-55432}"
DB=sovereign
USER_NAME=sovereign
PASSWORD=sovereign
URL="postgresql://${USER_NAME}:${PASSWORD}@127.0.0.1:${PORT}/${DB}"

log() { printf 'postgres-start: %s\n' "$*" >&2; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

BINDIR="$(find_bindir || true)"
if [[ -z "$BINDIR" ]]; then
    log "no PostgreSQL server under /usr/lib/postgresql/*/bin: installing it"
    SUDO=()
    if [[ "$(id -u)" != 0 ]]; then SUDO=(sudo -n); fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q >&2
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends postgresql >&2
    BINDIR="$(find_bindir)" || { log "installation did not provide initdb"; exit 1; }
fi

if [[ "$(id -u)" == 0 ]]; then
    RUN=(runuser -u postgres --)
    OWNER=postgres
else
    RUN=()
    OWNER="$(id -un)"
fi
as_owner() { "${RUN[@]}" "$@"; }

DATA="$PG_DIR/data"
SOCK="$PG_DIR/sock"
mkdir -p "$PG_DIR" "$SOCK"
chown "$OWNER" "$PG_DIR" "$SOCK"
chmod 700 "$PG_DIR"

if as_owner "$BINDIR/pg_ctl" status -D "$DATA" >/dev/null 2>&1; then
    log "already running in $PG_DIR"
    echo "$URL"
    exit 0
fi

if [[ ! -f "$DATA/PG_VERSION" ]]; then
    log "initdb in $DATA"
    pwfile="$PG_DIR/.pw"
    printf '%s\n' "$PASSWORD" > "$pwfile"
    chown "$OWNER" "$pwfile"
    as_owner "$BINDIR/initdb" -D "$DATA" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --pwfile="$pwfile" -E UTF8 --no-locale >&2
    rm -f "$pwfile"
fi

log "starting on 127.0.0.1:$PORT"
as_owner "$BINDIR/pg_ctl" start -w -t 60 -D "$DATA" -l "$PG_DIR/server.log" \
    -o "-k $SOCK -p $PORT -c listen_addresses=127.0.0.1 -c fsync=on" >&2 || {
    log "pg_ctl start failed; server log:"
    tail -n 40 "$PG_DIR/server.log" >&2 || true
    exit 1
}

for _ in $(seq 1 100); do
    if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then break; fi
    sleep 0.1
done
"$BINDIR/pg_isready" -h 127.0.0.1 -p "$PORT" >&2

psql_su() { as_owner "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" \
    -U postgres "$@"; }
if [[ "$(psql_su -d postgres -tAc \
        "SELECT 1 FROM pg_roles WHERE rolname = '$USER_NAME'")" != 1 ]]; then
    psql_su -d postgres -c \
        "CREATE ROLE $USER_NAME LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [[ "$(psql_su -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]]; then
    psql_su -d postgres -c "CREATE DATABASE $DB OWNER $USER_NAME" >&2
fi
log "ready"
echo "$URL"
