"""The kernel's side of the run record: a subscriber of the event stream, one database.

    DataFlowKernel ──events──> EventBus ──batch, every 0.02 s, own thread──> Recorder._write
      tasks in worker processes: ──> Writer (writer.py) on that thread
      tasks in the kernel's threads: ──pickled, a frame per batch──> the writer process
    Writer: fold.Batch ──> one transaction ──> COMMIT      <run_dir>/monitoring.db (schema.py)

The engine never waits for this. Where the writing happens follows where the tasks run:
the folding and SQLite take ~12 µs of CPU per no-op task; beside tasks that share the
kernel's GIL (the thread executor) that time is better spent in another process, beside
worker processes on a small machine it is better spent in the kernel's spare GIL time
(bench/monitoring.py). Each batch is one transaction in a WAL database, so a kernel killed
mid-run leaves every committed batch whole and nothing half-written (synchronous=NORMAL:
a commit survives a killed process, not a power cut); a writer process commits what it
had read, then ends. Text columns are bounded: output tails, tracebacks and messages keep
their end.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from livedag import events as ev
from livedag.executors.htex.protocol import write_all
from livedag.monitoring.schema import (
    DB_NAME,
    SCHEMA_VERSION,
    STATE_CODES,
    connect,
    create,
    db_path,
)
from livedag.monitoring.writer import ACK, FRAME, Writer

logger = logging.getLogger("livedag.monitoring")

# Bytes the pipe to the writer process holds (Linux's default is 64 KiB): a batch of a
# busy thread executor (~130 bytes a task, ~1,000 tasks) goes in one write, without
# waiting for the writer to read its first part.
PIPE_SIZE = 1 << 20

__all__ = ["DB_NAME", "Recorder", "RunRecord", "attach", "recorder_of"]


@dataclasses.dataclass(frozen=True, slots=True)
class RunRecord:
    """What `Config(monitoring=...)` holds: record the run in `<run_dir>/monitoring.db`.

    `Config(monitoring=True)` means `RunRecord()`. Each try keeps the last `output_chars`
    characters of its stdout and of its stderr, and the last `traceback_chars` of its
    traceback and message. The kernel calls `attach(dfk)` when it is made; one Config
    can be loaded many times, each kernel gets a Recorder of its own.
    """

    output_chars: int = 16_000
    traceback_chars: int = 32_000

    def __post_init__(self) -> None:
        for name in ("output_chars", "traceback_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"RunRecord.{name} must be a whole number >= 0, got {value!r}")

    def attach(self, dfk: Any) -> Recorder:
        return attach(dfk, self)


class Recorder:
    """The subscriber that writes one kernel's events: from its own thread (a Writer) when
    the tasks run in worker processes, through a writer process (writer.py) when they run
    in the kernel's threads and share its GIL."""

    # Seconds a batch gathers: one pickle and one transaction per batch.
    DELAY = 0.02

    def __init__(self, options: RunRecord, run_dir: str) -> None:
        self.options = options
        self.path = db_path(run_dir)
        self.log_path = os.path.join(run_dir, "monitoring.log")
        self.batches = 0  # committed
        self._shipped = 0  # handed to the writer
        self._sub: ev.Subscription | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._writer: Writer | None = None  # writing on the bus thread, without a process
        self._acks: threading.Thread | None = None
        self._state = threading.Condition()  # batches, _shipped, _proc's end
        self._lock = threading.Lock()  # _writer: the bus thread vs close()
        self.lost = False  # the writer died: what came after its last commit is not kept

    def __repr__(self) -> str:
        return f"<livedag Recorder {self.path}>"

    # ------------------------------------------------------------ lifecycle
    def _start(self, dfk: Any) -> None:
        _create(self.path, dfk.run_dir)
        if not _tasks_in_kernel(dfk):
            # The tasks run in worker processes: the kernel's GIL has time to spare, and
            # on a small machine a writer process would take CPU time from theirs
            # (bench/monitoring.py --executor htex, two CPUs: 15-18% against 3-5%).
            self._writer = Writer(self.path, self.options)
        else:
            try:
                self._proc = self._spawn()
            except OSError:
                logger.warning("livedag run record: no writer process could be started; "
                               "writing from a thread of the kernel", exc_info=True)
                self._writer = Writer(self.path, self.options)
        if self._proc is not None:
            with contextlib.suppress(OSError, AttributeError):  # Linux: room for a batch
                fcntl.fcntl(self._proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)  # type: ignore[union-attr]
            self._acks = threading.Thread(target=self._read_acks, daemon=True,
                                          name="livedag-monitoring-acks")
            self._acks.start()
        self._sub = dfk.bus.subscribe(self._write, name="monitoring", delay=self.DELAY,
                                      settled=self._committed)
        # A kernel that is never cleaned up still gets its last batch written at exit.
        atexit.register(self.close, 2.0)

    def _spawn(self) -> subprocess.Popen[bytes]:
        from livedag.executors.htex.blocks import env_with_livedag

        with open(self.log_path, "ab") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "livedag.monitoring.writer", self.path,
                 str(self.options.output_chars), str(self.options.traceback_chars)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                env=env_with_livedag(), close_fds=True,
                # Not in the kernel's process group, which Jupyter sends SIGINT to when it
                # interrupts a cell (even while the writer is still starting up).
                start_new_session=True,
            )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event published so far is committed."""
        sub = self._sub
        if sub is None or threading.current_thread() is sub.thread:
            return not self.lost
        return sub.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop recording, after the events published so far are written."""
        self.flush(timeout)
        self._stop(timeout)

    def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()
        atexit.unregister(self.close)

    def _stop(self, timeout: float = 5.0) -> None:
        self._unsubscribe()
        proc = self._proc
        if proc is not None:
            with self._state, contextlib.suppress(OSError):  # not while a batch is written
                proc.stdin.close()  # type: ignore[union-attr]  # the writer ends
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.error("livedag run record: its writer did not end; killed")
                proc.kill()
        if self._acks is not None and self._acks is not threading.current_thread():
            self._acks.join(timeout)
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # ------------------------------------------------------------ the bus thread
    def _write(self, batch: Sequence[ev.Event]) -> None:
        if self._proc is None:  # written here (see _start)
            with self._lock:
                writer = self._writer
                if writer is None:
                    return  # closed
                ended = writer.write(batch)
                self.batches = writer.batches
            if ended:
                self._stop()  # on the bus thread: no flush (it would wait for itself)
            return
        proc = self._proc
        data = pickle.dumps(batch.take() if isinstance(batch, ev.Batch) else list(batch),
                            protocol=5)
        # The batch's list (tens of thousands of items) is gone before the write, which
        # lets the kernel's threads run and allocate: their collections never walk it.
        with self._state:
            try:
                write_all(proc.stdin.fileno(), FRAME.pack(len(data)) + data)  # type: ignore[union-attr]
            except (OSError, ValueError):
                return  # the writer has ended (see _read_acks)
            self._shipped += 1

    def _committed(self, timeout: float | None) -> bool:
        """True once every batch handed to the writer is committed (Subscription.flush)."""
        proc = self._proc
        with self._state:
            target = self._shipped
            self._state.wait_for(lambda: self.batches >= target
                                 or (proc is not None and proc.returncode is not None),
                                 timeout)
            return self.batches >= target  # False too if the writer died before

    # ------------------------------------------------------------ the writer's acks
    def _read_acks(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        while len(ack := proc.stdout.read(ACK.size)) == ACK.size:
            with self._state:
                self.batches = ACK.unpack(ack)[0]
                self._state.notify_all()
        code = proc.wait()
        proc.stdout.close()
        with self._state, contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]  # under the lock: not mid-batch
            self._state.notify_all()
        if code != 0:
            self.lost = True
            logger.error("livedag run record: its writer process exited with code %s; "
                         "the record of %s stops here. See %s", code, self.path, self.log_path)
        self._unsubscribe()  # if the writer ended first: at the kernel's cleanup, or lost


def _tasks_in_kernel(dfk: Any) -> bool:
    """Does one of the kernel's executors run tasks in its own process (threads)?"""
    executors = getattr(getattr(dfk, "config", None), "executors", None) or ()
    return any(getattr(ex, "in_kernel_process", False) for ex in executors)


def _create(path: str, run_dir: str) -> None:
    """The tables, the run's row and the state codes (before the writer opens it)."""
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        create(conn)
        from livedag import __version__

        conn.execute("BEGIN")
        conn.execute(
            "INSERT OR IGNORE INTO run (id, schema_version, run_dir, hostname, pid, "
            "livedag_version, started) VALUES (1, ?, ?, ?, ?, ?, ?)",
            (SCHEMA_VERSION, os.path.abspath(run_dir), socket.gethostname(),
             os.getpid(), __version__, time.time()),
        )
        conn.execute("UPDATE run SET schema_version = ?", (SCHEMA_VERSION,))  # create()
        conn.executemany("INSERT OR IGNORE INTO state_codes VALUES (?, ?)",
                         enumerate(STATE_CODES))
        conn.execute("COMMIT")
    finally:
        conn.close()


# ---------------------------------------------------------------- attaching to a kernel
_attached: weakref.WeakKeyDictionary[Any, Recorder] = weakref.WeakKeyDictionary()
_attach_lock = threading.Lock()


def attach(dfk: Any, options: RunRecord | None = None) -> Recorder:
    """Record `dfk`'s run in `<dfk.run_dir>/monitoring.db`; its Recorder if it already is.

    Events published before this call are not in the record: attach when the kernel is
    made (`Config(monitoring=True)`) to keep every task and block event.
    """
    with _attach_lock:
        existing = _attached.get(dfk)
        if existing is not None and existing._sub is not None:
            return existing
        recorder = Recorder(options or RunRecord(), dfk.run_dir)
        recorder._start(dfk)
        _attached[dfk] = recorder
        return recorder


def recorder_of(dfk: Any) -> Recorder | None:
    """The Recorder attached to `dfk`, or None."""
    return _attached.get(dfk)
