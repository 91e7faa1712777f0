"""Every exception livedag raises, under one base class.

The tree, named for whose fault each one is::

    LivedagError                     (Parsl: ParslError)
    ├── InternalConsistencyError     a bug in livedag (task.IllegalTransition)
    ├── ConfigurationError           the Config or an executor's settings are wrong
    │   └── SubmitError              the batch scheduler refused a block's job (its own
    │                                message, the command and the script are kept)
    ├── SchedulerCommandError        a scheduler tool is missing, failed or timed out
    ├── NoDataFlowKernelError        an app was called before livedag.load()
    ├── SerializationError           an argument or result cannot be pickled
    ├── DeserializationError         bytes from a worker cannot be unpickled here
    │   └── WorkerImportError        a worker cannot import what a task needs (also a
    │                                ModuleNotFoundError); names its Python and sys.path
    ├── BadCheckpoint                a checkpoint file cannot be read
    ├── ExecutorError                an executor cannot run tasks at all
    ├── AppBadFormatting             a bash app's command could not be rendered
    ├── MissingOutputs               a task finished but an `outputs=` file is absent
    ├── BadStdStreamFile             a bash app's stdout/stderr target cannot be opened
    ├── AppException                 the app itself failed
    │   ├── BashExitFailure          non-zero exit code (kept in `exitcode`)
    │   ├── AppTimeout               the task ran past its `walltime`
    │   └── BashAppNoReturn          a bash app returned something other than a str
    ├── TaskCancelled                the task was cancelled before it ran
    ├── PropagatedException          another task's failure, handed on
    │   ├── DependencyError          an input of this task failed
    │   └── JoinError                a future returned by a join app failed
    ├── WorkerLost                   the worker process died while running the task
    └── ManagerLost                  a worker pool stopped answering

Exceptions are data: every field lives in the instance dict and `__reduce__` rebuilds
the instance from it, so each one survives pickling between processes (tested).
`RemoteError` stands in for a user exception that could not itself be pickled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls)
    exc.args = args
    cause = state.pop("__cause__", None)
    exc.__dict__.update(state)
    if cause is not None:
        exc.__cause__ = cause
    return exc


class LivedagError(Exception):
    """Base class of every livedag exception."""

    def __reduce__(self) -> Any:
        state = dict(self.__dict__)
        if self.__cause__ is not None:
            state["__cause__"] = self.__cause__
        return (_rebuild, (type(self), self.args, state))

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


# Parsl users write `except ParslError`.
ParslError = LivedagError


class InternalConsistencyError(LivedagError):
    """A bug in livedag itself (e.g. a task state move the state machine forbids)."""


class ConfigurationError(LivedagError):
    """The Config, or an executor's or provider's settings, cannot work."""


class SubmitError(ConfigurationError):
    """The batch scheduler refused to queue a block's job (sbatch, qsub, bsub ...).

    Whose fault: the provider's settings (partition, memory, walltime ...) as the scheduler
    sees them. `stderr` is the tool's own message; `script_path` is the job script it got.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        command: Sequence[str] = (),
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
        script_path: str = "",
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.command = list(command)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.script_path = script_path


class SchedulerCommandError(LivedagError):
    """A scheduler command could not be run, timed out, or failed in a way livedag cannot
    read (the scheduler or its client is missing or not answering)."""

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.command = list(command)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out


class NoDataFlowKernelError(LivedagError):
    """An app was called, or dfk() asked for, before livedag.load()."""


class ExecutorError(LivedagError):
    """An executor cannot run tasks at all (it failed to start or has shut down)."""

    def __init__(self, executor: str, reason: str) -> None:
        super().__init__(f"executor {executor!r}: {reason}")
        self.executor = executor
        self.reason = reason


class SerializationError(LivedagError):
    """Something that must travel to a worker (or back) cannot be pickled.

    `what` says which value: "argument 2", "argument 'conn'", "the function", "the result".
    """

    def __init__(
        self,
        message: str,
        *,
        what: str = "",
        type_name: str = "",
        task_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.what = what
        self.type_name = type_name
        self.task_id = task_id


class DeserializationError(LivedagError):
    """Bytes from another process could not be turned back into objects here."""


class WorkerImportError(DeserializationError, ModuleNotFoundError):
    """A worker could not import a module needed to unpickle a task's call.

    Whose fault: the worker's environment. It carries the interpreter and `sys.path` the
    worker used, so a user can see which environment is missing the module.
    """

    def __init__(
        self,
        message: str,
        *,
        module: str = "",
        python: str = "",
        sys_path: Sequence[str] = (),
        host: str = "",
        task_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.module = module
        self.python = python
        self.sys_path = list(sys_path)
        self.host = host
        self.task_id = task_id


class BadCheckpoint(LivedagError):
    """A checkpoint file exists but cannot be loaded."""


class AppBadFormatting(LivedagError):
    """A bash app's function raised while building its command line."""


class MissingOutputs(LivedagError):
    """The task ended but some of its `outputs=` files do not exist."""

    def __init__(self, reason: str, outputs: Sequence[Any]) -> None:
        super().__init__(f"Missing Outputs: {list(map(str, outputs))}, Reason: {reason}")
        self.reason = reason
        self.outputs = list(outputs)


class BadStdStreamFile(LivedagError):
    """A bash app's stdout/stderr target cannot be opened for writing."""


class AppException(LivedagError):
    """The app's own code (or command) failed."""


class BashExitFailure(AppException):
    """A bash app's command exited with a non-zero code.

    `stderr_tail` holds the last lines the command wrote to stderr, when they could be read.
    """

    def __init__(self, app_name: str, exitcode: int, stderr_tail: str = "") -> None:
        msg = f"bash_app {app_name} failed with unix exit code {exitcode}"
        if stderr_tail:
            msg += "\n--- last lines of stderr ---\n" + stderr_tail.rstrip("\n")
        super().__init__(msg)
        self.app_name = app_name
        self.exitcode = exitcode
        self.stderr_tail = stderr_tail


class AppTimeout(AppException):
    """The task ran longer than its `walltime` and was stopped."""


class BashAppNoReturn(AppException):
    """A bash app's function returned something other than a command string."""


class TaskCancelled(LivedagError):
    """The task was cancelled before it ran (as the reason its dependents did not run)."""

    def __init__(self, task_id: int, app_name: str, reason: str = "cancelled by the user") -> None:
        super().__init__(f"task {task_id} {app_name!r} was cancelled: {reason}")
        self.task_id = task_id
        self.app_name = app_name
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class RootCause:
    """The task whose own failure set off a dependency failure."""

    task_id: int
    app_name: str
    exc_type: str
    message: str

    def describe(self) -> str:
        return f"task {self.task_id} {self.app_name!r} failed with {self.exc_type}: {self.message}"


class PropagatedException(LivedagError):
    """A failure that happened in other tasks and is handed on to this one.

    `dependent_exceptions_tids` keeps Parsl's shape: (exception, task id) pairs of the
    failed inputs. `root_causes` goes further: the tasks whose *own* code failed, found by
    walking through intermediate dependency failures. `__cause__` is the first root
    exception, so a printed traceback ends with the original error.
    """

    verb = "was not run"

    def __init__(
        self,
        dependent_exceptions_tids: Sequence[tuple[BaseException, int | str | None]],
        task_id: int | None,
        *,
        app_name: str = "",
        root_causes: Sequence[RootCause] = (),
    ) -> None:
        self.dependent_exceptions_tids = list(dependent_exceptions_tids)
        self.task_id = task_id
        self.app_name = app_name
        self.root_causes = tuple(root_causes)
        super().__init__(self._message())

    def _message(self) -> str:
        who = f"task {self.task_id}" + (f" {self.app_name!r}" if self.app_name else "")
        if not self.root_causes:
            tids = ", ".join(str(t) for _, t in self.dependent_exceptions_tids)
            return f"{who} {self.verb}: {self._what()} {tids} failed"
        first = self.root_causes[0]
        text = f"{who} {self.verb}: {self._what()} task {first.task_id} {first.app_name!r} "
        text += f"failed with {first.exc_type}: {first.message}"
        if len(self.root_causes) > 1:
            others = ", ".join(f"task {r.task_id} ({r.exc_type})" for r in self.root_causes[1:])
            text += f" (also failed: {others})"
        return text

    def _what(self) -> str:
        return "its input from"


class DependencyError(PropagatedException):
    """An input of this task failed, so the task was not run."""


class JoinError(PropagatedException):
    """A future returned by this join app failed."""

    verb = "failed"

    def _what(self) -> str:
        return "the joined"


class WorkerLost(LivedagError):
    """The worker process died while it ran the task (signal, os._exit, crash)."""

    def __init__(
        self,
        message: str,
        *,
        task_id: int | None = None,
        host: str = "",
        pid: int | None = None,
        exitcode: int | None = None,
        signal: str = "",
        stderr_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.host = host
        self.pid = pid
        self.exitcode = exitcode
        self.signal = signal
        self.stderr_tail = stderr_tail


class ManagerLost(LivedagError):
    """A worker pool stopped heartbeating or left, or its block's batch job ended; the
    tasks it held are lost. `job_state`/`job_reason` are the scheduler's word on the
    block's job ("CANCELLED", "Slurm job 12 was cancelled ..."), empty when unknown."""

    def __init__(
        self,
        message: str,
        *,
        manager_id: str = "",
        host: str = "",
        block_id: str | None = None,
        job_id: str | None = None,
        last_heartbeat_age: float | None = None,
        job_state: str = "",
        job_reason: str = "",
    ) -> None:
        super().__init__(message)
        self.manager_id = manager_id
        self.host = host
        self.block_id = block_id
        self.job_id = job_id
        self.last_heartbeat_age = last_heartbeat_age
        self.job_state = job_state
        self.job_reason = job_reason


class RemoteError(LivedagError):
    """Stands in for an exception raised in a worker that could not be pickled itself.

    It keeps the original type's qualified name, its message and the remote traceback text.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text


@dataclasses.dataclass(frozen=True)
class TaskContext:
    """What livedag attaches to an exception raised by a task (as `exc.livedag_task`).

    `captured_stdout` / `captured_stderr` are what the app printed during that try.
    """

    task_id: int
    app_name: str
    try_number: int
    executor: str
    host: str = ""
    pid: int | None = None
    captured_stdout: str = ""
    captured_stderr: str = ""

    def describe(self) -> str:
        where = f" on {self.host}" if self.host else ""
        where += f" pid {self.pid}" if self.pid else ""
        return (
            f"in task {self.task_id} {self.app_name!r} "
            f"(try {self.try_number}, executor {self.executor!r}{where})"
        )


def exception_name(exc: BaseException) -> str:
    """The name users know an exception by (RemoteError shows the original type)."""
    if isinstance(exc, RemoteError):
        return exc.type_name
    return type(exc).__name__


def exception_message(exc: BaseException) -> str:
    if isinstance(exc, RemoteError):
        return exc.message
    text = exception_text(exc)
    # One line is enough for a summary; the full text stays on the exception.
    return text.splitlines()[0] if text else ""


def exception_text(exc: BaseException) -> str:
    """str(exc), or a stand-in when the exception's own __str__ raises."""
    try:
        return str(exc)
    except Exception as str_exc:
        return f"<str() of this {type(exc).__name__} raised {type(str_exc).__name__}>"
