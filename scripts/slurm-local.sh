#!/usr/bin/env bash
# Start a single-node Slurm (munged + slurmctld + slurmd, Debian packages, no systemd) so the Slurm
# backend can be tested for real on one machine. CI (.ci/run) runs it before `just test`.
#
# Idempotent: daemons already running with an unchanged config are left alone. The PIDs of the
# daemons THIS script starts are recorded in $TD3_SLURM_STATE (scripts/slurm-local-stop.sh stops
# only those).
#
# Usage (as root):  scripts/slurm-local.sh [--no-install] [--clean]
#   --no-install  fail instead of apt-get installing missing packages (~1 min the first time)
#   --clean       start slurmctld with -c (forget earlier jobs)
#
# Environment:
#   TD3_SLURM_STATE=/var/spool/td3-slurm  where the started daemons' PIDs are recorded
#   TD3_SLURM_CPUS=N                      advertise N CPUs (default: the real count); more than the
#                                         real count lets more array tasks run at once
#   TD3_SLURM_PARTITION=debug             the (default) partition's name
#
# Pitfalls this config avoids (found the hard way on these machines):
#   - SelectTypeParameters=CR_CPU, not CR_Core_Memory: with memory as a consumable resource every
#     job asks for the whole node's memory by default and array tasks run one at a time.
#   - SchedulerParameters=batch_sched_delay=0 (and sched/backfill): tasks start within a second
#     instead of waiting for the next scheduling cycle.
#   - MinJobAge: finished jobs stay visible to squeue/scontrol for a while, which the backend's
#     "is this task still known to Slurm" check relies on only as support (it reads run.json first).
#   - ProctrackType=proctrack/linuxproc, TaskPlugin=task/none: no cgroups or systemd in containers.
set -euo pipefail

STATE=${TD3_SLURM_STATE:-/var/spool/td3-slurm}
PARTITION=${TD3_SLURM_PARTITION:-debug}
CONF=/etc/slurm/slurm.conf
HEADER="# Written by td3-sweep scripts/slurm-local.sh; edit the script, not this file"
INSTALL=1 CLEAN=0
for a in "$@"; do
  case $a in
    --no-install) INSTALL=0 ;;
    --clean) CLEAN=1 ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "slurm-local.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

say() { echo "[slurm-local] $*" >&2; }
die() { say "error: $*"; exit 1; }
# retry SECONDS CMD...: succeed as soon as CMD does, fail after SECONDS
retry() {
  local end=$(($(date +%s) + $1)); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.25
  done
}
# live NAME PIDFILE: print the PID in PIDFILE if that process is alive and is NAME (no stale PIDs)
live() {
  local pid
  [ -r "$2" ] || return 1
  pid=$(tr -dc '0-9' <"$2")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}
remember() { mkdir -p "$STATE"; echo "$2" >"$STATE/$1.pid"; }
term() { # NAME PID: SIGTERM, wait up to 20 s, then SIGKILL
  [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ] || return 0
  kill -TERM "$2" 2>/dev/null || true
  retry 20 bash -c "! kill -0 $2 2>/dev/null" || kill -KILL "$2" 2>/dev/null || true
}

[ "$(id -u)" = 0 ] || die "run as root"

# 1. packages
missing=0
for b in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/bin/squeue /usr/sbin/munged; do
  [ -x "$b" ] || missing=1
done
if [ $missing = 1 ]; then
  [ $INSTALL = 1 ] || die "slurm/munge not installed and --no-install given"
  say "installing slurmctld slurmd slurm-client munge ..."
  # Package maintainer scripts must not start daemons (there is no init system to own them).
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  [ $own_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
fi

# 2. slurm.conf (rewritten only when it would change, so re-runs do not restart anything)
user=root
id slurm >/dev/null 2>&1 && user=slurm
hw=$(/usr/sbin/slurmd -C | head -n1)
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
override=""
if [ -n "${TD3_SLURM_CPUS:-}" ] && [ "$TD3_SLURM_CPUS" != "$cpus" ]; then
  cpus=$TD3_SLURM_CPUS
  override="SlurmdParameters=config_overrides" # else the node drains for the CPU mismatch
fi
conf="$HEADER
ClusterName=td3local
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=$user
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$override
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
changed=0
if [ "$(cat "$CONF" 2>/dev/null)" != "$conf" ]; then
  mkdir -p /etc/slurm
  if [ -f "$CONF" ] && [ "$(head -n1 "$CONF")" != "$HEADER" ]; then
    cp -p "$CONF" "$CONF.before-td3.$(date +%s)"
    say "kept the previous $CONF as $CONF.before-td3.*"
  fi
  printf '%s\n' "$conf" >"$CONF"
  chmod 644 "$CONF"
  changed=1
fi
install -d -o "$user" -g "$user" /var/spool/slurmctld /var/log/slurm
chown -R "$user:$user" /var/spool/slurmctld
install -d /var/spool/slurmd

# 3. munged
munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_works; then
  if [ ! -s /etc/munge/munge.key ]; then
    install -d -o munge -g munge -m 700 /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  fi
  install -d -o munge -g munge /run/munge
  runuser -u munge -- /usr/sbin/munged
  retry 10 munge_works || die "munged did not start (see /var/log/munge/munged.log)"
  pid=$(live munged /run/munge/munged.pid) || die "munged wrote no pidfile"
  remember munged "$pid"
  say "started munged ($pid)"
fi

# 4. slurmctld, then slurmd
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
ctld=$(live slurmctld /run/slurmctld.pid || true)
slurmd=$(live slurmd /run/slurmd.pid || true)
if [ $changed = 1 ]; then
  [ -z "$slurmd" ] || { say "config changed: restarting slurmd ($slurmd)"; term slurmd "$slurmd"; slurmd=""; }
  [ -z "$ctld" ] || { say "config changed: restarting slurmctld ($ctld)"; term slurmctld "$ctld"; ctld=""; }
fi
if [ -n "$ctld" ] && ! ctld_up; then
  say "slurmctld ($ctld) does not answer; restarting it"
  term slurmctld "$ctld"
  ctld=""
fi
if [ -z "$ctld" ]; then
  rm -f /run/slurmctld.pid
  if [ $CLEAN = 1 ]; then /usr/sbin/slurmctld -c; else /usr/sbin/slurmctld; fi
  retry 30 ctld_up || { tail -n 20 /var/log/slurm/slurmctld.log >&2; die "slurmctld did not come up"; }
  ctld=$(live slurmctld /run/slurmctld.pid) || die "slurmctld wrote no pidfile"
  remember slurmctld "$ctld"
  say "started slurmctld ($ctld)"
fi
if [ -z "$slurmd" ]; then
  /usr/sbin/slurmd
  retry 15 live slurmd /run/slurmd.pid >/dev/null || { tail -n 20 /var/log/slurm/slurmd.log >&2; die "slurmd did not start"; }
  slurmd=$(live slurmd /run/slurmd.pid)
  remember slurmd "$slurmd"
  say "started slurmd ($slurmd)"
fi

# 5. the node must accept work (a restart can leave it down/drained)
state() { sinfo -h -N -n localhost -o '%T' 2>/dev/null | head -n1; }
ready() { case $(state) in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac; }
if ! retry 20 ready; then
  scontrol update NodeName=localhost State=RESUME 2>/dev/null || true
  retry 20 ready || { scontrol show node localhost >&2; die "node not ready (state $(state))"; }
fi
say "ready: partition $PARTITION, $cpus CPUs ($(sinfo -h -o '%T' | head -n1))"
