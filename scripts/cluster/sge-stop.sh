#!/usr/bin/env bash
# sge-stop.sh - stop what sge-start.sh started; safe when nothing runs.
#
#   qdel every job ─> wait until qstat is empty ─> TERM sge_execd, then sge_qmaster (only
#   the PIDs in their pid files, and only if /proc names that daemon) ─> KILL after 30 s.
# qmaster takes ~5-10 s to shut down. Configuration and spool stay in the system paths
# (`apt-get purge gridengine-master gridengine-exec gridengine-client gridengine-common`
# resets everything).
set -uo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
say() { echo "sge-stop: $*" >&2; }
ours() {   # ours PIDFILE COMM: print the PID if it is a live COMM process
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
  echo "$pid"
}
running() { kill -0 "$1" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

if ours /var/spool/gridengine/qmaster/qmaster.pid sge_qmaster >/dev/null; then
  if [[ -n $(timeout 10 qstat -u '*' 2>/dev/null) ]]; then
    say "deleting all jobs"
    timeout 10 qdel -u '*' >/dev/null 2>&1
    for _ in $(seq 30); do [[ -z $(timeout 10 qstat -u '*' 2>/dev/null) ]] && break; sleep 0.5; done
  fi
fi
for d in "/run/gridengine/execd.pid sge_execd" "/var/spool/gridengine/qmaster/qmaster.pid sge_qmaster"; do
  read -r file comm <<<"$d"
  pid=$(ours "$file" "$comm") || continue
  say "stopping $comm (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 300); do running "$pid" || break; sleep 0.1; done
  running "$pid" && { say "$comm ignored TERM for 30 s: KILL"; kill -KILL "$pid"; }
  rm -f "$file"
done
exit 0
