#!/usr/bin/env bash
# Stop the single-node Slurm cluster of scripts/slurm-start.sh: cancel every job, wait
# for them to leave the queue, then stop slurmd, slurmctld and munged by the pids in
# their pid files (checked against /proc/PID/exe, so a recycled pid is never signalled).
# SIGTERM first, SIGKILL after 15 s; a zombie counts as stopped (PID 1 here reaps late).
# Usage: scripts/slurm-stop.sh [--purge]   (--purge also deletes state and logs)
set -uo pipefail

DIR=${SOVEREIGN_SLURM_DIR:-/var/tmp/sovereign-slurm}

running() { # running PID BINARY
  [ -d "/proc/$1" ] || return 1
  [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$(readlink -f "$2")" ] || return 1
  ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# (1) jobs: cancel all, wait (up to 15 s) for the queue to drain.
if [ -S /run/munge/munge.socket.2 ] && command -v squeue >/dev/null \
   && timeout 5 squeue -h >/dev/null 2>&1; then
  jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// }" ]; then
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 1 30); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
    echo "slurm-stop: cancelled jobs $jobs"
  fi
fi

# (2) daemons, children before parents of the chain.
stop() { # stop PIDFILE BINARY
  local pidfile=$1 bin=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if running "$pid" "$bin"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
      running "$pid" "$bin" || break
      sleep 0.5
    done
    if running "$pid" "$bin"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "slurm-stop: stopped $(basename "$bin") pid $pid"
  fi
  rm -f "$pidfile"
}
stop "$DIR/run/slurmd.pid" /usr/sbin/slurmd
stop "$DIR/run/slurmctld.pid" /usr/sbin/slurmctld
stop "$DIR/run/munge/munged.pid" /usr/sbin/munged

if [ "${1:-}" = "--purge" ]; then
  rm -rf "$DIR/state" "$DIR/log"
fi
exit 0
