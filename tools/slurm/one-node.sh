#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the project's cluster test and for trying
# `brainrecon slurm` without a cluster: Debian's slurmctld, slurmd and munge, run as root
# without systemd. Everything it writes is under STATE (default /tmp/brainrecon-slurm); the
# daemons it starts are recorded there and `stop` ends exactly those.
#
#   bash tools/slurm/one-node.sh start [STATE]   # installs the packages when missing
#   export SLURM_CONF=STATE/slurm.conf           # what sbatch, squeue, scontrol read
#   bash tools/slurm/one-node.sh stop [STATE]
#
# Without cgroups (no systemd here) memory limits are not enforced; DefMemPerCPU still lets
# jobs share the node instead of each taking all of its memory.
set -euo pipefail
action=${1:-}
state=${2:-/tmp/brainrecon-slurm}

die() { echo "error: $*" >&2; exit 2; }

install_packages() {
  local missing=()
  for tool in slurmctld slurmd sbatch munged; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || die "${missing[*]} missing and apt-get not available: install Slurm (slurmctld slurmd slurm-client) and munge"
  echo "installing slurmctld slurmd slurm-client munge" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

write_conf() {
  local host node
  host=$(hostname -s)
  # slurmd -C prints this node's line (NodeName=… CPUs=… RealMemory=…) and an UpTime line;
  # loopback addresses spare the daemons a lookup of the host's name.
  node=$(slurmd -C | head -n1)
  mkdir -p "$state/ctld" "$state/spool" "$state/logs"
  cat > "$state/slurm.conf.tmp" <<CONF
ClusterName=brainrecon
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1
JobCompType=jobcomp/filetxt
JobCompLoc=$state/logs/jobcomp.txt
MinJobAge=86400
ReturnToService=2
MpiDefault=none
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/logs/slurmctld.log
SlurmdLogFile=$state/logs/slurmd.log
$node NodeAddr=127.0.0.1
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  mv "$state/slurm.conf.tmp" "$state/slurm.conf"
}

start_munge() {
  # An already running munged (a machine's own) is used as it is.
  if munge -n >/dev/null 2>&1; then return; fi
  [ -f /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || /usr/sbin/create-munge-key -f >/dev/null; }
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged --force --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$state/munged.pid"
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 && return; sleep 0.1; done
  die "munged did not start"
}

wait_for_node() {
  for _ in $(seq 100); do
    if SLURM_CONF="$state/slurm.conf" sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      return
    fi
    sleep 0.1
  done
  die "the node did not come up; see $state/logs/slurmctld.log and slurmd.log"
}

# Whether the process recorded in pid file $1 is alive.
running() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
  [ "$(id -u)" -eq 0 ] || die "the one-node cluster runs its daemons as root"
  if running "$state/slurmctld.pid" && running "$state/slurmd.pid"; then
    echo "already running: export SLURM_CONF=$state/slurm.conf" >&2
    return
  fi
  # Another cluster's daemons would hold the ports this one needs (6817, 6818).
  if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    die "a slurmctld or slurmd not started with STATE=$state is running on this machine; stop it first (one-node.sh stop ITS_STATE)"
  fi
  install_packages
  write_conf
  start_munge
  # -c: a fresh controller state, so job ids and records from an earlier cluster do not linger.
  slurmctld -c -f "$state/slurm.conf"
  slurmd -f "$state/slurm.conf"
  wait_for_node
  echo "one-node Slurm running: export SLURM_CONF=$state/slurm.conf" >&2
}

stop() {
  # Jobs still running would outlive slurmd in their slurmstepd processes.
  if running "$state/slurmctld.pid"; then
    SLURM_CONF="$state/slurm.conf" scancel --full -u "$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(SLURM_CONF="$state/slurm.conf" squeue -h -t running,completing 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  for daemon in slurmd slurmctld munged; do
    local file="$state/$daemon.pid"
    [ -f "$file" ] || continue
    local pid
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$file"
  done
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) die "usage: one-node.sh start|stop [STATE]" ;;
esac
