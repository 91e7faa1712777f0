"""ThreadPoolExecutor: tasks run in threads of the kernel's own process.

    kernel ──submit(call)──> SimpleQueue ──> worker thread: fn(*args) ──> Future
                                               │ print() ──> _Router ──> publish(TaskOutput)

Nothing is serialized: arguments and results are shared objects. What an app prints through
sys.stdout/sys.stderr is routed, per thread, to the task that runs in that thread, so the
output of concurrent tasks never interleaves. (File-descriptor output of C code cannot be
told apart between threads; the ZMQ executor captures that too.)
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any, TextIO

from livedag.errors import ConfigurationError, ExecutorError
from livedag.events import TaskOutput
from livedag.executors.base import Executor, Publish, TaskCall
from livedag.futures import LightFuture, pool_of_thread

_local = threading.local()


class _Router:
    """Stands in for sys.stdout/sys.stderr: a write goes to the task of the calling thread,
    or to the original stream when no task runs in it."""

    def __init__(self, original: TextIO, stream: str) -> None:
        self._original = original
        self._stream = stream

    def write(self, text: str) -> int:
        sink = getattr(_local, "sink", None)
        if sink is None:
            return self._original.write(text)
        if text:
            sink(self._stream, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if getattr(_local, "sink", None) is None:
            self._original.flush()

    def __getattr__(self, name: str) -> Any:
        # encoding, fileno, isatty, and whatever a notebook's stream object offers.
        return getattr(self._original, name)


_install_lock = threading.Lock()
_install_count = 0


def _install_router() -> None:
    global _install_count
    with _install_lock:
        _install_count += 1
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, "stdout")
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, "stderr")


def _reinstall_router() -> None:
    """Wrap sys.stdout/sys.stderr again when something replaced them after start():
    pytest's capture between test phases, contextlib.redirect_stdout, IPython's %%capture."""
    with _install_lock:
        if _install_count <= 0:
            return
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if not isinstance(current, _Router):
                setattr(sys, name, _Router(current, name))


def _uninstall_router() -> None:
    global _install_count
    with _install_lock:
        _install_count -= 1
        if _install_count > 0:
            return
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if isinstance(current, _Router):
                setattr(sys, name, current._original)


class ThreadPoolExecutor(Executor):
    """Runs tasks in `max_threads` threads of this process (Parsl's parameters)."""

    in_kernel_process = True

    def __init__(
        self,
        label: str = "threads",
        max_threads: int | None = 2,
        thread_name_prefix: str | None = None,
        storage_access: Any = None,
        working_dir: str | None = None,
        remote_monitoring_radio: Any = None,
    ) -> None:
        if max_threads is None:
            max_threads = min(32, (os.cpu_count() or 1) + 4)
        if not isinstance(max_threads, int) or isinstance(max_threads, bool) or max_threads < 1:
            raise ConfigurationError(
                f"ThreadPoolExecutor {label!r}: max_threads must be a whole number >= 1, "
                f"got {max_threads!r}"
            )
        self.label = label
        self.max_threads = max_threads
        self.thread_name_prefix = thread_name_prefix or f"livedag-{label}"
        self.storage_access = storage_access
        self.working_dir = working_dir
        self._queue: queue.SimpleQueue[tuple[TaskCall, Future[Any]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._grow_lock = threading.Lock()
        self._waiting = 0  # tasks blocked in result() inside this pool (see waiting)
        self._started = False
        self._stopped = False
        self._host = socket.gethostname()
        self._pid = os.getpid()

    def start(self, publish: Publish, run_dir: str) -> None:
        if self._started:  # its Config is loaded again (a notebook cell run again)
            self.shutdown()
            self._queue = queue.SimpleQueue()
            self._threads = []
            self._waiting = 0
            self._stopped = False
        super().start(publish, run_dir)
        _install_router()
        self._started = True
        # Threads start on demand (see submit): an idle executor costs nothing.

    def _grow(self) -> None:
        with self._grow_lock:
            n = len(self._threads)
            t = threading.Thread(target=self._work, name=f"{self.thread_name_prefix}-{n}",
                                 daemon=True)
            self._threads.append(t)
        t.start()

    @contextlib.contextmanager
    def waiting(self) -> Any:
        """A task in one of our threads waits for another task's result: it lends its
        thread meanwhile (one more thread runs), so tasks that wait for tasks they called
        cannot hold every thread while what they wait for sits in the queue (with Parsl,
        a deadlock). The extra threads leave again after a task, once nobody waits."""
        with self._grow_lock:
            self._waiting += 1
            grow = len(self._threads) < self.max_threads + self._waiting
        if grow and not self._stopped:
            self._grow()
        try:
            yield
        finally:
            with self._grow_lock:
                self._waiting -= 1

    def _retire(self) -> bool:
        """After a task: leave if this pool has more threads than it is lent (True)."""
        with self._grow_lock:
            if len(self._threads) <= self.max_threads + self._waiting:
                return False
            self._threads.remove(threading.current_thread())
            return True

    def submit(self, call: TaskCall) -> Future[Any]:
        if self._stopped or not self._started:
            state = "has shut down" if self._stopped else "was not started"
            raise ExecutorError(
                self.label, f"cannot take task {call.task_id}: the executor {state}"
            )
        fut: Future[Any] = LightFuture()
        self._queue.put((call, fut))
        if len(self._threads) < self.max_threads:
            self._grow()
        return fut

    def _work(self) -> None:
        get, publish = self._queue.get, self.publish
        running, used = self.reports.running, self.reports.used
        host, pid = self._host, self._pid
        pool_of_thread.pool = self
        while True:
            item = get()
            if item is None:
                return
            call, fut = item
            if not fut.set_running_or_notify_cancel():
                continue  # cancelled while it waited in the queue
            running(call.task_id, call.try_number, time.time(), host, pid)
            if type(sys.stdout) is not _Router or type(sys.stderr) is not _Router:
                _reinstall_router()
            _local.sink = _Sink(publish, call.task_id, call.try_number)
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            error: BaseException | None = None
            try:
                result = call.fn(*call.args, **call.kwargs)
            except BaseException as exc:
                # The traceback starts at the app's own frame, not at this loop.
                tb = exc.__traceback__
                if tb is not None and tb.tb_next is not None and tb.tb_frame.f_code is _WORK_CODE:
                    exc.__traceback__ = tb.tb_next
                error, result = exc, None
            _local.sink = None
            # Before the future ends; a thread has no memory of its own (peak RSS 0).
            used(call.task_id, call.try_number, time.time(), time.thread_time() - cpu0, 0,
                 time.perf_counter() - wall0)
            if error is None:
                fut.set_result(result)
            else:
                fut.set_exception(error)
            # This thread keeps nothing of a finished task while it waits for the next.
            del item, call, fut, result, error
            if len(self._threads) > self.max_threads + self._waiting and self._retire():
                return

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=10)
        if self._started:
            _uninstall_router()

    def __repr__(self) -> str:
        return f"<ThreadPoolExecutor {self.label!r} max_threads={self.max_threads}>"


class _Sink:
    __slots__ = ("publish", "task_id", "try_number")

    def __init__(self, publish: Publish, task_id: int, try_number: int) -> None:
        self.publish = publish
        self.task_id = task_id
        self.try_number = try_number

    def __call__(self, stream: str, text: str) -> None:
        self.publish(TaskOutput(time.time(), self.task_id, self.try_number, stream, text))


_WORK_CODE = ThreadPoolExecutor._work.__code__

