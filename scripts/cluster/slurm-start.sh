#!/usr/bin/env bash
# slurm-start.sh - bring up livedag's throwaway single-node Slurm cluster (for tests).
#
#   eval "$(scripts/cluster/slurm-start.sh)"     # stdout: export SLURM_CONF=<dir>/etc/slurm.conf
#   scripts/cluster/slurm-stop.sh [--purge]
#
# Debian 12, Slurm 22.05 + munge from apt, run as root; no systemd, no cgroups, no docker.
#
#   apt-get (if missing) ─> <dir>/etc/slurm.conf + munge key ─> munged ─> slurmctld -c ─> slurmd
#                                                               (each setsid, stdio detached,
#                                                                PID in <dir>/run/NAME.pid)
#   ─> wait until `sinfo` shows node "localhost" idle ─> print the export line
#
# Idempotent: a cluster from this state dir that is fully up is left alone (~0.1 s); a
# half-up one (a daemon died) is stopped by PID and started again. Two starts at once
# serialise on <dir>/.lock. On any failure the daemons this run started are stopped again.
#
# Why the config looks like this (each line was needed on this kind of machine):
#   proctrack/linuxproc, task/none, jobacct_gather/none   no cgroups here
#   accounting_storage/none + jobcomp/filetxt             no slurmdbd; `sacct -c` still
#                                                          reports finished jobs
#   cons_tres + CR_Core_Memory + DefMemPerCPU             two jobs can share the node
#   EnforcePartLimits=ALL                                 impossible requests fail at sbatch
#                                                          instead of pending forever
#   KillWait=5                                            scancel/timeout end jobs quickly
# Traps handled: munged refuses a socket below a 0700 dir (pytest tmp dirs) and socket
# paths over 108 bytes, so its socket lives in /run/livedag-slurm-<hash>; `slurmd -N
# localhost` makes the machine's host name irrelevant; job ids restart at 1 (-c).
#
# Environment:
#   LIVEDAG_SLURM_DIR       state dir                          [${TMPDIR:-/tmp}/livedag-slurm]
#   LIVEDAG_SLURM_TIMEOUT   seconds to wait for the node       [60]
#   LIVEDAG_SLURM_PORTS     "CTLD SLURMD" ports                [6817 6818]
#   LIVEDAG_CLUSTER_INSTALL 1: apt-get missing packages; 0: fail instead [1]
set -euo pipefail
set +m   # no job control: background daemons stay out of any terminal's job table

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${LIVEDAG_SLURM_DIR:-${TMPDIR:-/tmp}/livedag-slurm}
TIMEOUT=${LIVEDAG_SLURM_TIMEOUT:-60}
read -r CTLD_PORT SLURMD_PORT <<<"${LIVEDAG_SLURM_PORTS:-6817 6818}"
INSTALL=${LIVEDAG_CLUSTER_INSTALL:-1}
NODE=localhost
PARTITION=debug

STARTED=0
say() { echo "slurm-start: $*" >&2; }
die() {
  say "ERROR: $*"
  ((STARTED)) && LIVEDAG_SLURM_DIR=$DIR LIVEDAG_SLURM_LOCKED=1 bash "$HERE/slurm-stop.sh" >&2
  exit 1
}

[[ $(id -u) == 0 ]] || die "must run as root (slurmd runs jobs as root here)"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/etc/slurm.conf
export SLURM_CONF=$CONF
exec 9>"$DIR/.lock"
flock -w $((TIMEOUT + 600)) 9 || die "another start holds $DIR/.lock"
MUNGE_RUN=/run/livedag-slurm-$(printf %s "$DIR" | md5sum | cut -c1-8)
MUNGE_SOCKET=$MUNGE_RUN/munge.socket
((${#DIR} <= 60)) || say "warning: state dir is ${#DIR} chars; slurmd step sockets under it must stay < 108 bytes"

# alive NAME: <dir>/run/NAME.pid names a running (non-zombie) process called NAME.
alive() {
  local pid
  pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}
node_state() { timeout 10 sinfo --noheader --nodes=$NODE --format=%T 2>/dev/null | head -n1; }
node_ready() { case $(node_state) in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
show_logs() {
  local f
  for f in "$DIR"/log/*.out "$DIR"/log/*.log; do
    [[ -s $f ]] && { say "---- last lines of $f"; tail -n 15 "$f" >&2; }
  done
  return 0
}
done_ok() { echo "export SLURM_CONF=$CONF" | tee "$DIR/env.sh"; exit 0; }

# 1. packages --------------------------------------------------------------------------
need=()
for b in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/bin/sacct /usr/sbin/munged; do
  [[ -x $b ]] || need+=("$b")
done
if ((${#need[@]})); then
  [[ $INSTALL == 1 ]] || die "missing ${need[*]} and LIVEDAG_CLUSTER_INSTALL=0"
  say "installing slurm-wlm and munge with apt-get (missing: ${need[*]}) ..."
  export DEBIAN_FRONTEND=noninteractive
  # DPkg::Lock::Timeout does not cover the lists lock that `update` takes: retry.
  for i in 1 2 3 4 5 6; do
    apt-get -qq -o DPkg::Lock::Timeout=300 update >&2 && break
    ((i < 6)) || die "apt-get update failed"
    sleep 10
  done
  apt-get -qq -y --no-install-recommends -o DPkg::Lock::Timeout=600 install \
    slurm-wlm slurmctld slurmd slurm-client munge >&2 || die "apt-get install failed"
fi

# 2. already up? -------------------------------------------------------------------------
if alive munged && alive slurmctld && alive slurmd && [[ -f $CONF ]] && node_ready; then
  say "already up (node $(node_state), state dir $DIR)"
  done_ok
fi
if alive munged || alive slurmctld || alive slurmd; then
  say "cluster in $DIR is only partly up: stopping what is left"
  LIVEDAG_SLURM_DIR=$DIR LIVEDAG_SLURM_LOCKED=1 bash "$HERE/slurm-stop.sh" >&2
fi
for p in "$CTLD_PORT" "$SLURMD_PORT"; do
  port_busy "$p" && die "port $p is taken (another Slurm?); set LIVEDAG_SLURM_PORTS"
done

# 3. configuration -----------------------------------------------------------------------
rm -rf "$DIR/ctld" "$DIR/slurmd" "$DIR/run" "$DIR/log"
mkdir -p "$DIR"/{etc,ctld,slurmd,log,run,munge}
chmod 755 "$DIR" "$DIR/etc"
chmod 700 "$DIR/munge"
# `slurmd -C` prints the real layout: "NodeName=vm CPUs=2 ... RealMemory=24105"; keep all
# but the name (our node is called localhost whatever the machine's name is).
HW=$(/usr/sbin/slurmd -C | head -n1 | sed -e 's/^NodeName=[^ ]* //')
[[ $HW == *CPUs=* && $HW == *RealMemory=* ]] || die "unexpected 'slurmd -C' output: $HW"
cat >"$CONF.new" <<EOF
# Written by livedag scripts/cluster/slurm-start.sh: a single-node test cluster.
ClusterName=livedag
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
MpiDefault=none
EnforcePartLimits=ALL
ReturnToService=2
KillWait=5
MailProg=/bin/true
NodeName=$NODE NodeAddr=127.0.0.1 $HW State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
mv "$CONF.new" "$CONF"
chmod 644 "$CONF"

# 4. daemons -----------------------------------------------------------------------------
# start NAME CMD...: foreground mode of the daemon, own session (a Ctrl-C or process-group
# kill aimed at the caller misses it), stdio detached (a caller reading our stdout must not
# wait for it), lock fd closed. Each daemon also writes its own pid file, to the same path.
start() {
  local name=$1; shift
  STARTED=1
  setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 9>&- &
  echo $! >"$DIR/run/$name.pid"
}
KEY=$DIR/munge/munge.key
if [[ ! -s $KEY ]]; then
  /usr/sbin/mungekey --create --keyfile="$KEY" 2>/dev/null \
    || dd if=/dev/urandom of="$KEY" bs=1024 count=1 2>/dev/null
fi
chmod 400 "$KEY"
mkdir -p "$MUNGE_RUN" && chmod 755 "$MUNGE_RUN"
rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
start munged /usr/sbin/munged --foreground --socket="$MUNGE_SOCKET" --key-file="$KEY" \
  --pid-file="$DIR/run/munged.pid" --seed-file="$DIR/munge/munged.seed"
for _ in $(seq 50); do [[ -S $MUNGE_SOCKET ]] && break; sleep 0.1; done
[[ -S $MUNGE_SOCKET ]] || { show_logs; die "munged did not create $MUNGE_SOCKET"; }

start slurmctld /usr/sbin/slurmctld -D -c -f "$CONF"
for _ in $(seq 100); do timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.2; done
start slurmd /usr/sbin/slurmd -D -N "$NODE" -f "$CONF"

deadline=$((SECONDS + TIMEOUT))
until node_ready; do
  for d in munged slurmctld slurmd; do
    alive "$d" || { show_logs; die "$d exited during start-up"; }
  done
  ((SECONDS < deadline)) || { show_logs; die "node not idle after ${TIMEOUT}s (state '$(node_state)')"; }
  sleep 0.3
done
say "up: node $NODE $(node_state), partition $PARTITION, state dir $DIR (${SECONDS}s)"
done_ok
