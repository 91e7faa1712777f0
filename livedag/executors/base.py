"""The executor contract: what the DataFlowKernel asks of every executor.

    kernel ──start(publish, run_dir)──> executor
    kernel ──submit(TaskCall)─────────> executor ──> concurrent.futures.Future (value | exception)
    executor ──publish(TaskStateChanged(RUNNING, host, pid) | TaskOutput | BlockChanged)──> kernel

An executor never imports the kernel. It resolves the returned future with the app's
return value, or with the exception the app raised (original type, remote traceback), or
with a livedag error (WorkerLost, ManagerLost, SerializationError, ...) that names the
task. It reports a task as running, and what the task prints, through `publish`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from livedag.events import Event

Publish = Callable[[Event], None]


@dataclasses.dataclass(slots=True)
class TaskCall:
    """One try of one task, as an executor sees it."""

    task_id: int
    try_number: int
    app_name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    resource_spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Futures among args/kwargs whose results are still to come, by task id, with the
    # try each waits for (an executor with forwards_results only): see Executor.
    inputs: dict[int, tuple[Future[Any], int]] | None = None


class InputsNotForwarded(Exception):
    """The executor gave back a try launched with `inputs` before it ran (an input failed,
    was lost or had already finished there): the kernel launches it again itself once its
    inputs are done. Never reaches the user."""


def _drop(event: Event) -> None:
    pass


class Executor(abc.ABC):
    """Base class of executors (Parsl: ParslExecutor)."""

    label: str = "executor"
    run_dir: str = "."
    publish: Publish = staticmethod(_drop)  # replaced in start()
    # Parsl compatibility: an executor may be told which DataFlowKernel drives it.
    provider: Any = None
    # True: once submit() has returned, the executor holds the call's arguments (packed)
    # and the kernel may let go of its own reference; the future of a try that fails or
    # is withdrawn then carries them back as `returned` (packed bytes, or None if they
    # were lost with the executor). See DataFlowKernel._lend.
    returns_arguments: bool = False
    # True: submit() takes a TaskCall whose `inputs` are futures of tries running on this
    # executor, and runs it once they succeed, with their results, without the kernel in
    # between (a chain's steps follow each other in the executor). A try it cannot run so
    # ends with InputsNotForwarded, and its arguments back (returns_arguments).
    forwards_results: bool = False

    def start(self, publish: Publish, run_dir: str) -> None:
        """Get ready to take tasks. `publish` delivers events to the kernel; an executor
        keeps its files (logs, keys) under `<run_dir>/<label>/`."""
        self.publish = publish
        self.run_dir = run_dir

    @abc.abstractmethod
    def submit(self, call: TaskCall) -> Future[Any]:
        """Run one try of a task; the future ends with its value or its exception."""

    def cancel(self, task_id: int) -> bool:
        """Withdraw a task that has not started. True when it will not run."""
        return False

    def shutdown(self) -> None:  # noqa: B027 - nothing to release by default
        """Stop taking tasks and release processes, threads and sockets."""

    @property
    def bad_state_is_set(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"


# Parsl's name, for user code that subclasses or type-checks executors.
ParslExecutor = Executor
