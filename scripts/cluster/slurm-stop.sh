#!/usr/bin/env bash
# slurm-stop.sh - stop the cluster that slurm-start.sh started; safe when nothing runs.
#
#   cancel every job (slurmd does NOT end running jobs when it exits: their slurmstepd
#   would be orphaned) ─> wait until squeue is empty ─> TERM slurmd, slurmctld, munged
#   (only the PIDs in <dir>/run/*.pid whose /proc comm still names that daemon; never by
#   name) ─> KILL whatever is alive after 10 s ─> report any slurmstepd left behind.
#
# After this, SLURM_CONF points at a config whose daemons are gone: unset it, or every
# Slurm command waits 60 s for a controller that will not answer.
#
#   LIVEDAG_SLURM_DIR   state dir [${TMPDIR:-/tmp}/livedag-slurm]
#   --purge             also delete the state dir and munged's socket dir
set -uo pipefail

DIR=${LIVEDAG_SLURM_DIR:-${TMPDIR:-/tmp}/livedag-slurm}
PURGE=0
for a in "$@"; do
  case $a in --purge) PURGE=1 ;; *) echo "usage: $0 [--purge]" >&2; exit 2 ;; esac
done
say() { echo "slurm-stop: $*" >&2; }
[[ -d $DIR ]] || { say "nothing to stop ($DIR does not exist)"; exit 0; }
DIR=$(cd "$DIR" && pwd)
export SLURM_CONF=$DIR/etc/slurm.conf
if [[ ${LIVEDAG_SLURM_LOCKED:-0} != 1 ]]; then   # slurm-start.sh holds it when it calls us
  exec 9>"$DIR/.lock"
  flock -w 120 9 || { say "could not take $DIR/.lock"; exit 1; }
fi

ours() {   # ours NAME: print the recorded PID if it is a live NAME process
  local pid
  pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
  echo "$pid"
}
# running PID: alive and not a zombie (daemons are orphans; PID 1 reaps them, sometimes late)
running() { kill -0 "$1" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
queue() { timeout 10 squeue --noheader --format=%i 2>/dev/null; }

# 1. jobs, while slurmctld and slurmd can still end them cleanly
if ours slurmctld >/dev/null && ours slurmd >/dev/null && [[ -f $SLURM_CONF ]]; then
  jobs=$(queue | tr '\n' ' ')
  if [[ -n ${jobs// /} ]]; then
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null
    for _ in $(seq 40); do [[ -z $(queue) ]] && break; sleep 0.5; done   # KillWait=5
  fi
fi

# 2. daemons: TERM all three, wait up to 10 s, then KILL
declare -A pids=()
for name in slurmd slurmctld munged; do
  if pid=$(ours "$name"); then
    pids[$name]=$pid
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
  fi
  rm -f "$DIR/run/$name.pid"
done
for _ in $(seq 100); do
  left=0
  for name in "${!pids[@]}"; do running "${pids[$name]}" && left=1; done
  ((left)) || break
  sleep 0.1
done
for name in "${!pids[@]}"; do
  if running "${pids[$name]}"; then
    say "$name (pid ${pids[$name]}) ignored TERM for 10 s: KILL"
    kill -KILL "${pids[$name]}" 2>/dev/null
  fi
done

# 3. job steps that outlived their daemons (only if slurmctld was already gone): report.
deadline=$((SECONDS + 3))
while :; do
  steps=""
  for p in /proc/[0-9]*; do
    c=""; read -r c <"$p/comm" 2>/dev/null || continue
    [[ $c == slurmstepd ]] && running "${p#/proc/}" && steps+="${p#/proc/} "
  done
  [[ -z $steps ]] || ((SECONDS >= deadline)) && break
  sleep 0.2
done
[[ -n $steps ]] && say "warning: slurmstepd still running (pids $steps): jobs nobody ended"

if ((PURGE)); then
  rm -rf "/run/livedag-slurm-$(printf %s "$DIR" | md5sum | cut -c1-8)" "$DIR"
  say "stopped; removed $DIR"
else
  say "stopped (state and logs kept in $DIR)"
fi
exit 0
