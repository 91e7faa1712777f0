"""AppFuture (what an app call returns), DataFuture (a file an app will write), File.

An AppFuture is a concurrent.futures.Future, so `result()`, `exception()`, `done()`,
`add_done_callback()` and `concurrent.futures.wait()` work as usual. On top of Parsl's
`tid`, `task_status()`, `outputs`, `stdout`, `stderr` it carries what livedag captured:
`captured_stdout`, `captured_stderr` (what the app printed) and `tries` (the history).
Unlike Parsl, `cancel()` works for a task that has not started, and a resubmitted task's
future goes back to pending and later holds the new outcome.
"""

from __future__ import annotations

import _thread
import concurrent.futures._base as _cf
import contextlib
import functools
import operator
import os
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from livedag.dataflow import DataFlowKernel
    from livedag.task import TaskRecord, TryRecord


class _Condition(_thread.RLock):  # type: ignore[misc]
    """threading.Condition on an RLock (as Future's own) in one object the garbage
    collector tracks instead of eight: a threading.Condition keeps an RLock, a deque and
    five bound methods of the lock. This is the lock itself (acquire, release and `with`
    are the RLock's, in C) plus the list of waiters, made only while one waits. A
    notebook keeps thousands of futures, and each tracked object makes every full
    collection longer."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[Any] | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """As threading.Condition.wait: the caller holds the lock."""
        waiter = _thread.allocate_lock()
        waiter.acquire()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        saved = self._release_save()  # type: ignore[attr-defined]
        got = False
        try:
            if timeout is None:
                got = waiter.acquire()
            elif timeout > 0:
                got = waiter.acquire(True, timeout)
            else:
                got = waiter.acquire(False)
            return got
        finally:
            self._acquire_restore(saved)  # type: ignore[attr-defined]
            if not got:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def notify_all(self) -> None:
        """As threading.Condition.notify_all: the caller holds the lock."""
        waiters = self._waiters
        if waiters:
            for waiter in waiters:
                waiter.release()
            waiters.clear()


class _ListOnFirstUse:
    """A list attribute that exists once something reads it: the first read stores a new
    list in the instance, which hides this (non-data) descriptor from then on.

    Future's `_waiters` (concurrent.futures.wait() and as_completed() add to it) and
    `_done_callbacks` are empty for almost every task; AppFuture's own code reads
    `_has_lists` first and never makes them for nothing."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        made: list[Any] = []
        setattr(obj, self.name, made)
        obj._has_lists = True
        return made


_ENDED = frozenset({_cf.CANCELLED, _cf.CANCELLED_AND_NOTIFIED, _cf.FINISHED})


class LightFuture(Future[Any]):
    """A concurrent.futures.Future that costs the garbage collector one object besides
    itself (its condition) until someone waits on it or adds a callback: the kernel's
    futures (AppFuture) and the executors' per-try futures. Future's own makes nine."""

    # Future's two lists, made when first used (see _ListOnFirstUse).
    _waiters = _ListOnFirstUse()
    _done_callbacks = _ListOnFirstUse()
    _has_lists = False

    def __init__(self) -> None:
        self._condition = _Condition()  # type: ignore[assignment]
        self._state = _cf.PENDING
        self._result: Any = None
        self._exception: BaseException | None = None

    # Future's methods that read the two lists, reading them only if they were made.
    def set_result(self, result: Any) -> None:
        self._finish("_result", result, "add_result")

    def set_exception(self, exception: BaseException | None) -> None:
        self._finish("_exception", exception, "add_exception")

    def _finish(self, field: str, value: Any, tell: str) -> None:
        """Future.set_result / set_exception: `field` = value, then wake and call back."""
        with self._condition:
            if self._state in _ENDED:
                raise _cf.InvalidStateError(f"{self._state}: {self!r}")
            setattr(self, field, value)
            self._state = _cf.FINISHED
            if self._has_lists:
                for waiter in self._waiters:
                    getattr(waiter, tell)(self)
            self._condition.notify_all()
        if self._has_lists:
            self._invoke_callbacks()  # type: ignore[attr-defined]

    def set_running_or_notify_cancel(self) -> bool:
        if not self._has_lists:
            with self._condition:
                if self._state == _cf.PENDING:
                    self._state = _cf.RUNNING
                    return True
        return super().set_running_or_notify_cancel()


# A thread of a ThreadPoolExecutor sets `pool_of_thread.pool` to its executor: a task that
# waits there for another task's result lends its thread while it waits (see
# ThreadPoolExecutor.waiting), so apps that call apps and wait cannot take every thread.
pool_of_thread = threading.local()


class AppFuture(LightFuture):
    """The future of one app call (one task)."""

    def __init__(self, task_record: TaskRecord, dfk: DataFlowKernel) -> None:
        LightFuture.__init__(self)
        self.task_record = task_record
        self._dfk = dfk

    @property
    def tid(self) -> int:
        return self.task_record.id

    def task_status(self) -> str:
        record = self.task_record
        return (record.shown or record.state).value

    @property
    def outputs(self) -> list[DataFuture]:
        return self.task_record.outputs or []

    @property
    def stdout(self) -> Any:
        """Parsl's meaning: the stdout file spec given to a bash app (or None)."""
        return self.task_record.kwargs.get("stdout") if self.task_record.kwargs else None

    @property
    def stderr(self) -> Any:
        """Parsl's meaning: the stderr file spec given to a bash app (or None)."""
        return self.task_record.kwargs.get("stderr") if self.task_record.kwargs else None

    @property
    def captured_stdout(self) -> str:
        """What the app printed to stdout in its latest try (live while it runs)."""
        return self.task_record.stdout.text()

    @property
    def captured_stderr(self) -> str:
        """What the app printed to stderr in its latest try (live while it runs)."""
        return self.task_record.stderr.text()

    @property
    def tries(self) -> list[TryRecord]:
        return list(self.task_record.tries)

    def cancel(self) -> bool:
        """Cancel the task if it has not started; its dependents end as dependency failures."""
        return self._dfk.cancel(self)

    def result(self, timeout: float | None = None) -> Any:
        return self._wait(Future.result, timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._wait(Future.exception, timeout)  # type: ignore[no-any-return]

    def _wait(self, wait: Any, timeout: float | None) -> Any:
        if self._state not in _ENDED:
            helper = getattr(getattr(self.task_record, "exec_fu", None), "wait_here", None)
            if helper is not None:  # the executor may read the result on this thread
                helper(self.done, timeout)
            pool = getattr(pool_of_thread, "pool", None)
            if pool is not None:  # a task waits inside a thread pool: see pool_of_thread
                with pool.waiting():
                    return wait(self, timeout)
        return wait(self, timeout)

    def _cancel_now(self) -> bool:
        return super().cancel()

    def _reset(self) -> None:
        """Back to pending, for resubmit. Callbacks stay registered and run again."""
        with self._condition:
            self._state = _cf.PENDING
            self._result = None
            self._exception = None

    def __getitem__(self, key: Any) -> AppFuture:
        return self._dfk.submit_internal("getitem", operator.getitem, (self, key))

    def __getattr__(self, name: str) -> AppFuture:
        # Only reached for names a Future does not have (Parsl lifts them into a task);
        # private and dunder names are left alone so that introspection keeps working.
        if name.startswith("_"):
            raise AttributeError(name)
        return self._dfk.submit_internal("getattr", getattr, (self, name))

    def __repr__(self) -> str:
        r = self.task_record
        return f"<AppFuture task {r.id} {r.app_name!r} {r.state.value}>"


def keep_callback(fut: Future[Any], fn: functools.partial[Any]) -> None:
    """Register `fn` on a pending future unless an equal partial is registered already.

    A callback added to a future that had already ended ran at once and was not kept;
    when resubmit resets that future, the kernel puts its callback back with this.
    """
    with fut._condition:
        callbacks = fut._done_callbacks  # type: ignore[attr-defined]
        for cb in callbacks:
            if isinstance(cb, functools.partial) and cb.func == fn.func and cb.args == fn.args:
                return
        callbacks.append(fn)


def record_of(fut: Future[Any]) -> TaskRecord | None:
    """The task behind a future: an app's, or the app's that writes a DataFuture's file."""
    if isinstance(fut, AppFuture):
        return fut.task_record
    if isinstance(fut, DataFuture) and isinstance(fut.app_fut, AppFuture):
        return fut.app_fut.task_record
    return None


class File(os.PathLike[str]):
    """A file named by a URL or a path; `filepath` is where the app reads or writes it."""

    def __init__(self, url: str | os.PathLike[str]) -> None:
        self.url = os.fspath(url)
        parsed = urlparse(self.url)
        self.scheme = parsed.scheme if parsed.scheme else "file"
        self.netloc = parsed.netloc
        self.path = parsed.path
        self.filename = os.path.basename(self.path)
        self.local_path: str | None = None

    @property
    def filepath(self) -> str:
        if self.local_path is not None:
            return self.local_path
        if self.scheme in ("file", ""):
            return self.path
        raise ValueError(
            f"File {self.url!r}: no local path for scheme {self.scheme!r}; "
            "livedag stages only local files (file:// or a plain path)"
        )

    def cleancopy(self) -> File:
        return File(self.url)

    def __fspath__(self) -> str:
        return self.filepath

    def __str__(self) -> str:
        return self.filepath

    def __repr__(self) -> str:
        return f"<File {self.url!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other.url == self.url

    def __hash__(self) -> int:
        return hash(("livedag.File", self.url))

    def __reduce__(self) -> Any:
        return (_make_file, (self.url, self.local_path))


def _make_file(url: str, local_path: str | None) -> File:
    f = File(url)
    f.local_path = local_path
    return f


class DataFuture(Future[Any]):
    """A file that task `tid` will produce: done (with the File) when the task succeeds."""

    def __init__(self, app_fut: AppFuture, file_obj: File, tid: int) -> None:
        super().__init__()
        self.app_fut = app_fut
        self.file_obj = file_obj
        self.tid = tid

    @property
    def filepath(self) -> str:
        return self.file_obj.filepath

    @property
    def filename(self) -> str:
        return self.file_obj.filename

    def _reset(self) -> None:
        with self._condition:
            self._state = _cf.PENDING
            self._result = None
            self._exception = None

    def __repr__(self) -> str:
        return f"<DataFuture {self.file_obj.url!r} of task {self.tid} {self._state.lower()}>"
