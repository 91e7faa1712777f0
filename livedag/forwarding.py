"""Launching a task before its inputs are done, on an executor that forwards results.

    f = step(x); g = step(f)            # f runs on the ZMQ executor
    kernel: g waits for f ──f launched there too──> submit g at once, with f as an input
    interchange: f's result ──> g's worker (and on to the kernel, as always)

A chain's steps then follow each other in the executor, and the kernel is off the path
between them. Only the plain case is forwarded: a python app on an executor with
`forwards_results`, whose unfinished inputs are all AppFutures of tries launched on that
same executor, with no cache and the default dependency resolver. Anything else waits in
the kernel as before.

It is only a shortcut: when the executor cannot use it (an input fails, is lost, is
withdrawn, or finished just before), the try ends with InputsNotForwarded, the task goes
back to pending, and it is launched the ordinary way once its inputs are done; a failed
input then makes it a dependency failure exactly as without forwarding.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from livedag.futures import AppFuture
from livedag.task import StateMembers, TaskRecord, check_move

if TYPE_CHECKING:
    from livedag.dataflow import DataFlowKernel

_S = StateMembers
_RUNNING_STATES = (_S.LAUNCHED, _S.RUNNING)


def try_forward(dfk: DataFlowKernel, record: TaskRecord) -> None:
    """Launch a task that waits for inputs now, if its executor can take it from here."""
    if record.kind != "python" or record.memoize or dfk._resolver is not None:
        return
    if not getattr(dfk.executors.get(record.executor), "forwards_results", False):
        return
    inputs: dict[int, tuple[Future[Any], int]] = {}
    for dep in record.depends_on:
        if dep.done():
            if dep.cancelled() or dep.exception() is not None:
                return
            continue
        if type(dep) is not AppFuture:
            return
        parent = dep.task_record
        # (Read without the lock: an input that finishes meanwhile is not there any
        # more, and the executor gives the task back.)
        if (parent.executor != record.executor or parent.kind == "join"
                or parent.state not in _RUNNING_STATES):
            return
        inputs[parent.id] = (dep, parent.try_number)
    if not inputs:
        return
    with dfk._lock:
        if record.state is not _S.PENDING or record.claimed:
            return
        record.claimed = True
    args = tuple(_value(a) for a in record.args)
    kwargs = {k: _value(v) for k, v in record.kwargs.items()}
    if kwargs.get("inputs"):
        kwargs["inputs"] = [_value(v) for v in kwargs["inputs"]]
    dfk._launch(record, args, kwargs, inputs)


def _value(arg: Any) -> Any:
    """A done future's result; anything else (an input still to come) as it is."""
    return arg.result() if isinstance(arg, Future) and arg.done() else arg


def unforward(dfk: DataFlowKernel, record: TaskRecord) -> None:
    """The executor gave back a forwarded try before it ran: back to pending (the try
    never happened), launched the ordinary way when every input is done."""
    record.tries.pop()
    record.forwarded = None
    with dfk._lock:
        ready = record.pending_deps == 0
        if record.shown is _S.PENDING:  # never shown launched: nothing to take back
            check_move(record.id, record.state, _S.PENDING)
            record.state, record.shown = _S.PENDING, None
        elif ready and inputs_succeeded(record):
            # Shown launched, and launched again at once: observers see no change.
            check_move(record.id, record.state, _S.PENDING)
            record.state, record.shown = _S.PENDING, _S.LAUNCHED
        else:
            dfk._move(record, _S.PENDING)
        record.claimed = False
    if ready:
        dfk._soon(dfk._launch_if_ready, record)


def inputs_succeeded(record: TaskRecord) -> bool:
    """Every input of the task is done and succeeded."""
    return all(d.done() and not d.cancelled() and d.exception() is None
               for d in record.depends_on)


def failed_inputs(record: TaskRecord) -> list[Future[Any]]:
    """Inputs of a forwarded try that failed in the kernel although the executor had a
    result for them (it could not be unpickled here): the task is then a dependency
    failure, as it would have been without forwarding."""
    assert record.forwarded is not None
    return [d for d in record.forwarded.values()
            if d.done() and (d.cancelled() or d.exception() is not None)]
