"""Why a worker or a pool was lost, in words a user can act on. Pure functions, no I/O.

    pool:   worker exit status + sampled peak RSS + the worker's last note ──> cause
    kernel: WorkerDeath ──> WorkerLost;  ManagerGone ──> ManagerLost (per task)
            either one on a block whose batch job ended (JobStatus from the provider)
            ──> ManagerLost that gives the scheduler's reason (cancelled, time limit ...)
"""

from __future__ import annotations

import signal

from livedag.errors import ManagerLost, WorkerLost
from livedag.executors.htex.protocol import ManagerGone, WorkerDeath
from livedag.providers.base import JobStatus

_SIGNAL_CAUSES = {
    "SIGKILL": (
        "killed by SIGKILL: often the out-of-memory killer (see `dmesg`, or the batch "
        "job's memory limit){rss}"
    ),
    "SIGSEGV": (
        "crashed with SIGSEGV (segmentation fault): native code (a C extension, ctypes, a "
        "library) touched memory it does not own{rss}"
    ),
    "SIGBUS": (
        "crashed with SIGBUS: native code made a bad memory access (or a mapped file "
        "shrank){rss}"
    ),
    "SIGABRT": (
        "aborted with SIGABRT: native code called abort(), often a failed assertion or "
        "detected heap corruption{rss}"
    ),
    "SIGFPE": "crashed with SIGFPE: an arithmetic fault in native code{rss}",
    "SIGILL": "crashed with SIGILL: native code built for another CPU, or a corrupted binary{rss}",
    "SIGTERM": (
        "terminated by SIGTERM: something asked it to stop (the batch system at the end of "
        "the walltime, an administrator, a cancel){rss}"
    ),
}


def signal_name(returncode: int | None) -> str:
    if returncode is None or returncode >= 0:
        return ""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.1f} MiB"


def describe_exit(returncode: int | None, peak_rss: int, note: str = "", *,
                  in_task: bool = True) -> str:
    """The likely cause of a worker's death while it ran a task.

    `peak_rss` is the largest resident set size sampled during the task (0 if none).
    `note` is what the worker said on its way out (a task that raised SystemExit).
    """
    rss = f"; this task's peak RSS was {mib(peak_rss)} (sampled)" if peak_rss else ""
    name = signal_name(returncode)
    if note:  # the task raised SystemExit or KeyboardInterrupt (which ends with SIGINT)
        return f"{note} ({name or f'exit code {returncode}'})"
    if name:
        template = _SIGNAL_CAUSES.get(name, "killed by {name}{rss}")
        return template.format(name=name, rss=rss)
    if returncode is None:
        return f"the worker stopped answering and was killed{rss}"
    if not in_task:
        return f"exited with code {returncode} before it was ready to run tasks (see its stderr)"
    return (
        f"exited with code {returncode} while running the task, without returning a result: "
        f"the task (or native code it called) ended the process, e.g. with os._exit(){rss}"
    )


def tail_lines(data: bytes, lines: int = 20, limit: int = 4000) -> str:
    """The last `lines` lines of `data` (at most `limit` characters), decoded leniently."""
    text = data[-limit:].decode("utf-8", errors="replace")
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def worker_lost(d: WorkerDeath, app_name: str, block: str | None, job: str | None) -> WorkerLost:
    status = f"signal {d.signal}" if d.signal else f"exit code {d.exitcode}"
    text = (f"task {d.task_id} {app_name!r} (try {d.try_number}): its worker process "
            f"(pid {d.pid} on {d.host}, block {block}, job {job}) died with {status} "
            f"while running it: {d.cause}.")
    if d.stderr_tail:
        text += "\n--- last lines of the worker's stderr ---\n" + d.stderr_tail
    text += f"\nMore in {d.log_path}."
    return WorkerLost(text, task_id=d.task_id, host=d.host, pid=d.pid,
                      exitcode=d.exitcode, signal=d.signal, stderr_tail=d.stderr_tail)


def manager_lost(msg: ManagerGone, task_id: int, try_number: int, app_name: str, *,
                 host: str, block: str | None, job: str | None, logs: str,
                 job_status: JobStatus | None = None) -> ManagerLost:
    where = (f"task {task_id} {app_name!r} (try {try_number}) was lost with its worker pool "
             f"on {host} (block {block}, job {job})")
    if msg.lost:
        why = (f"the pool's last heartbeat was {msg.last_heard:.1f} s ago ({msg.reason}); "
               "it was stopped, killed, or its node or network failed")
    else:
        why = f"the pool left: {msg.reason}"
    if job_status is not None:
        return block_ended(job_status, where, f"What the kernel saw: {why}", logs=logs,
                           manager=msg.manager, host=host, block=block, job=job,
                           last_heard=msg.last_heard)
    return ManagerLost(f"{where}: {why}.\nMore in {logs}.", manager_id=msg.manager, host=host,
                       block_id=block, job_id=job, last_heartbeat_age=msg.last_heard)


def worker_killed_with_block(d: WorkerDeath, app_name: str, block: str | None,
                             job: str | None, job_status: JobStatus, logs: str) -> ManagerLost:
    """A worker killed by the signal its scheduler sends when it ends the block's job."""
    where = (f"task {d.task_id} {app_name!r} (try {d.try_number}) was lost with its block "
             f"{block} (job {job}) on {d.host}")
    how = f"Its worker (pid {d.pid}) was killed by {d.signal or f'exit code {d.exitcode}'}"
    return block_ended(job_status, where, how, logs=f"{d.log_path} and {logs}", manager="",
                       host=d.host, block=block, job=job, last_heard=None)


def block_ended(status: JobStatus, where: str, how: str, *, logs: str, manager: str,
                host: str, block: str | None, job: str | None,
                last_heard: float | None) -> ManagerLost:
    """The ManagerLost of a task whose block's job ended under it: the scheduler's reason
    (it names the job's stdout/stderr files) comes first, then what the pool saw."""
    reason = (status.message or f"state {status.state.name}").rstrip(".")
    text = f"{where}: {reason}.\n{how}.\nMore in {logs}."
    if status.stdout_path and status.stdout_path not in text:
        text += f"\nThe job's output: {status.stdout_path}, {status.stderr_path}."
    return ManagerLost(text, manager_id=manager, host=host, block_id=block, job_id=job,
                       last_heartbeat_age=last_heard, job_state=status.state.name,
                       job_reason=reason)
