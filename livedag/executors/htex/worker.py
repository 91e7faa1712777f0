"""A worker process: runs one task at a time for its pool.

    pool ──task pipe──> worker: unpack_call ─> fn(*args, **kwargs) ─> pack_result | pack_failure
    pool <─result pipe── worker
    pool <─fd 1 / fd 2── worker (and everything it starts): the task's stdout / stderr

The pool holds the read ends of this process's stdout and stderr, so it sees what the
task prints at the file-descriptor level (C extensions, subprocesses) and what a dying
worker last wrote. Before the result goes back, both Python and C stdio buffers are
flushed: every byte the task printed is in the pipes before the pool reads the result,
which is what lets the pool attribute output to the right task without markers.

Records on the pipes use protocol.pack_frames:
    pool -> worker: [b"T", task_id, try_number, payload]     run this
    worker -> pool: [b"H", pid]                              ready for tasks
                    [b"R", task_id, try_number, outcome, usage(, b"F")]
                                                   done (pack_result/pack_failure bytes;
                                                   usage: b"cpu_s peak_rss_bytes wall_s";
                                                   b"F": the outcome is a failure)
                    [b"E", reason]                           about to exit (SystemExit...)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import faulthandler
import logging
import os
import resource
import socket
import sys
import threading
import time
from typing import Any

from livedag.errors import DeserializationError, WorkerImportError
from livedag.executors.htex.protocol import (
    FrameReader,
    SendBuffer,
    record_parts,
    split_forwarded,
    write_all,
)
from livedag.serialize import pack_failure, pack_outcome, unpack_call, unpack_outcome

logger = logging.getLogger("livedag.worker")


def _libc_fflush() -> object:
    try:
        fflush = ctypes.CDLL(None).fflush
    except (OSError, AttributeError):
        return lambda _: 0
    fflush.argtypes = [ctypes.c_void_p]
    return fflush


def _send(fd: int, frames: list[bytes]) -> None:
    """Write one record to a blocking pipe (a big result without one more copy)."""
    parts = record_parts(frames)
    if len(parts) == 1:  # a small record: no buffer object
        write_all(fd, parts[0])
        return
    out = SendBuffer()
    for part in parts:
        out.append(part)
    out.write_to(fd)


def run_call(payload: bytes, task_id: int, meter: Meter | None = None) -> tuple[bool, bytes]:
    """(ok, outcome bytes) for one task payload; never raises an Exception (BaseException
    may).
    `meter` measures the call itself (not the unpickling: a first task would be charged
    for the imports its function needs)."""
    try:
        fn, args, kwargs = _unpack(payload, task_id)
    except ModuleNotFoundError as exc:
        err: Exception = WorkerImportError(
            f"task {task_id}: the worker on {socket.gethostname()} cannot import "
            f"module {exc.name!r} needed by the task's function or arguments.\n"
            f"  python: {sys.executable}\n  sys.path: {sys.path}\n"
            "Hint: install the module in that environment, or set the provider's "
            "worker_init to activate the environment the notebook uses.",
            module=exc.name or "",
            python=sys.executable,
            sys_path=sys.path,
            host=socket.gethostname(),
            task_id=task_id,
        )
        err.__cause__ = exc
        return False, pack_failure(err)
    except DeserializationError as exc:  # an input's result (see _unpack)
        return False, pack_failure(exc)
    except Exception as exc:
        err = DeserializationError(
            f"task {task_id}: the worker could not unpickle the task's call: "
            f"{type(exc).__name__}: {exc} (python {sys.executable})"
        )
        err.__cause__ = exc
        return False, pack_failure(err)
    if meter is not None:
        meter.start()
    try:
        value = fn(*args, **kwargs)
    except Exception as exc:
        # The traceback starts at the app's own frame, not at this function.
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
            exc.__traceback__ = exc.__traceback__.tb_next
        return False, pack_failure(exc)
    return pack_outcome(value, task_id=task_id)


def _unpack(payload: bytes, task_id: int) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """The call in a payload; a forwarded one (protocol.Forward) brings the results of
    its inputs, which take their places in the arguments."""
    forwarded = split_forwarded(payload)
    if forwarded is None:
        return unpack_call(payload)
    original, outcomes = forwarded
    inputs = {}
    for tid, outcome in outcomes.items():
        try:
            inputs[tid] = unpack_outcome(outcome)[1]
        except DeserializationError as exc:
            raise DeserializationError(
                f"task {task_id}: the result of task {tid}, one of its inputs, could not be "
                f"unpickled in the worker: {exc.__cause__!r}") from exc.__cause__
    return unpack_call(original, inputs)


def _watch_parent(pool_pid: int) -> None:
    # Our pool may die without closing our pipes cleanly (SIGKILL while we run a long
    # task): then nobody would ever read our result. Leave within a second.
    while True:
        time.sleep(1.0)
        if os.getppid() != pool_pid:
            os._exit(0)


class Meter:
    """What one task used: CPU seconds (this process and the children it waited for),
    peak resident set (bytes) and wall seconds.

    On Linux the peak is exact and cheap: the kernel's high-water mark of the process's
    RSS is reset before each task (/proc/self/clear_refs, "5") and read after it
    (VmHWM). A task under a millisecond reports its RSS at the end instead: reading
    /proc/self/status would cost more than the task. Elsewhere the peak is 0 (unknown)
    and the pool's psutil samples stand in.
    """

    def __init__(self) -> None:
        try:
            self.clear_fd = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
            self.status_fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
            self.statm_fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.clear_fd = self.status_fd = self.statm_fd = -1
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.wall0 = self.cpu0 = 0.0

    def start(self) -> None:
        if self.clear_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.clear_fd, b"5")
        self.cpu0 = time.process_time() + _children_cpu()
        self.wall0 = time.perf_counter()

    def stop(self) -> bytes:
        if not self.wall0:
            return b"0 0 0"  # the call never started (its payload could not be unpickled)
        wall = time.perf_counter() - self.wall0
        cpu = time.process_time() + _children_cpu() - self.cpu0
        return f"{cpu:.6f} {self._peak(wall)} {wall:.6f}".encode()

    def _peak(self, wall: float) -> int:
        try:
            if wall >= 0.001 and self.status_fd >= 0:
                data = os.pread(self.status_fd, 4096, 0)
                at = data.index(b"VmHWM:") + 6
                return int(data[at : data.index(b"kB", at)]) * 1024
            if self.statm_fd >= 0:
                return int(os.pread(self.statm_fd, 128, 0).split()[1]) * self.page
        except (OSError, ValueError):
            pass
        return 0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def serve(task_fd: int, result_fd: int, pool_pid: int) -> None:
    from livedag import loader

    loader.in_worker = f"worker process {os.getpid()} on {socket.gethostname()}"
    os.set_inheritable(task_fd, False)
    os.set_inheritable(result_fd, False)  # a task's subprocess must not hold our pipe open
    threading.Thread(target=_watch_parent, args=(pool_pid,), daemon=True).start()
    fflush = _libc_fflush()
    stdout, stderr = sys.stdout, sys.stderr
    reader = FrameReader()
    meter = Meter()
    _send(result_fd, [b"H", str(os.getpid()).encode()])
    while True:
        records = reader.read(task_fd)
        if records is None:
            return  # the pool closed our pipe: time to go
        for frames in records:
            if frames[0] != b"T":
                return
            tid, tries, payload = int(frames[1]), frames[2], frames[3]
            meter.wall0 = 0.0
            try:
                ok, outcome = run_call(payload, tid, meter)
            except BaseException as exc:  # SystemExit, KeyboardInterrupt: the task ends us
                what = f"{type(exc).__name__}({_exit_arg(exc)})"
                note = f"task {tid} raised {what}, ending the worker"
                _flush(stdout, stderr, fflush)
                _send(result_fd, [b"E", note.encode()])
                raise
            if sys.stdout is not stdout or sys.stderr is not stderr:
                sys.stdout, sys.stderr = stdout, stderr  # an app swapped them and left
            usage = meter.stop()
            _flush(stdout, stderr, fflush)
            _send(result_fd, [b"R", frames[1], tries, outcome, usage] if ok else
                  [b"R", frames[1], tries, outcome, usage, b"F"])


def _exit_arg(exc: BaseException) -> str:
    return repr(exc.code) if isinstance(exc, SystemExit) else ""


def _flush(stdout: object, stderr: object, fflush: object) -> None:
    for stream in (stdout, stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[attr-defined]
    fflush(None)  # type: ignore[operator]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="livedag-worker")
    parser.add_argument("--task-fd", type=int, required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--pool-pid", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--cores", default="")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        filename=args.log,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(message)s",
    )
    # Line buffering: what a task prints reaches the pool (and the notebook) as it runs.
    # Fresh wrappers, because reconfigure(line_buffering=True) on the interpreter's own
    # stdout makes one write() per print() argument.
    sys.stdout = open(1, "w", buffering=1, closefd=False, encoding="utf-8",  # noqa: SIM115
                      errors="backslashreplace")
    sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8",  # noqa: SIM115
                      errors="backslashreplace")
    # A crash in native code leaves the Python stack on stderr, which the pool keeps
    # as evidence for the WorkerLost error.
    faulthandler.enable(file=sys.stderr, all_threads=False)
    if args.cores:
        cores = [int(c) for c in args.cores.split(",")]
        os.sched_setaffinity(0, cores)
    logger.info(
        "worker pid %d rank %s started: python %s, cwd %s, cores %s, sys.path %s",
        os.getpid(), os.environ.get("PARSL_WORKER_RANK"), sys.executable, os.getcwd(),
        args.cores or "all", sys.path,
    )
    try:
        serve(args.task_fd, args.result_fd, args.pool_pid)
    except SystemExit as exc:
        logger.warning("worker exiting: a task raised SystemExit(%r)", exc.code)
        raise
    logger.info("worker pid %d exiting: its pool closed the task pipe", os.getpid())


if __name__ == "__main__":
    main()
