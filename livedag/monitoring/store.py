"""The writing side of the run record: engine events folded into `<run_dir>/monitoring.db`.

    EventBus ──batch (own thread)──> RunRecord._write(batch)
                                        │ fold the batch in Python, event by event:
                                        │   new rows (tasks, tries, states, resubmits, blocks),
                                        │   one patch per touched task / try (last write wins),
                                        │   output appended per (task, try, stream)
                                        v
                      one transaction: executemany per statement shape ──> COMMIT

The engine never waits for this: the bus hands us batches on our own thread. Each batch is
one transaction in a WAL database, so a kernel killed mid-run leaves every committed batch
whole and nothing half-written (synchronous=NORMAL: a commit survives a killed process, not
a power cut). Text columns are bounded: output tails, tracebacks and messages keep their end.

Every event row gets `seq`, one counter across tables, so that `replay()` can put the
events back in the order the engine published them.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
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
from livedag.task import TaskState

logger = logging.getLogger("livedag.monitoring")

DB_NAME = "monitoring.db"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    run_dir TEXT NOT NULL,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    livedag_version TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    end_seq INTEGER
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    executor TEXT NOT NULL,
    origin TEXT,
    args TEXT NOT NULL DEFAULT '',
    depends_on TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    ended REAL,
    state TEXT NOT NULL DEFAULT 'pending',
    tries INTEGER NOT NULL DEFAULT 0,
    fail_state TEXT NOT NULL DEFAULT '',
    exc_type TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    traceback TEXT NOT NULL DEFAULT '',
    root_cause_ids TEXT NOT NULL DEFAULT '[]',
    fail_seq INTEGER,
    cancel_reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS tries (
    task_id INTEGER NOT NULL,
    try_number INTEGER NOT NULL,
    launched REAL,
    started REAL,
    ended REAL,
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    block_id TEXT,
    job_id TEXT,
    outcome TEXT NOT NULL DEFAULT '',
    exc_type TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    traceback TEXT NOT NULL DEFAULT '',
    will_retry INTEGER NOT NULL DEFAULT 0,
    fail_seq INTEGER,
    stdout TEXT NOT NULL DEFAULT '',
    stderr TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, try_number)
);
CREATE TABLE IF NOT EXISTS states (
    seq INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    try_number INTEGER NOT NULL,
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS resubmits (
    seq INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    try_number INTEGER NOT NULL,
    rearmed TEXT NOT NULL,
    redefined INTEGER NOT NULL,
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    seq INTEGER PRIMARY KEY,
    executor TEXT NOT NULL,
    block_id TEXT NOT NULL,
    job_id TEXT,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    time REAL NOT NULL
);
"""

_S = TaskState
# A final state that ends the current try (a dependency failure never started one).
_ENDS_TRY = frozenset({_S.EXEC_DONE, _S.FAILED, _S.CANCELLED})
_SUCCESS = frozenset({_S.EXEC_DONE, _S.MEMO_DONE})
_NO_FAILURE = {"fail_state": "", "exc_type": "", "message": "", "traceback": "",
               "root_cause_ids": "[]", "fail_seq": None}


def db_path(run_dir: str) -> str:
    return os.path.join(run_dir, DB_NAME)


def connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    else:
        # Made on the kernel's thread, then used by the bus thread only (one at a time).
        conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False,
                               isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[-limit:]


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

    def __init__(self, options: RunRecord, run_dir: str) -> None:
        self.options = options
        self.path = db_path(run_dir)
        self.batches = 0
        self._conn: sqlite3.Connection | None = None
        self._sub: ev.Subscription | None = None
        self._seq = 0
        self._failures: set[int] = set()  # tasks whose row holds a failure (to clear)
        self._lock = threading.Lock()  # the connection: the bus thread vs close()

    def __repr__(self) -> str:
        return f"<livedag Recorder {self.path}>"

    # ------------------------------------------------------------ lifecycle
    def _start(self, dfk: Any) -> None:
        conn = connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(SCHEMA)
            self._seq = _max_seq(conn)
            from livedag import __version__

            conn.execute(
                "INSERT OR IGNORE INTO run (id, schema_version, run_dir, hostname, pid, "
                "livedag_version, started) VALUES (1, ?, ?, ?, ?, ?, ?)",
                (SCHEMA_VERSION, os.path.abspath(dfk.run_dir), socket.gethostname(),
                 os.getpid(), __version__, time.time()),
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        # Nobody waits for the record: let a tenth of a second of events gather per batch.
        self._sub = dfk.bus.subscribe(self._write, name="monitoring", delay=0.1)
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
        fold = _Batch(self)
        for e in batch:
            fold.add(e)
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
            self.batches += 1
        if fold.cleanup:
            self._stop()  # on the bus thread: no flush (it would wait for itself)


def _max_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM tasks), 0), "
        "coalesce((SELECT max(seq) FROM states), 0), "
        "coalesce((SELECT max(seq) FROM resubmits), 0), "
        "coalesce((SELECT max(seq) FROM blocks), 0), "
        "coalesce((SELECT max(fail_seq) FROM tasks), 0), "
        "coalesce((SELECT max(fail_seq) FROM tries), 0))"
    ).fetchone()
    return int(row[0])


# Slots of a try's row in a batch, written with one upsert shape (see _Batch.execute).
_LAUNCHED, _STARTED, _ENDED, _HOST, _PID, _BLOCK, _JOB, _OUTCOME = range(8)
_TRY_UPSERT = (
    "INSERT INTO tries (task_id, try_number, launched, started, ended, host, pid, block_id, "
    "job_id, outcome) VALUES (?, ?, ?, ?, ?, coalesce(?, ''), ?, ?, ?, coalesce(?, '')) "
    "ON CONFLICT (task_id, try_number) DO UPDATE SET "
    "launched = coalesce(excluded.launched, launched), "
    "started = coalesce(excluded.started, started), "
    # A try ends once: the first event that says so (its state, or its failure) stays.
    "ended = coalesce(ended, excluded.ended), "
    "host = CASE WHEN ?6 IS NULL THEN host ELSE excluded.host END, "
    "pid = coalesce(excluded.pid, pid), "
    "block_id = coalesce(excluded.block_id, block_id), "
    "job_id = coalesce(excluded.job_id, job_id), "
    "outcome = CASE WHEN ?10 IS NULL THEN outcome ELSE excluded.outcome END"
)
_VALUE = {st: st.value for st in TaskState}  # Enum.value is a descriptor: slow on a hot path
_FINAL = frozenset(st for st in TaskState if st.is_final)


class _Batch:
    """One batch of events folded into rows, then written in one transaction.

    The hot path (a task made, launched, running, done) costs a few list and dict
    operations per event: a task made in this batch is inserted with its newest state; a
    try is one row of slots, upserted (a slot left None keeps the stored value). Rare
    things (failures, cancel reasons) are column patches. Every touched row is written
    once per batch whatever its number of events, and order across statements never
    matters: tasks are inserted before anything refers to them.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.r = recorder
        self.seq = recorder._seq
        self.new_tasks: dict[int, list[Any]] = {}
        self.task_state: dict[int, tuple[str, float | None, int]] = {}
        self.tries: dict[tuple[int, int], list[Any]] = {}
        self.task_patch: dict[int, dict[str, Any]] = {}
        self.try_patch: dict[tuple[int, int], dict[str, Any]] = {}
        self.output: dict[tuple[int, int, str], list[str]] = {}
        self.states: list[tuple[Any, ...]] = []
        self.resubmits: list[tuple[Any, ...]] = []
        self.blocks: list[tuple[Any, ...]] = []
        self.cleanup: tuple[int, float] | None = None

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _try(self, key: tuple[int, int]) -> list[Any]:
        slots = self.tries.get(key)
        if slots is None:
            slots = self.tries[key] = [None] * 8
        return slots

    def _patch(self, tid: int) -> dict[str, Any]:
        patch = self.task_patch.get(tid)
        if patch is None:
            patch = self.task_patch[tid] = {}
        return patch

    def add(self, e: ev.Event) -> None:
        kind = type(e)
        if kind is ev.TaskStateChanged:
            self._state(e)  # type: ignore[arg-type]
        elif kind is ev.TaskCreated:
            c: ev.TaskCreated = e  # type: ignore[assignment]
            deps = f"[{', '.join(map(str, c.depends_on))}]" if c.depends_on else "[]"
            self.new_tasks[c.task_id] = [c.task_id, self._next(), c.app_name, c.kind,
                                         c.executor, c.origin, c.args_summary, deps, c.time]
        elif kind is ev.TaskOutput:
            o: ev.TaskOutput = e  # type: ignore[assignment]
            self._try((o.task_id, o.try_number))
            self.output.setdefault((o.task_id, o.try_number, o.stream), []).append(o.text)
        elif kind is ev.TaskFailed:
            self._failed(e)  # type: ignore[arg-type]
        elif kind is ev.TaskCancelled:
            self._patch(e.task_id)["cancel_reason"] = e.reason  # type: ignore[attr-defined]
        elif kind is ev.TaskResubmitted:
            s: ev.TaskResubmitted = e  # type: ignore[assignment]
            self.resubmits.append((self._next(), s.task_id, s.try_number,
                                   json.dumps(list(s.rearmed)), int(s.redefined), s.time))
            for tid in (s.task_id, *s.rearmed):
                self._clear_failure(tid)
        elif kind is ev.BlockChanged:
            b: ev.BlockChanged = e  # type: ignore[assignment]
            self.blocks.append((self._next(), b.executor, b.block_id, b.job_id, b.state,
                                b.reason, b.time))
        elif kind is ev.KernelChanged and e.state == "cleanup":  # type: ignore[attr-defined]
            self.cleanup = (self._next(), e.time)

    def _state(self, e: ev.TaskStateChanged) -> None:
        st, tid, n, when = e.state, e.task_id, e.try_number, e.time
        value = _VALUE[st]
        self.states.append((self._next(), tid, value, n, when))
        final = st in _FINAL
        self.task_state[tid] = (value, when if final else None, n)
        if st is _S.LAUNCHED:
            self._try((tid, n))[_LAUNCHED] = when
        elif st is _S.RUNNING:
            slots = self._try((tid, n))
            slots[_STARTED], slots[_HOST], slots[_PID] = when, e.host, e.pid
            slots[_BLOCK], slots[_JOB] = e.block_id, e.job_id
        elif st is _S.MEMO_DONE:
            slots = self._try((tid, n))
            slots[_LAUNCHED] = slots[_ENDED] = when
            slots[_OUTCOME] = value
        elif final and n > 0 and st is not _S.DEP_FAIL:  # a dependency failure never ran
            slots = self._try((tid, n))
            slots[_ENDED], slots[_OUTCOME] = when, value
        if final and tid in self.r._failures and st in _SUCCESS:
            self._clear_failure(tid)

    def _clear_failure(self, tid: int) -> None:
        self.r._failures.discard(tid)
        self._patch(tid).update(_NO_FAILURE)

    def _failed(self, e: ev.TaskFailed) -> None:
        seq = self._next()
        limit = self.r.options.traceback_chars
        tb, message = _tail(e.traceback, limit), _tail(e.message, limit)
        if e.state is _S.FAILED and e.try_number > 0:
            key = (e.task_id, e.try_number)
            slots = self._try(key)
            slots[_OUTCOME] = _S.FAILED.value
            if slots[_ENDED] is None:
                slots[_ENDED] = e.time
            patch = self.try_patch.setdefault(key, {})
            patch.update(exc_type=e.exc_type, message=message, traceback=tb,
                         will_retry=int(e.will_retry), fail_seq=seq)
        if not e.will_retry:
            self.r._failures.add(e.task_id)
            self._patch(e.task_id).update(
                fail_state=e.state.value, exc_type=e.exc_type, message=message, traceback=tb,
                root_cause_ids=json.dumps(list(e.root_cause_ids)), fail_seq=seq)

    # ------------------------------------------------------------ SQL
    def execute(self, conn: sqlite3.Connection) -> None:
        task_state = self.task_state
        if self.new_tasks:
            rows = []
            for tid, row in self.new_tasks.items():
                state = task_state.pop(tid, None)
                rows.append((*row, *(state or ("pending", None, 0))))
            conn.executemany(
                "INSERT OR IGNORE INTO tasks (task_id, seq, app, kind, executor, origin, args, "
                "depends_on, created, state, ended, tries) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if task_state:
            conn.executemany(
                "UPDATE tasks SET state = ?, ended = ?, tries = max(tries, ?) WHERE task_id = ?",
                [(*state, tid) for tid, state in task_state.items()])
        if self.tries:
            conn.executemany(_TRY_UPSERT, [(*key, *slots) for key, slots in self.tries.items()])
        _update_columns(conn, "tasks", "task_id = ?",
                        {(k,): v for k, v in self.task_patch.items()})
        _update_columns(conn, "tries", "task_id = ? AND try_number = ?", self.try_patch)
        if self.output:
            limit = int(self.r.options.output_chars)
            for stream in ("stdout", "stderr"):
                rows = [(_tail("".join(parts), limit), tid, n)
                        for (tid, n, s), parts in self.output.items() if s == stream]
                if rows:
                    conn.executemany(
                        f"UPDATE tries SET {stream} = substr({stream} || ?, -{limit}) "
                        "WHERE task_id = ? AND try_number = ?", rows)
        if self.states:
            conn.executemany("INSERT INTO states VALUES (?, ?, ?, ?, ?)", self.states)
        if self.resubmits:
            conn.executemany("INSERT INTO resubmits VALUES (?, ?, ?, ?, ?, ?)", self.resubmits)
        if self.blocks:
            conn.executemany("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)", self.blocks)
        if self.cleanup is not None:
            seq, when = self.cleanup
            conn.execute("UPDATE run SET ended = ?, end_seq = ?", (when, seq))


def _update_columns(conn: sqlite3.Connection, table: str, where: str,
                    patches: dict[Any, dict[str, Any]]) -> None:
    """One executemany per set of columns patched (a batch has a handful of shapes)."""
    shapes: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for key, cols in patches.items():
        if cols:
            shape = tuple(sorted(cols))
            shapes.setdefault(shape, []).append((*(cols[c] for c in shape), *key))
    for shape, rows in shapes.items():
        sets = ", ".join(f"{c} = ?" for c in shape)
        conn.executemany(f"UPDATE {table} SET {sets} WHERE {where}", rows)


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
