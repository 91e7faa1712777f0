"""A batch of engine events folded into rows of the run record, written in one transaction.

    Recorder._write(batch) ──> Batch.add(batch): in Python, one pass over the log's items
        (the kernel's records are read field by field, never built into Events)
        state change ──> a flat row of the state-event log
                     └─> the slots of its try and the newest state of its task
        task made, output, resources ──> a row, a text per (try, stream), try slots
        failures, cancels, resubmits, blocks (rare) ──> column patches
    ──> Batch.execute(conn), inside the recorder's transaction:
        tasks:     a row per task made, the newest state of each older task touched
        tries:     one upsert per touched try (a slot left None keeps the stored value);
                   a try gets its row when it runs or ends, its launch time carried over
                   until then (a row written at launch and rewritten at the end cost
                   four times one insert: most of the record's time on short tasks)
        state_log: ONE row per batch, its state changes as packed columns

Why it is built this way: the recorder's thread competes with the engine for the GIL,
and on two cores even its SQLite work (which runs without the GIL) slows the engine's
thread hand-offs; objects it keeps alive make the engine's garbage collections slower.
So each event costs a few list and dict operations (no method call, no Enum hashing,
no object kept per event: rows are laid end to end in flat lists), each touched row is
written once per batch, and the state-event log, most of the events, is one row of
packed arrays per batch rather than a row per event. Rows are bound as multi-row VALUES,
a few hundred per statement: executemany hands the GIL back and forth once per row.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from livedag import events as ev
from livedag.monitoring.schema import pack_state_log
from livedag.task import StateMembers, TaskState


class Limits(Protocol):
    """What a batch reads of its RunRecord."""

    @property
    def output_chars(self) -> int: ...

    @property
    def traceback_chars(self) -> int: ...


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[-limit:] if limit else ""


_CHUNK = 256  # rows per multi-row statement, at most


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, group: str, rows: int, tail: str) -> str:
    return f"{head} VALUES {', '.join([group] * rows)}{tail}"


def _insert(conn: sqlite3.Connection, head: str, group: str, flat: list[Any],
            tail: str = "") -> None:
    """Insert the rows laid end to end in `flat` (`group` says one row's values).

    Statements hold a power of two of rows (at most _CHUNK), so a handful of shapes serve
    every batch size and each is prepared once (the connection caches them).
    """
    width = group.count("?")
    rows, start = len(flat) // width, 0
    while rows:
        n = min(_CHUNK, 1 << (rows.bit_length() - 1))
        end = start + n * width
        conn.execute(_values_sql(head, group, n, tail), flat[start:end])
        start, rows = end, rows - n


_TASK_INSERT = ("INSERT OR IGNORE INTO tasks (task_id, seq, app, kind, executor, origin, args, "
                "depends_on, created, state, ended, tries)")
_TASK_GROUP = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# A task made in an earlier batch: its newest state (VALUES as a table: one statement).
_TASK_STATE = ("UPDATE tasks SET state = v.column2, ended = v.column3, "
               "tries = max(tries, v.column4) FROM (", ") AS v WHERE task_id = v.column1")

# A try's row, laid end to end in _Batch.tries: no list per try (the GC never untracks a
# list, so a batch's worth of them would be promoted to the older generations and make
# the engine's full collections more frequent).
_TRY_COLUMNS = ("task_id", "try_number", "launched", "ended", "outcome", "started", "host",
                "pid", "block_id", "job_id", "stdout", "stderr", "cpu_time", "peak_rss",
                "wall_time", "resources_seq")
_WIDTH = len(_TRY_COLUMNS)
_LAUNCHED, _ENDED, _OUTCOME, _STARTED = 2, 3, 4, 5  # _STARTED.. job_id: a running try
_STDOUT, _STDERR, _USED = 10, 11, 12  # _USED.. resources_seq: what the try used
_PLACE = ("", None, None, None)  # where a try ran: TaskStateChanged's host..job_id defaults
_EMPTY_TRY = (None, None, "", None, "", None, None, None, "", "", None, None, None, None)


@functools.lru_cache(maxsize=8)
def _try_upsert(limit: int) -> tuple[str, str, str]:
    head = f"INSERT INTO tries ({', '.join(_TRY_COLUMNS)})"
    group = "(" + ", ".join("?" * _WIDTH) + ")"
    tail = (
        " ON CONFLICT (task_id, try_number) DO UPDATE SET "
        "launched = coalesce(excluded.launched, launched), "
        # A try ends once: the first event that says so (its state, or its failure) stays.
        "ended = coalesce(ended, excluded.ended), "
        "outcome = CASE WHEN excluded.outcome = '' THEN outcome ELSE excluded.outcome END, "
        "started = coalesce(excluded.started, started), "
        "host = CASE WHEN excluded.started IS NULL THEN host ELSE excluded.host END, "
        "pid = coalesce(excluded.pid, pid), "
        "block_id = coalesce(excluded.block_id, block_id), "
        "job_id = coalesce(excluded.job_id, job_id), "
        f"stdout = substr(stdout || excluded.stdout, -{max(limit, 1)}), "
        f"stderr = substr(stderr || excluded.stderr, -{max(limit, 1)}), "
        "cpu_time = coalesce(excluded.cpu_time, cpu_time), "
        "peak_rss = coalesce(excluded.peak_rss, peak_rss), "
        "wall_time = coalesce(excluded.wall_time, wall_time), "
        "resources_seq = coalesce(excluded.resources_seq, resources_seq)"
    )
    return head, group, tail


_S = StateMembers
_FINAL = frozenset(st.value for st in TaskState if st.is_final)
_SUCCESS = frozenset({_S.EXEC_DONE.value, _S.MEMO_DONE.value})
_NO_FAILURE = {"fail_state": "", "exc_type": "", "message": "", "traceback": "",
               "root_cause_ids": "[]", "fail_seq": None}


class Batch:
    """One batch of events folded into rows, then written in one transaction.

    The hot path (a task made, launched, running, done) costs a few list and dict
    operations per event and keeps no object per event: rows are laid end to end in a
    few flat lists, found again through dicts of offsets. A task made in this batch is
    inserted with its newest state, an older task gets its newest state; a try is one
    row upserted (a slot left None keeps the stored value). Rare things (failures, cancel
    reasons) are column patches. Every touched row is written once per batch whatever
    its number of events, and order across statements never matters: tasks are inserted
    before anything refers to them.
    """

    def __init__(self, seq: int, options: Limits, failures: set[int],
                 waiting: dict[tuple[int, int], float] | None = None) -> None:
        self.seq = seq
        self.options = options
        self.failures = set(failures)  # the recorder's copy changes only on commit
        # Tries launched in an earlier batch that have no row yet: (task, try) -> launch
        # time. Read here, changed by the recorder on commit (launches, taken).
        self.waiting = waiting if waiting is not None else {}
        self.launches: dict[tuple[int, int], float] = {}  # launched in this batch, no row
        self.taken: list[tuple[int, int]] = []  # of `waiting`, given a row in this batch
        self.log: list[Any] = []  # state changes, 5 values each (STATE_LOG)
        self.new_tasks: list[Any] = []  # 12 values each (_TASK_INSERT)
        self.new_at: dict[int, int] = {}  # task id -> its offset in new_tasks
        self.task_states: list[Any] = []  # older tasks: id, state, ended, tries
        self.state_at: dict[int, int] = {}
        self.tries: list[Any] = []  # _WIDTH values each
        self.try_at: dict[tuple[int, int], int] = {}
        self.output: dict[tuple[int, int, str], list[str]] = {}
        self.task_patch: dict[int, dict[str, Any]] = {}
        self.try_patch: dict[tuple[int, int], dict[str, Any]] = {}
        self.resubmits: list[tuple[Any, ...]] = []
        self.blocks: list[tuple[Any, ...]] = []
        self.cleanup: tuple[int, float] | None = None

    def _try(self, tid: int, n: int) -> int:
        at = self.try_at.get((tid, n))
        if at is None:
            at = self._new_try(tid, n)
        return at

    def _new_try(self, tid: int, n: int) -> int:
        """A row for a try this batch has none for, with its launch time if it waited."""
        key = (tid, n)
        at = self.try_at[key] = len(self.tries)
        self.tries += key
        self.tries += _EMPTY_TRY
        when = self.launches.pop(key, None)
        if when is None and (when := self.waiting.get(key)) is not None:
            self.taken.append(key)
        if when is not None:
            self.tries[at + _LAUNCHED] = when
        return at

    # One loop with every branch inline, on purpose: a call per state change would cost
    # more than the rest of its handling (this loop is most of the recorder's Python).
    def add(self, batch: ev.Batch | Sequence[Any]) -> None:  # noqa: PLR0912, PLR0915
        """Fold a batch: an events.Batch, or a list of the bus log's items (records and
        Event objects, see events.Batch; a list of Events is one too). The kernel's
        records are read field by field, never built into Events (building them took ~2 of
        the writer's ~11.5 µs a no-op task)."""
        items = batch.items() if isinstance(batch, ev.Batch) else batch
        seq, log, tries, try_at = self.seq, self.log, self.tries, self.try_at
        new_tasks, new_at, task_states, state_at = (self.new_tasks, self.new_at,
                                                    self.task_states, self.state_at)
        launched, running, memo = _S.LAUNCHED, _S.RUNNING, _S.MEMO_DONE.value
        changed, created, resources = ev.TaskStateChanged, ev.TaskCreated, ev.TaskResources
        final_values = _FINAL
        i, end = 0, len(items)
        while i < end:
            item = items[i]
            seq += 1
            if item is changed:  # a record: (class, number of fields, fields...)
                when, tid, st, n = items[i + 2], items[i + 3], items[i + 4], items[i + 5]
                k = items[i + 1]
                if st is running:
                    place = tuple(items[i + 6:i + 2 + k])
                i += 2 + k
            elif type(item) is changed:  # published as an Event
                when, tid, st, n = item.time, item.task_id, item.state, item.try_number
                if st is running:
                    place = (item.host, item.pid, item.block_id, item.job_id)
                i += 1
            else:
                if type(item) is type:  # another kind of record
                    k = items[i + 1]
                    fields = items[i + 2:i + 2 + k]
                    i += 2 + k
                    if item is created:
                        self._created(seq, *fields)
                    elif item is resources:
                        self._used(seq, *fields)
                    else:
                        self._other(seq, item(*fields))
                else:
                    i += 1
                    if type(item) is created:
                        e: Any = item
                        self._created(seq, e.time, e.task_id, e.app_name, e.kind, e.executor,
                                      e.depends_on, e.origin, e.args_summary)
                    else:
                        self._other(seq, item)
                continue
            value = st._value_  # not .value: Enum.value is a property, 5x slower
            log += (seq, tid, value, n, when)
            final = value in final_values
            newest = (value, when if final else None, n)
            at = new_at.get(tid)
            if at is not None:
                new_tasks[at + 9:at + 12] = newest
            elif (at := state_at.get(tid)) is not None:
                task_states[at + 1:at + 4] = newest
            else:
                state_at[tid] = len(task_states)
                task_states.append(tid)
                task_states += newest
            if st is launched:
                # No row yet: most tries start and end within a batch or two, and a
                # row written now would be rewritten then (an upsert that conflicts
                # costs four inserts). The launch waits for the try's first row;
                # state_log has it meanwhile.
                self.launches[tid, n] = when
            elif st is running or (
                    final and (value == memo or (n > 0 and st is not _S.DEP_FAIL))):
                at = try_at.get((tid, n))  # (a dependency failure never ran)
                if at is None:
                    at = self._new_try(tid, n)
                if st is running:  # a record may leave out the last of host..job_id
                    tries[at + _STARTED:at + _STDOUT] = (when, *place, *_PLACE[len(place):])
                else:
                    if value == memo:
                        tries[at + _LAUNCHED] = when
                    if tries[at + _ENDED] is None:
                        tries[at + _ENDED] = when
                    tries[at + _OUTCOME] = value
            if final and tid in self.failures and value in _SUCCESS:
                self._clear_failure(tid)
        self.seq = seq

    def _created(self, seq: int, when: float, tid: int, app: str, kind: str, executor: str,
                 depends_on: tuple[int, ...], origin: str | None, args: str = "") -> None:
        self.new_at[tid] = len(self.new_tasks)
        deps = f"[{', '.join(map(str, depends_on))}]" if depends_on else "[]"
        self.new_tasks += (tid, seq, app, kind, executor, origin, args, deps, when, "pending",
                           None, 0)

    def _used(self, seq: int, when: float, tid: int, n: int, cpu_time: float, peak_rss: int,
              wall_time: float) -> None:
        """What a try used (TaskResources: one per try)."""
        at = self._try(tid, n) + _USED
        # A peak RSS of 0 means "not measured" (the thread executor): NULL, not 0 bytes.
        self.tries[at:at + 4] = (cpu_time, peak_rss or None, wall_time, seq)

    def _other(self, seq: int, e: ev.Event) -> None:
        if isinstance(e, ev.TaskResources):
            self._used(seq, e.time, e.task_id, e.try_number, e.cpu_time, e.peak_rss,
                       e.wall_time)
        elif isinstance(e, ev.TaskOutput):
            parts = self.output.get((e.task_id, e.try_number, e.stream))
            if parts is None:
                self.output[e.task_id, e.try_number, e.stream] = [e.text]
            else:
                parts.append(e.text)
        elif isinstance(e, ev.TaskFailed):
            self._failed(seq, e)
        elif isinstance(e, ev.TaskCancelled):
            self._patch(e.task_id)["cancel_reason"] = e.reason
        elif isinstance(e, ev.TaskResubmitted):
            self.resubmits.append((seq, e.task_id, e.try_number, json.dumps(list(e.rearmed)),
                                   int(e.redefined), e.time))
            for tid in (e.task_id, *e.rearmed):
                self._clear_failure(tid)
        elif isinstance(e, ev.BlockChanged):
            self.blocks.append((seq, e.executor, e.block_id, e.job_id, e.state, e.reason,
                                e.time))
        elif isinstance(e, ev.KernelChanged) and e.state == "cleanup":
            self.cleanup = (seq, e.time)

    def _patch(self, tid: int) -> dict[str, Any]:
        patch = self.task_patch.get(tid)
        if patch is None:
            patch = self.task_patch[tid] = {}
        return patch

    def _clear_failure(self, tid: int) -> None:
        self.failures.discard(tid)
        self._patch(tid).update(_NO_FAILURE)

    def _failed(self, seq: int, e: ev.TaskFailed) -> None:
        limit = self.options.traceback_chars
        tb, message = _tail(e.traceback, limit), _tail(e.message, limit)
        if e.state is _S.FAILED and e.try_number > 0:
            key = (e.task_id, e.try_number)
            at = self._try(*key)
            self.tries[at + _OUTCOME] = _S.FAILED.value
            if self.tries[at + _ENDED] is None:
                self.tries[at + _ENDED] = e.time
            patch = self.try_patch.setdefault(key, {})
            patch.update(exc_type=e.exc_type, message=message, traceback=tb,
                         will_retry=int(e.will_retry), fail_seq=seq)
        if not e.will_retry:
            self.failures.add(e.task_id)
            self._patch(e.task_id).update(
                fail_state=e.state.value, exc_type=e.exc_type, message=message, traceback=tb,
                root_cause_ids=json.dumps(list(e.root_cause_ids)), fail_seq=seq)

    # ------------------------------------------------------------ SQL
    def execute(self, conn: sqlite3.Connection) -> None:
        if self.new_tasks:
            _insert(conn, _TASK_INSERT, _TASK_GROUP, self.new_tasks)
        if self.task_states:
            _insert(conn, _TASK_STATE[0], "(?, ?, ?, ?)", self.task_states, _TASK_STATE[1])
        limit = self.options.output_chars
        if limit:
            for (tid, n, stream), parts in self.output.items():
                at = self._try(tid, n) + (_STDOUT if stream == "stdout" else _STDERR)
                self.tries[at] = _tail("".join(parts), limit)
        if self.tries:
            head, group, tail = _try_upsert(limit)
            _insert(conn, head, group, self.tries, tail)
        _update_columns(conn, "tasks", "task_id = ?",
                        {(k,): v for k, v in self.task_patch.items()})
        _update_columns(conn, "tries", "task_id = ? AND try_number = ?", self.try_patch)
        if self.log:
            conn.execute("INSERT INTO state_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                         pack_state_log(self.log))
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
