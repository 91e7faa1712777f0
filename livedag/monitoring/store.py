"""The writing side of the run record: a subscriber of the event stream, one database.

    DataFlowKernel ──events──> EventBus ──batch, every 0.02 s, own thread──> Recorder._write
        ──> fold.Batch: the batch's events as rows ──> one transaction ──> COMMIT
                                                          <run_dir>/monitoring.db (schema.py)

The engine never waits for this. Each batch is one transaction in a WAL database, so a
kernel killed mid-run leaves every committed batch whole and nothing half-written
(synchronous=NORMAL: a commit survives a killed process, not a power cut). Text columns
are bounded: output tails, tracebacks and messages keep their end.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from livedag import events as ev
from livedag.monitoring.fold import Batch
from livedag.monitoring.schema import (
    DB_NAME,
    SCHEMA_VERSION,
    STATE_CODES,
    connect,
    create,
    db_path,
)

logger = logging.getLogger("livedag.monitoring")

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
    """The subscriber that writes one kernel's events to its database."""

    # Seconds a batch gathers. Not more: events wait in the queue meanwhile, and objects
    # that live that long are promoted to the GC's older generations, whose collections
    # then take longer (bench/monitoring.py, 20,000 tasks: 0.1 s cost the engine more).
    DELAY = 0.02

    def __init__(self, options: RunRecord, run_dir: str) -> None:
        self.options = options
        self.path = db_path(run_dir)
        self.batches = 0
        self._conn: sqlite3.Connection | None = None
        self._sub: ev.Subscription | None = None
        self._seq = 0
        self._failures: set[int] = set()  # tasks whose row holds a failure (to clear)
        self._waiting: dict[tuple[int, int], float] = {}  # see fold.Batch.waiting
        self._lock = threading.Lock()  # the connection: the bus thread vs close()

    def __repr__(self) -> str:
        return f"<livedag Recorder {self.path}>"

    # ------------------------------------------------------------ lifecycle
    def _start(self, dfk: Any) -> None:
        conn = connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            create(conn)
            self._seq = _max_seq(conn)
            self._failures = {tid for (tid,) in conn.execute(
                "SELECT task_id FROM tasks WHERE fail_seq IS NOT NULL")}
            from livedag import __version__

            conn.execute("BEGIN")
            conn.execute(
                "INSERT OR IGNORE INTO run (id, schema_version, run_dir, hostname, pid, "
                "livedag_version, started) VALUES (1, ?, ?, ?, ?, ?, ?)",
                (SCHEMA_VERSION, os.path.abspath(dfk.run_dir), socket.gethostname(),
                 os.getpid(), __version__, time.time()),
            )
            conn.execute("UPDATE run SET schema_version = ?", (SCHEMA_VERSION,))  # create()
            conn.executemany("INSERT OR IGNORE INTO state_codes VALUES (?, ?)",
                             enumerate(STATE_CODES))
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._sub = dfk.bus.subscribe(self._write, name="monitoring", delay=self.DELAY)
        # A kernel that is never cleaned up still gets its last batch written at exit.
        atexit.register(self.flush, 2.0)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event published so far is committed."""
        sub = self._sub
        if sub is None or threading.current_thread() is sub.thread:
            return True
        return sub.flush(timeout)

    def close(self) -> None:
        """Stop recording, after the events published so far are written."""
        self.flush()
        self._stop()

    def _stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()
        atexit.unregister(self.flush)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------ the bus thread
    def _write(self, batch: Sequence[ev.Event]) -> None:
        fold = Batch(self._seq, self.options, self._failures, self._waiting)
        fold.add(batch)
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            conn.execute("BEGIN")
            try:
                fold.execute(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._seq = fold.seq
            self._failures = fold.failures
            waiting = self._waiting
            for key in fold.taken:
                del waiting[key]
            waiting.update(fold.launches)
            self.batches += 1
        if fold.cleanup:
            self._stop()  # on the bus thread: no flush (it would wait for itself)


def _max_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM tasks), 0), "
        "coalesce((SELECT max(last_seq) FROM state_log), 0), "
        "coalesce((SELECT max(seq) FROM resubmits), 0), "
        "coalesce((SELECT max(seq) FROM blocks), 0), "
        "coalesce((SELECT max(fail_seq) FROM tasks), 0), "
        "coalesce((SELECT max(fail_seq) FROM tries), 0), "
        "coalesce((SELECT max(resources_seq) FROM tries), 0), "
        "coalesce((SELECT max(end_seq) FROM run), 0))"
    ).fetchone()
    return int(row[0])


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
