#!/usr/bin/env bash
# sge-start.sh - bring up livedag's single-node Son of Grid Engine 8.1.9 (for tests).
#
#   eval "$(scripts/cluster/sge-start.sh)"   # stdout: export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
#   scripts/cluster/sge-stop.sh
#
# Debian 12 packages gridengine-master/-exec/-client, run as root, no systemd. They are not
# relocatable: the cell lives in /var/lib/gridengine/default and the spool in
# /var/spool/gridengine. The daemons fork and drop to the user sgeadmin, so their PIDs come
# from their own pid files (qmaster: <spool>/qmaster/qmaster.pid; execd: $SGE_EXECD_PIDFILE).
#
#   apt-get (if missing) ─> master host + host alias ─> sge_qmaster ─> cluster config
#   (root may run jobs, scheduler every 1 s, no mail) ─> sge_execd ─> queue all.q ─> ready
#
# Idempotent: when both daemons are alive and all.q answers it does nothing (~0.1 s).
# Fixes each of these, found on a fresh install:
#   - act_qmaster is empty after a non-interactive install;
#   - 127.0.0.1 resolves to "localhost", not the machine's name: commlib then refuses the
#     client ("access denied ... not identical to clients host name"): an alias fixes it;
#   - min_uid/min_gid 1000 reject root's jobs;
#   - the queue template names parallel environments (make, smp, mpi) that do not exist;
#   - the scheduler runs every 15 s: jobs would wait that long to start;
#   - the accounting file is flushed every 15 s: qacct would not know a finished job yet;
#   - `#$ -S /bin/bash` starts a *login* shell (login_shells lists bash): it sources root's
#     profile, and a job killed while the profile ran `pyenv rehash` left pyenv's lock
#     behind, so every later login shell hung; jobs here get a plain, non-login shell.
#
# Environment:
#   LIVEDAG_SGE_TIMEOUT      seconds to wait for the exec host and queue [60]
#   LIVEDAG_SGE_SLOTS        slots of all.q                              [nproc]
#   LIVEDAG_CLUSTER_INSTALL  1: apt-get missing packages; 0: fail instead [1]
set -euo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
export SGE_EXECD_PIDFILE=/run/gridengine/execd.pid
QMASTER_PID=/var/spool/gridengine/qmaster/qmaster.pid   # sge_qmaster picks this path itself
TIMEOUT=${LIVEDAG_SGE_TIMEOUT:-60}
SLOTS=${LIVEDAG_SGE_SLOTS:-$(nproc)}
INSTALL=${LIVEDAG_CLUSTER_INSTALL:-1}
HOST=$(hostname)
COMMON=$SGE_ROOT/$SGE_CELL/common

say() { echo "sge-start: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
done_ok() { echo "export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL"; exit 0; }
[[ $(id -u) == 0 ]] || die "must run as root"
alive() {   # alive PIDFILE COMM
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}
queue_up() { timeout 10 qstat -f -q all.q 2>/dev/null | grep -q "all.q@$HOST"; }

# 1. packages (postinst creates the cell "default", classic berkeleydb spooling)
if [[ ! -x /usr/sbin/sge_qmaster || ! -x /usr/sbin/sge_execd || ! -x /usr/bin/qsub || ! -x /usr/bin/qacct ]]; then
  [[ $INSTALL == 1 ]] || die "gridengine is not installed and LIVEDAG_CLUSTER_INSTALL=0"
  say "installing gridengine-master/-exec/-client with apt-get ..."
  export DEBIAN_FRONTEND=noninteractive
  for i in 1 2 3 4 5 6; do
    apt-get -qq -o DPkg::Lock::Timeout=300 update >&2 && break
    ((i < 6)) || die "apt-get update failed"
    sleep 10
  done
  apt-get -qq -y --no-install-recommends -o DPkg::Lock::Timeout=600 install \
    gridengine-master gridengine-exec gridengine-client >&2 || die "apt-get install failed"
fi

if alive $QMASTER_PID sge_qmaster && alive $SGE_EXECD_PIDFILE sge_execd && queue_up; then
  say "already up (all.q@$HOST)"
  done_ok
fi

# 2. names: this host is the master, and "localhost" is another name for it
echo "$HOST" >"$COMMON/act_qmaster"
echo "$HOST localhost" >"$COMMON/host_aliases"
mkdir -p /run/gridengine && chown sgeadmin: /run/gridengine

# 3. qmaster (it daemonizes itself; stdio detached so callers reading our output never wait)
alive $QMASTER_PID sge_qmaster || /usr/sbin/sge_qmaster </dev/null >/dev/null 2>&1
for _ in $(seq 100); do timeout 10 qconf -sh >/dev/null 2>&1 && break; sleep 0.2; done
timeout 10 qconf -sh >/dev/null 2>&1 || die "qmaster does not answer (see /var/spool/gridengine/qmaster/messages)"

# 4. cluster and scheduler configuration (same result every time): min_uid/min_gid 0,
#    no mailer, no login shells, accounting flushed every second (reporting_params continues on the next
#    line of `qconf -sconf`, so flush_time is matched anywhere)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
qconf -sconf global | sed -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
  -e 's#^mailer .*#mailer /bin/true#' -e 's/flush_time=[0-9:]*/flush_time=00:00:01/' \
  -e 's/^login_shells .*/login_shells none/' >"$tmp/global"
(cd "$tmp" && qconf -Mconf global >/dev/null)      # qconf takes the config name from the file name
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
  -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' \
  >"$tmp/sched"
qconf -Msconf "$tmp/sched" >/dev/null
qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null

# 5. execd (registers as exec host since $HOST is an admin host)
alive $SGE_EXECD_PIDFILE sge_execd || /usr/sbin/sge_execd </dev/null >/dev/null 2>&1
deadline=$((SECONDS + TIMEOUT))
until qconf -sel 2>/dev/null | grep -qx "$HOST"; do
  ((SECONDS < deadline)) || die "exec host $HOST did not register (see /var/spool/gridengine/execd/$HOST/messages)"
  sleep 0.5
done

# 6. the queue
if ! qconf -sql 2>/dev/null | grep -qx all.q; then
  qconf -sq | sed -e 's/^qname .*/qname all.q/' -e "s/^hostlist .*/hostlist $HOST/" \
    -e "s/^slots .*/slots $SLOTS/" -e 's/^load_thresholds .*/load_thresholds NONE/' \
    -e 's#^shell .*#shell /bin/bash#' -e 's/^pe_list .*/pe_list NONE/' >"$tmp/all.q"
  qconf -Aq "$tmp/all.q" >/dev/null || die "qconf -Aq all.q failed"
fi
qmod -c all.q >/dev/null 2>&1 || true     # clear an error state an earlier run may have left
until queue_up; do
  ((SECONDS < deadline)) || die "queue all.q@$HOST is not visible"
  sleep 0.5
done
say "up: all.q@$HOST, $SLOTS slots (${SECONDS}s)"
done_ok
