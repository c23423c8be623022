#!/usr/bin/env bash
# Stop the throwaway PostgreSQL cluster started by postgres-start.sh and remove its
# directory ($SOVEREIGN_PG_DIR, default /tmp/sovereign-pg). Safe to run twice.
set -euo pipefail

PG_DIR="${SOVEREIGN_PG_DIR:-/tmp/sovereign-pg}"
DATA="$PG_DIR/data"

if [[ -f "$DATA/PG_VERSION" ]]; then
    BINDIR="/usr/lib/postgresql/$(cat "$DATA/PG_VERSION")/bin"
    RUN=()
    if [[ "$(id -u)" == 0 ]]; then RUN=(runuser -u postgres --); fi
    if "${RUN[@]}" "$BINDIR/pg_ctl" status -D "$DATA" >/dev/null 2>&1; then
        "${RUN[@]}" "$BINDIR/pg_ctl" stop -w -t 60 -m fast -D "$DATA" >&2
    fi
fi
case "$PG_DIR" in
    /|"") echo "postgres-stop: refusing to remove '$PG_DIR'" >&2; exit 1 ;;
esac
rm -rf "$PG_DIR"
