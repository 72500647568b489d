#!/usr/bin/env bash
# Stop the daemons scripts/slurm-local.sh started, and only those: it signals the PIDs recorded in
# $TD3_SLURM_STATE, each checked against /proc/PID/comm first so a recycled PID is never hit.
# Daemons someone else started are left running. Never kills by name.
#
# Usage (as root):  scripts/slurm-local-stop.sh [--keep-jobs]
#   --keep-jobs  do not scancel this cluster's jobs first (by default they are cancelled, so no
#                job processes outlive slurmd)
set -euo pipefail

STATE=${TD3_SLURM_STATE:-/var/spool/td3-slurm}
KEEP_JOBS=0
for a in "$@"; do
  case $a in
    --keep-jobs) KEEP_JOBS=1 ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "slurm-local-stop.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
say() { echo "[slurm-local-stop] $*" >&2; }
[ "$(id -u)" = 0 ] || { say "error: run as root"; exit 1; }

if [ $KEEP_JOBS = 0 ] && [ -f "$STATE/slurmctld.pid" ] && scontrol ping 2>/dev/null | grep -q 'is UP'; then
  jobs=$(squeue -h -o '%F' 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086
    scancel $jobs || true
    for _ in $(seq 1 60); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.25; done
  fi
fi

# compute daemon first, munged last (both Slurm daemons authenticate through it)
for name in slurmd slurmctld munged; do
  rec=$STATE/$name.pid
  [ -f "$rec" ] || continue
  pid=$(tr -dc '0-9' <"$rec")
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name ($pid) ignored SIGTERM for 20 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name ($pid)"
  else
    say "$name (recorded pid ${pid:-?}) is not running"
  fi
  rm -f "$rec"
done
exit 0
