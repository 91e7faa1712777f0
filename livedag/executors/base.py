"""The executor contract: what the DataFlowKernel asks of every executor.

    kernel ──start(publish, run_dir)──> executor
    kernel ──submit(TaskCall)─────────> executor ──> concurrent.futures.Future (value | exception)
    executor ──reports.running(task, try, ...) | reports.used(task, try, ...)──> kernel
    executor ──publish(TaskOutput | BlockChanged | any Event)─────────────────> kernel

An executor never imports the kernel. It resolves the returned future with the app's
return value, or with the exception the app raised (original type, remote traceback), or
with a livedag error (WorkerLost, ManagerLost, SerializationError, ...) that names the
task. It reports a try as running and what it used through `reports` (see Reports), and
anything else, such as what the task prints, through `publish`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from livedag.events import Event, TaskResources, TaskStateChanged
from livedag.task import TaskState

Publish = Callable[[Event], None]


class Reports:
    """What an executor tells the kernel: `publish(event)` for anything, and the two
    reports every try makes, `running` and `used`, as plain calls.

    The kernel's own Reports (what it passes to start()) take those two without an Event
    object: on the thread executor, building them was a tenth of the cost of a no-op task.
    Given a plain `publish` callable instead (a test, an executor started by hand), these
    build the events and publish them.
    """

    def __init__(self, publish: Publish) -> None:
        self.publish = publish

    def __call__(self, event: Event) -> None:
        self.publish(event)

    def running(self, task_id: int, try_number: int, when: float, host: str = "",
                pid: int | None = None, block_id: str | None = None,
                job_id: str | None = None) -> None:
        """Try `try_number` of task `task_id` started running at `when`, there."""
        self.publish(TaskStateChanged(when, task_id, TaskState.RUNNING, try_number, host, pid,
                                      block_id, job_id))

    def used(self, task_id: int, try_number: int, when: float, cpu_time: float,
             peak_rss: int, wall_time: float) -> None:
        """What the try used (see events.TaskResources), before its future ends."""
        self.publish(TaskResources(when, task_id, try_number, cpu_time, peak_rss, wall_time))


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
    reports: Reports = Reports(_drop)  # replaced in start()
    # Parsl compatibility: an executor may be told which DataFlowKernel drives it.
    provider: Any = None
    # True: once submit() has returned, the executor holds the call's arguments (packed)
    # and the kernel may let go of its own reference; the future of a try that fails or
    # is withdrawn then carries them back as `returned` (packed bytes, or None if they
    # were lost with the executor). See DataFlowKernel._lend.
    returns_arguments: bool = False
    # True: tasks run in the kernel's own process (threads) and share its GIL; what else
    # the kernel does (the run record's writing) is then better done in another process.
    in_kernel_process: bool = False
    # True: submit() takes a TaskCall whose `inputs` are futures of tries running on this
    # executor, and runs it once they succeed, with their results, without the kernel in
    # between (a chain's steps follow each other in the executor). A try it cannot run so
    # ends with InputsNotForwarded, and its arguments back (returns_arguments).
    forwards_results: bool = False

    def start(self, publish: Publish, run_dir: str) -> None:
        """Get ready to take tasks. `publish` delivers events to the kernel (the kernel's
        is a Reports: see `reports`); an executor keeps its files (logs, keys) under
        `<run_dir>/<label>/`."""
        self.publish = publish
        self.reports = publish if isinstance(publish, Reports) else Reports(publish)
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
