"""Tasks lost with their worker, their pool or the interchange, or left with no block to
run on: the error each future gets, and when. The executor takes the futures out of its
table; this sets them.

    interchange ──Report.deaths: WorkerDeath──> worker_died
        killed by a signal that a scheduler sends when it ends a job (SCHEDULER_SIGNALS)?
            no ──> WorkerLost, at once
            yes ──Blocks.explain(block)──> the job lives on: WorkerLost
                                           the job ended: ManagerLost, with the scheduler's reason
    interchange ──ManagerGone (the tasks its pool held)──> pool_lost
        ──Blocks.explain(block)──> ManagerLost for each task (and the job's end, if it ended)
    interchange process ──end of its stdout, or no Ready──> interchange_death: how it ended
        (exit code, signal, not responding) and the last lines of its logs
    scheduler refuses a new block, and none is left ──> block_refused: SubmitError for
        each waiting task, in the scheduler's words

The words are forensics.py's; Blocks.explain waits (up to LOST_GRACE) for the provider's
final state of the block's job, so that a task killed with its job says why the job ended.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Sized
from concurrent.futures import Future
from typing import Any

from livedag.errors import SubmitError
from livedag.executors.htex.blocks import Blocks
from livedag.executors.htex.forensics import (
    manager_lost,
    tail_lines,
    worker_killed_with_block,
    worker_lost,
)
from livedag.executors.htex.protocol import ManagerGone, WorkerDeath
from livedag.providers.base import JobStatus

# What a batch scheduler sends a job's processes when it ends the job (scancel, qdel,
# the walltime); a worker killed so is explained by the job's final state.
SCHEDULER_SIGNALS = frozenset({"SIGTERM", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGINT"})

# A task that was lost with its pool: (task id, try number, its future, its app's name).
LostTask = tuple[int, int, Future[Any], str]


def worker_died(death: WorkerDeath, fut: Future[Any], app_name: str, *, block: str | None,
                job: str | None, blocks: Blocks | None, interchange_log: str) -> None:
    """Fail the task of a worker that died while it ran it."""
    if death.signal not in SCHEDULER_SIGNALS or blocks is None:
        fut.set_exception(worker_lost(death, app_name, block, job))
        return

    def fail(status: JobStatus | None) -> None:
        if status is None:  # the job lives on: the worker alone was killed
            fut.set_exception(worker_lost(death, app_name, block, job))
        else:
            fut.set_exception(worker_killed_with_block(
                death, app_name, block, job, status, interchange_log))

    # A scheduler ending the block's job kills the workers first: ask it why.
    blocks.explain(block, fail)


def pool_lost(msg: ManagerGone, lost: list[LostTask], *, host: str, block: str | None,
              job: str | None, logs: str, blocks: Blocks | None) -> None:
    """Fail the tasks a pool held when it left or fell silent."""

    def fail(status: JobStatus | None) -> None:
        for tid, tries, fut, app_name in lost:
            fut.set_exception(manager_lost(
                msg, tid, tries, app_name, host=host, block=block, job=job,
                logs=logs, job_status=status,
            ))

    if blocks is None:
        fail(None)
    else:  # the block's job may have ended (cancelled, time limit): say so
        blocks.explain(block, fail)


def interchange_death(ix: subprocess.Popen[bytes], what: str, *, outstanding: Sized,
                      log: str, stderr_log: str) -> str:
    """Why the interchange is gone, for the error of every task it held: how its process
    ended, and the end of its log and its stderr. `outstanding` is counted once the
    process has had up to 2 s to end."""
    try:
        code = ix.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        code = None
    how = "is not responding" if code is None else (
        f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
    text = (f"its interchange process (pid {ix.pid}) {what}: it {how}; "
            f"{len(outstanding)} tasks were outstanding. See {log}")
    evidence = ""
    for path in (log, stderr_log):
        with contextlib.suppress(OSError), open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4000))
            evidence += f.read().decode(errors="replace")
    if evidence.strip():
        text += "\n--- last lines of its log ---\n" + tail_lines(evidence.encode(), 10)
    return text


def block_refused(exc: SubmitError, task_id: int, try_number: int, app_name: str,
                  label: str) -> SubmitError:
    """The error of a task that waited when the scheduler refused a new block, and no
    block was left to run it: the scheduler's own words (`exc`, kept as the cause)."""
    err = SubmitError(
        f"task {task_id} {app_name!r} (try {try_number}) cannot run: executor {label!r} "
        f"has no block, and the scheduler refused a new one. {exc}",
        provider=exc.provider, command=exc.command, returncode=exc.returncode,
        stdout=exc.stdout, stderr=exc.stderr, script_path=exc.script_path,
    )
    err.__cause__ = exc
    return err
