"""What a user does to tasks that already exist: cancel one, resubmit one that failed.

    cancel(fut)      PENDING ─────────────> CANCELLED  (never launched)
                     LAUNCHED, not started > CANCELLED  (withdrawn from its executor)
    resubmit(task)   FAILED | CANCELLED ──> PENDING    with the tasks it blocked
                     DEP_FAIL ────────────> its root causes are resubmitted instead

The notebook's Resubmit and Cancel buttons, `livedag.resubmit()` and
`AppFuture.cancel()` all end here. A resubmitted task keeps its futures and its history
of tries: the futures go back to pending and later hold the new outcome, and with
`use_latest_definition` an app redefined since (a notebook cell run again) runs with its
newest function. These functions move the kernel's tasks, under its lock, through the
same steps its own launches take.
"""

from __future__ import annotations

import functools
import sys
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from livedag import events as ev
from livedag.apps import AppBase
from livedag.errors import TaskCancelled
from livedag.futures import AppFuture, DataFuture, keep_callback, record_of
from livedag.task import StateMembers, TaskRecord

if TYPE_CHECKING:
    from livedag.dataflow import DataFlowKernel

_S = StateMembers


def cancel(dfk: DataFlowKernel, fut: AppFuture, reason: str) -> bool:
    """Cancel a task that has not started. Its dependents end as dependency failures."""
    record = fut.task_record
    with dfk._lock:
        exec_fu = None
        if record.state is _S.PENDING and not record.claimed:
            record.claimed = True
        elif record.state is _S.LAUNCHED and record.exec_fu is not None:
            exec_fu = record.exec_fu
        else:
            return False
    # Outside the lock: a cancelled executor future runs the kernel's _exec_done at once.
    if exec_fu is not None:
        if not exec_fu.cancel():
            return False  # it has started: too late
        record.tries[-1].outcome = _S.CANCELLED.value
        if record.lent:
            dfk._take_back(record, exec_fu)
    with dfk._lock:
        record.exception = TaskCancelled(record.id, record.app_name, reason)
        dfk._move(record, _S.CANCELLED)
    if dfk.bus.active:
        dfk.bus.publish(ev.TaskCancelled(time.time(), record.id, reason))
    fut._cancel_now()
    for df in record.outputs:
        df.cancel()
    return True


def resubmit(dfk: DataFlowKernel, target: AppFuture | TaskRecord | int, *,
             use_latest_definition: bool) -> AppFuture:
    """Run a failed (or cancelled) task again and re-arm the tasks it blocked (see
    DataFlowKernel.resubmit)."""
    record = find(dfk, target)
    # Taken now: a task that succeeds lets go of its future (DataFlowKernel._succeed), and
    # this one may succeed before we return.
    fut = record.app_fu
    if record.state is _S.DEP_FAIL:
        for tid in record.root_cause_ids:
            root = dfk.tasks.get(tid)
            if root is not None and root.state.is_failure:
                resubmit(dfk, root, use_latest_definition=use_latest_definition)
        assert fut is not None
        return fut
    if record.state not in (_S.FAILED, _S.CANCELLED):
        raise ValueError(
            f"task {record.id} {record.app_name!r} is {record.state.value}: only failed, "
            "cancelled or dependency-failed tasks can be resubmitted"
        )
    assert fut is not None
    if record.lent:
        raise ValueError(
            f"task {record.id} {record.app_name!r} cannot be resubmitted: its arguments went "
            f"with its last try to executor {record.executor!r}, and did not come back with "
            "its failure. Call the app again instead"
        )
    blocked = _blocked_descendants(record)
    redefined = False
    for r in [record, *blocked]:
        if use_latest_definition:
            redefined |= _use_latest_definition(r)
        r.exception = None
        r.root_cause_ids = ()
        r.fail_count = 0
        r.claimed = False
        r.time_returned = None
        with dfk._lock:
            dfk._move(r, _S.PENDING)
        dfk.tasks[r.id] = r
        assert r.app_fu is not None
        r.app_fu._reset()
        for df in r.outputs:
            df._reset()
    if dfk.bus.active:
        dfk.bus.publish(ev.TaskResubmitted(time.time(), record.id, record.try_number + 1,
                                           tuple(r.id for r in blocked), redefined))
    # Count the inputs still to come; the callbacks added at submit time fire again.
    _restore_dep_callbacks(dfk, blocked)
    for r in [record, *blocked]:
        with dfk._lock:
            r.pending_deps = sum(1 for d in r.depends_on if not d.done())
            ready = r.pending_deps == 0
        if ready:
            dfk._soon(dfk._launch_if_ready, r)
    return fut


def find(dfk: DataFlowKernel, target: AppFuture | TaskRecord | int) -> TaskRecord:
    """The task record of a future, a record or a task id."""
    if isinstance(target, AppFuture):
        return target.task_record
    if isinstance(target, TaskRecord):
        return target
    record = dfk.tasks.get(target)
    if record is None:
        raise KeyError(f"no task {target} is known to this kernel (finished tasks are "
                       "forgotten when garbage_collect=True)")
    return record


def _restore_dep_callbacks(dfk: DataFlowKernel, blocked: list[TaskRecord]) -> None:
    """A callback added to an input that had already ended when the task was made ran
    at once and was not kept; put it back on the reset inputs before they run again."""
    for r in blocked:
        for d in r.depends_on:
            if isinstance(d, (AppFuture, DataFuture)) and not d.done():
                keep_callback(d, functools.partial(dfk._dep_done, r))


def _blocked_descendants(root: TaskRecord) -> list[TaskRecord]:
    found: list[TaskRecord] = []
    seen = {root.id}
    stack = list(root.dependents)
    while stack:
        r = stack.pop()
        if r.id in seen or r.state is not _S.DEP_FAIL:
            continue
        seen.add(r.id)
        found.append(r)
        stack.extend(r.dependents)
    # A task that also waits for another failed input stays dependency-failed until that
    # input is resubmitted too: launched while that input is reset, it would block the
    # thread that launched it (and with one worker, deadlock).
    while True:
        ids = {root.id} | {r.id for r in found}
        keep = [r for r in found if not any(_failed_outside(d, ids) for d in r.depends_on)]
        if len(keep) == len(found):
            return sorted(found, key=lambda r: r.id)
        found = keep


def _failed_outside(dep: Future[Any], ids: set[int]) -> bool:
    parent = record_of(dep)
    if parent is not None and parent.id in ids:
        return False
    return dep.done() and (dep.cancelled() or dep.exception() is not None)


def _use_latest_definition(record: TaskRecord) -> bool:
    main = sys.modules.get("__main__")
    newest = getattr(main, record.app_name, None) if main is not None else None
    if isinstance(newest, AppBase) and newest.func is not record.func:
        record.func = newest.func
        return True
    return False
