"""The reading side of the run record: `<run_dir>/monitoring.db` back into records and events.

    monitoring.db ──history()──> [TaskRow(..., tries=(TryRow, ...))]   (or a DataFrame)
                  ├─state_changes()──> [StateChange(seq, task_id, state, try_number, time)]
                  └─replay()───> [TaskCreated, TaskStateChanged, TaskOutput, TaskFailed, ...]
                                  in the order the engine published them (by `seq`)
                                  └─> RecordedRun: a read-only stand-in for a kernel, whose
                                      bus hands the events to each new subscriber (the widget)

Read-only: the database is opened with mode=ro, so reading a run never changes it, even
while its kernel is still writing (WAL lets readers and the writer go on together).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from typing import Any

from livedag import events as ev
from livedag.monitoring.schema import (
    ADDED_COLUMNS,
    DB_NAME,
    STATE_LOG,
    connect,
    unpack_state_log,
)
from livedag.monitoring.store import recorder_of
from livedag.task import TaskState


@dataclasses.dataclass(frozen=True, slots=True)
class TryRow:
    """One attempt at a task, as recorded."""

    task_id: int
    number: int
    launched: float | None
    started: float | None
    ended: float | None
    host: str
    pid: int | None
    block_id: str | None
    job_id: str | None
    outcome: str  # a TaskState value once the try has ended, "" while it runs
    exc_type: str
    message: str
    traceback: str
    will_retry: bool
    stdout: str  # the tail
    stderr: str
    # What the try used, as its executor measured it (None: not measured or not reported):
    cpu_time: float | None  # seconds of CPU, user + system, children it waited for included
    peak_rss: int | None  # bytes, the largest resident set while it ran
    wall_time: float | None  # seconds, from the worker starting the call to its end

    @property
    def duration(self) -> float | None:
        start = self.started if self.started is not None else self.launched
        if start is None or self.ended is None:
            return None
        return self.ended - start


@dataclasses.dataclass(frozen=True, slots=True)
class TaskRow:
    """One task of a recorded run, with its tries."""

    id: int
    app: str
    kind: str
    executor: str
    origin: str | None
    args: str
    depends_on: tuple[int, ...]
    created: float
    ended: float | None
    state: TaskState
    exc_type: str  # the task's last failure ("" once it has succeeded)
    message: str
    traceback: str
    root_cause_ids: tuple[int, ...]
    cancel_reason: str
    tries: tuple[TryRow, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class StateChange:
    """One state change of a task, from the run record's state-event log."""

    seq: int  # its place among all the events of the run
    task_id: int
    state: TaskState
    try_number: int
    time: float


class NoRunRecord(FileNotFoundError):
    """There is no monitoring database where one was looked for."""


def find_db(run_dir: str | None = None) -> str:
    """The database of `run_dir`; of its newest numbered run if `run_dir` holds runs
    (as `runinfo/` does); default: the loaded kernel's run if it is recorded (with every
    event published so far), else the newest run under ./runinfo."""
    if run_dir is None:
        run_dir = _current_run()
    base = run_dir if run_dir is not None else "runinfo"
    direct = os.path.join(base, DB_NAME)
    if os.path.isfile(direct):
        return direct
    runs = []
    if os.path.isdir(base):
        runs = sorted((int(n), n) for n in os.listdir(base)
                      if n.isdigit() and os.path.isfile(os.path.join(base, n, DB_NAME)))
    if runs:
        return os.path.join(base, runs[-1][1], DB_NAME)
    where = os.path.abspath(base)
    raise NoRunRecord(
        f"no run record in {where} (looked for {DB_NAME} there and in its numbered run "
        "dirs): load the kernel with Config(monitoring=True) to record its runs, or give "
        "run_dir= the directory of a recorded run"
    )


def _current_run() -> str | None:
    """The run dir of the loaded kernel if it records its run, after a flush."""
    dataflow = sys.modules.get("livedag.dataflow")  # not loaded: no kernel either
    dfk = dataflow.current_or_none() if dataflow is not None else None
    recorder = recorder_of(dfk) if dfk is not None else None
    if dfk is None or recorder is None:
        return None
    recorder.flush()
    return str(dfk.run_dir)


def _rows(conn: sqlite3.Connection, sql: str) -> Iterator[sqlite3.Row]:
    conn.row_factory = sqlite3.Row
    yield from conn.execute(sql)


def _open(run_dir: str | None) -> sqlite3.Connection:
    return connect(find_db(run_dir), read_only=True)


def _tries(conn: sqlite3.Connection) -> Iterator[sqlite3.Row]:
    """Every tries row, with NULL for the columns a database made before them lacks."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(tries)")}
    missing = "".join(f", NULL AS {column}" for table, column, _kind in ADDED_COLUMNS
                      if table == "tries" and column not in have)
    return _rows(conn, f"SELECT *{missing} FROM tries ORDER BY task_id, try_number")


def _try_row(r: sqlite3.Row) -> TryRow:
    return TryRow(r["task_id"], r["try_number"], r["launched"], r["started"], r["ended"],
                  r["host"], r["pid"], r["block_id"], r["job_id"], r["outcome"], r["exc_type"],
                  r["message"], r["traceback"], bool(r["will_retry"]), r["stdout"],
                  r["stderr"], r["cpu_time"], r["peak_rss"], r["wall_time"])


def history(run_dir: str | None = None, *, as_frame: bool = False) -> Any:
    """The tasks of a recorded run, with every try, traceback and output tail.

    `run_dir` is a run's directory, or a directory of runs (its newest is read); default:
    the loaded kernel's run if it is recorded, else the newest run under ./runinfo. A list
    of TaskRow, or with `as_frame=True` a pandas DataFrame with one row per task (`tries`
    holds the number of tries; `cpu_time` and `wall_time` the sums over its tries,
    `peak_rss` the largest; None where no try reported them).
    """
    conn = _open(run_dir)
    try:
        tries: dict[int, list[TryRow]] = {}
        for r in _tries(conn):
            tries.setdefault(r["task_id"], []).append(_try_row(r))
        tasks = [
            TaskRow(r["task_id"], r["app"], r["kind"], r["executor"], r["origin"], r["args"],
                    tuple(json.loads(r["depends_on"])), r["created"], r["ended"],
                    TaskState(r["state"]), r["exc_type"], r["message"], r["traceback"],
                    tuple(json.loads(r["root_cause_ids"])), r["cancel_reason"],
                    tuple(tries.get(r["task_id"], ())))
            for r in _rows(conn, "SELECT * FROM tasks ORDER BY task_id")
        ]
    finally:
        conn.close()
    if not as_frame:
        return tasks
    try:
        pd = importlib.import_module("pandas")  # optional; no stubs needed
    except ImportError as exc:
        raise ImportError("history(as_frame=True) needs pandas (pip install pandas); "
                          "without it, history() gives a list of TaskRow") from exc
    return pd.DataFrame([_flat(t) for t in tasks])


def _flat(task: TaskRow) -> dict[str, Any]:
    out = {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
    out["state"] = task.state.value
    out["tries"] = len(task.tries)
    cpu = [t.cpu_time for t in task.tries if t.cpu_time is not None]
    rss = [t.peak_rss for t in task.tries if t.peak_rss is not None]
    wall = [t.wall_time for t in task.tries if t.wall_time is not None]
    out["cpu_time"] = sum(cpu) if cpu else None
    out["peak_rss"] = max(rss) if rss else None
    out["wall_time"] = sum(wall) if wall else None
    return out


# ---------------------------------------------------------------- replay
def replay(run_dir: str | None = None) -> list[ev.Event]:
    """The events of a recorded run, rebuilt from its database in publication order.

    Fold them into a view (the DAG widget's Graph) to redraw a finished or killed run.
    Output comes back as one TaskOutput per try and stream (its recorded tail); a try's
    TaskResources in its place, with the try's end as its time.
    """
    conn = _open(run_dir)
    try:
        return _replay(conn)
    finally:
        conn.close()


def _replay(conn: sqlite3.Connection) -> list[ev.Event]:
    # (seq, step, event): step orders what one seq gives (a state, then its output ...).
    out: list[tuple[int, int, ev.Event]] = []
    tasks: dict[int, sqlite3.Row] = {}
    for r in _rows(conn, "SELECT * FROM tasks"):
        tasks[r["task_id"]] = r
        out.append((r["seq"], 0, ev.TaskCreated(
            r["created"], r["task_id"], r["app"], r["kind"], r["executor"],
            tuple(json.loads(r["depends_on"])), r["origin"], r["args"])))
        if r["fail_state"] == TaskState.DEP_FAIL.value and r["fail_seq"] is not None:
            out.append((r["fail_seq"], 0, ev.TaskFailed(
                r["ended"] or r["created"], r["task_id"], r["tries"], TaskState.DEP_FAIL,
                r["exc_type"], r["message"], r["traceback"],
                tuple(json.loads(r["root_cause_ids"])))))
    tries = {(r["task_id"], r["try_number"]): r for r in _tries(conn)}
    for t in tries.values():
        if t["resources_seq"] is not None:  # its time: the try's end (not recorded itself)
            out.append((t["resources_seq"], 0, ev.TaskResources(
                t["ended"] or t["started"] or t["launched"] or 0.0, t["task_id"],
                t["try_number"], t["cpu_time"] or 0.0, t["peak_rss"] or 0,
                t["wall_time"] or 0.0)))
        if t["fail_seq"] is not None:
            task = tasks.get(t["task_id"])
            roots = (tuple(json.loads(task["root_cause_ids"]))
                     if task is not None and task["fail_seq"] == t["fail_seq"] else ())
            out.append((t["fail_seq"], 0, ev.TaskFailed(
                t["ended"] or t["launched"] or 0.0, t["task_id"], t["try_number"],
                TaskState.FAILED, t["exc_type"], t["message"], t["traceback"], roots,
                bool(t["will_retry"]))))
    for change in _state_changes(conn):
        out.extend(_state_events(change, tries, tasks))
    for r in _rows(conn, "SELECT * FROM resubmits"):
        out.append((r["seq"], 0, ev.TaskResubmitted(
            r["time"], r["task_id"], r["try_number"], tuple(json.loads(r["rearmed"])),
            bool(r["redefined"]))))
    for r in _rows(conn, "SELECT * FROM blocks"):
        out.append((r["seq"], 0, ev.BlockChanged(r["time"], r["executor"], r["block_id"],
                                                 r["state"], r["job_id"], r["reason"])))
    for r in _rows(conn, "SELECT run_dir, ended, end_seq FROM run WHERE ended IS NOT NULL"):
        out.append((r["end_seq"], 0, ev.KernelChanged(r["ended"], "cleanup", r["run_dir"])))
    out.sort(key=lambda item: (item[0], item[1]))
    return [e for _seq, _step, e in out]


def state_changes(run_dir: str | None = None) -> list[StateChange]:
    """Every state change of a recorded run, in the order the engine published them."""
    conn = _open(run_dir)
    try:
        return _state_changes(conn)
    finally:
        conn.close()


def _state_changes(conn: sqlite3.Connection) -> list[StateChange]:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "state_log" not in tables:  # schema 1: a row per change
        return [StateChange(r[0], r[1], TaskState(r[2]), r[3], r[4]) for r in conn.execute(
            "SELECT seq, task_id, state, try_number, time FROM states ORDER BY seq")]
    states = [TaskState(s) for (s,) in conn.execute("SELECT state FROM state_codes "
                                                    "ORDER BY code")]
    names = ", ".join(name for name, _code in STATE_LOG)
    out: list[StateChange] = []
    for row in conn.execute(f"SELECT {names} FROM state_log ORDER BY first_seq"):
        seqs, tids, codes, tries, times = unpack_state_log(row)
        out += map(StateChange, seqs, tids, map(states.__getitem__, codes), tries, times)
    return out


def _state_events(r: StateChange, tries: dict[tuple[int, int], sqlite3.Row],
                  tasks: dict[int, sqlite3.Row]) -> list[tuple[int, int, ev.Event]]:
    """A state change as its event; a launch brings the try's output, a cancel its reason."""
    seq, tid, n, when, state = r.seq, r.task_id, r.try_number, r.time, r.state
    attempt = tries.get((tid, n))
    if state is TaskState.RUNNING and attempt is not None:
        event = ev.TaskStateChanged(when, tid, state, n, attempt["host"], attempt["pid"],
                                    attempt["block_id"], attempt["job_id"])
    else:
        event = ev.TaskStateChanged(when, tid, state, n)
    out: list[tuple[int, int, ev.Event]] = [(seq, 0, event)]
    if state is TaskState.LAUNCHED and attempt is not None:
        for step, stream in ((1, "stdout"), (2, "stderr")):
            if attempt[stream]:
                out.append((seq, step, ev.TaskOutput(when, tid, n, stream, attempt[stream])))
    elif state is TaskState.CANCELLED and tid in tasks:
        out.append((seq, 1, ev.TaskCancelled(when, tid, tasks[tid]["cancel_reason"])))
    return out


# ---------------------------------------------------------------- a recorded run as a kernel
class _ReplayBus(ev.EventBus):
    """A bus that hands the recorded events to each new subscriber, then nothing more."""

    def __init__(self, events: list[ev.Event]) -> None:
        super().__init__()
        self.log.extend(events)  # kept: nothing is published after them

    def _first(self) -> int:
        return 0  # every subscriber reads the whole run

    def _trim(self) -> None:
        pass

    def subscribe(
        self, callback: ev.Callback, *, name: str = "", delay: float = ev.BATCH_DELAY,
        settled: Any = None,
    ) -> ev.Subscription:
        sub = super().subscribe(callback, name=name, delay=delay, settled=settled)
        # Delivered before this returns (on the subscriber's own thread, as always), so a
        # view drawn right after subscribing already shows the whole run.
        sub.flush(30.0)
        return sub


class ReadOnlyRunError(RuntimeError):
    """A recorded run was asked to run a task again."""


class RecordedRun:
    """A finished (or killed) run, read back from its database: enough of a kernel for a
    view to draw it (`bus`, `tasks`, `run_dir`); resubmit and cancel say why they can't."""

    def __init__(self, run_dir: str | None = None) -> None:
        path = find_db(run_dir)
        self.run_dir = os.path.dirname(os.path.abspath(path))
        self.events = replay(self.run_dir)
        # Not the kernel's cleanup: a view stops updating at it, and this one stays open.
        self.bus: ev.EventBus = _ReplayBus([e for e in self.events
                                            if not isinstance(e, ev.KernelChanged)])
        self.tasks: dict[int, Any] = {}  # no live task: every view is built from the events
        self.task_origin: str | None = None

    def __repr__(self) -> str:
        return f"<RecordedRun {self.run_dir} ({len(self.events)} events)>"

    def _read_only(self, what: str) -> ReadOnlyRunError:
        return ReadOnlyRunError(
            f"cannot {what}: {self.run_dir} is a recorded run (read-only); load a kernel "
            "and run the cells again to run its tasks"
        )

    def resubmit(self, target: Any, **_kwargs: Any) -> Any:
        raise self._read_only(f"resubmit task {target}")

    def cancel(self, target: Any, reason: str = "") -> bool:
        raise self._read_only("cancel a task")
