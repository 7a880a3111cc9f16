#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for hpo's Slurm tests (and for trying the
# Slurm backend on a laptop). Debian's slurm-wlm and munge; no systemd: daemons are started
# directly and stopped by PID.
#
#   scripts/slurm-cluster.sh install   # apt-get install slurm-wlm munge (as root)
#   scripts/slurm-cluster.sh up        # write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   scripts/slurm-cluster.sh down      # stop them, cancel every job
set -euo pipefail
STATE=${HPO_SLURM_STATE:-/var/tmp/hpo-slurm}
HOST=$(hostname -s)

install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
}

up() {
  mkdir -p "$STATE"/{state,spool} /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  fi
  chmod 700 /etc/munge /var/lib/munge /var/log/munge
  chmod 400 /etc/munge/munge.key
  chown -R root:root /etc/munge /run/munge /var/log/munge /var/lib/munge
  if ! pgrep -x munged >/dev/null; then
    munged --force --pid-file="$STATE/munged.pid"
  fi
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=hpo
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MailProg=/bin/true
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ReturnToService=2
MinJobAge=600
KillWait=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  pgrep -x slurmctld >/dev/null || slurmctld -i
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 50); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm is up on $HOST"
      return 0
    fi
    sleep 0.2
  done
  echo "slurm did not come up; logs in $STATE" >&2
  tail -n 20 "$STATE"/*.log >&2 || true
  return 1
}

down() {
  scancel --user=root 2>/dev/null || true
  for d in slurmd slurmctld munged; do
    if [ -f "$STATE/$d.pid" ]; then
      kill "$(cat "$STATE/$d.pid")" 2>/dev/null || true
      rm -f "$STATE/$d.pid"
    fi
  done
  echo "slurm is down"
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  *) echo "usage: $0 install|up|down" >&2; exit 2 ;;
esac
