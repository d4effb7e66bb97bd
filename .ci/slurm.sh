#!/usr/bin/env bash
# Source me: installs and starts a single-node Slurm (munge authentication, no cgroups, no accounting
# database) and exports SLURM_CONF. The slurm backend's tests run against it (they are skipped, with the
# reason, where no Slurm answers). SLURM_STOP is a function that stops the daemons.
W=${SLURM_WORK:-/tmp/mlproj-ci-slurm}
mkdir -p "$W"/{state,spool,out}
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi
H=$(hostname -s); NCPU=$(nproc); MEM=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 2048 ))
getent hosts "$H" >/dev/null || echo "127.0.0.1 $H" >> /etc/hosts   # slurmd must resolve its own NodeName
cat > "$W/slurm.conf" <<CONF
ClusterName=ci
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$W/jobcomp.txt
MinJobAge=3600
KillWait=5
SchedulerParameters=sched_interval=1
NodeName=$H NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$W/slurm.conf
mkdir -p /run/munge && chown munge:munge /run/munge
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
[ -f "$W/slurmctld.pid" ] && kill -0 "$(cat "$W/slurmctld.pid")" 2>/dev/null || slurmctld -f "$SLURM_CONF"
[ -f "$W/slurmd.pid" ] && kill -0 "$(cat "$W/slurmd.pid")" 2>/dev/null || slurmd -f "$SLURM_CONF" -N "$H"
for _ in $(seq 1 100); do sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc' && break; sleep 0.1; done
SLURM_STOP() { kill $(cat "$W/slurmd.pid" "$W/slurmctld.pid" 2>/dev/null) 2>/dev/null || true; }
