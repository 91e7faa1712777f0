"""The writing side: a real kernel, a real SQLite file; what each event leaves in it."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import time

import pytest

import livedag
from livedag import events as ev
from livedag.executors.threads import ThreadPoolExecutor
from livedag.monitoring import (
    DB_NAME,
    RunRecord,
    attach,
    history,
    recorder_of,
    replay,
    state_changes,
)
from livedag.task import TaskState
from tests.monitoring.conftest import finish

pytestmark = pytest.mark.timeout(60)


def rows(run_dir: str, sql: str, *args: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(os.path.join(run_dir, DB_NAME))
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@livedag.python_app
def shout(x, *, label=""):
    print("hello", x)
    return x * 2


@livedag.python_app
def boom(x):
    import sys

    print("about to fail", file=sys.stderr)
    raise KeyError(f"no {x}")


def test_the_database_is_wal_with_every_table(load_recorded):
    dfk = load_recorded()
    path = os.path.join(dfk.run_dir, DB_NAME)
    assert os.path.isfile(path)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert {"run", "tasks", "tries", "state_log", "state_codes", "resubmits", "blocks"} <= tables
    run = rows(dfk.run_dir, "SELECT * FROM run")[0]
    assert run["pid"] == os.getpid() and run["ended"] is None
    finish(dfk)
    assert rows(dfk.run_dir, "SELECT ended FROM run")[0]["ended"] is not None


def test_a_task_and_its_try(load_recorded):
    dfk = load_recorded()
    dfk.task_origin = "cell:abc:3"
    before = time.time()
    assert shout(21, label="x").result(timeout=10) == 42
    run_dir = finish(dfk)
    task = rows(run_dir, "SELECT * FROM tasks")[0]
    assert (task["task_id"], task["app"], task["kind"], task["executor"], task["origin"]) == (
        0, "shout", "python", "threads", "cell:abc:3")
    assert task["args"] == "21, label='x'"
    assert task["state"] == "exec_done" and task["tries"] == 1 and task["exc_type"] == ""
    assert before <= task["created"] <= task["ended"]
    (t,) = rows(run_dir, "SELECT * FROM tries")
    assert (t["try_number"], t["outcome"], t["pid"]) == (1, "exec_done", os.getpid())
    assert t["host"] == dfk.hostname
    assert t["launched"] <= t["started"] <= t["ended"]
    assert t["stdout"] == "hello 21\n" and t["stderr"] == ""
    assert [c.state.value for c in state_changes(run_dir)] == ["launched", "running",
                                                               "exec_done"]


def test_a_retried_failure_keeps_both_tries(load_recorded):
    dfk = load_recorded(retries=1)
    with pytest.raises(KeyError):
        boom(7).result(timeout=10)
    run_dir = finish(dfk)
    task = rows(run_dir, "SELECT * FROM tasks")[0]
    assert (task["state"], task["tries"], task["exc_type"]) == ("failed", 2, "KeyError")
    assert "no 7" in task["message"] and 'raise KeyError(f"no {x}")' in task["traceback"]
    first, second = rows(run_dir, "SELECT * FROM tries ORDER BY try_number")
    assert (first["outcome"], first["will_retry"], second["will_retry"]) == ("failed", 1, 0)
    for t in (first, second):
        assert t["exc_type"] == "KeyError" and "KeyError" in t["traceback"]
        assert t["stderr"] == "about to fail\n" and t["ended"] is not None
    assert [c.state.value for c in state_changes(run_dir)] == [
        "launched", "running", "pending", "launched", "running", "failed"]


def test_a_dependency_failure_names_its_root_cause(load_recorded):
    dfk = load_recorded()
    child = shout(boom(1))
    with pytest.raises(livedag.errors.DependencyError):
        child.result(timeout=10)
    run_dir = finish(dfk)
    task = rows(run_dir, "SELECT * FROM tasks WHERE task_id = 1")[0]
    assert task["state"] == "dep_fail" and task["exc_type"] == "DependencyError"
    assert json.loads(task["root_cause_ids"]) == [0] and json.loads(task["depends_on"]) == [0]
    assert "KeyError" in task["traceback"]
    assert rows(run_dir, "SELECT * FROM tries WHERE task_id = 1") == []


def test_output_tails_and_tracebacks_are_bounded(load_recorded):
    @livedag.python_app
    def chatty():
        for i in range(2000):
            print(f"line {i:04d}")
        raise ValueError("x" * 5000)

    dfk = load_recorded(monitoring=RunRecord(output_chars=100, traceback_chars=300))
    with pytest.raises(ValueError):
        chatty().result(timeout=10)
    run_dir = finish(dfk)
    (t,) = rows(run_dir, "SELECT * FROM tries")
    assert len(t["stdout"]) == 100 and t["stdout"].endswith("line 1999\n")
    assert len(t["traceback"]) <= 300 and len(t["message"]) <= 300


def test_resubmit_keeps_the_try_history(load_recorded, tmp_path):
    flag = tmp_path / "fixed"

    @livedag.python_app
    def flaky(path):
        import os

        if not os.path.exists(path):
            raise RuntimeError("not yet")
        return "ok"

    dfk = load_recorded()
    fut = flaky(str(flag))
    with pytest.raises(RuntimeError):
        fut.result(timeout=10)
    flag.write_text("")
    livedag.resubmit(fut)
    assert fut.result(timeout=10) == "ok"
    run_dir = finish(dfk)
    task = rows(run_dir, "SELECT * FROM tasks")[0]
    assert (task["state"], task["tries"], task["exc_type"], task["ended"] is None) == (
        "exec_done", 2, "", False)
    outcomes = [r["outcome"] for r in rows(run_dir, "SELECT * FROM tries ORDER BY try_number")]
    assert outcomes == ["failed", "exec_done"]
    (r,) = rows(run_dir, "SELECT * FROM resubmits")
    assert (r["task_id"], r["try_number"]) == (0, 2)


def test_a_cancelled_task_keeps_its_reason(load_recorded, tmp_path):
    @livedag.python_app
    def wait_for(path):
        import os
        import time

        while not os.path.exists(path):
            time.sleep(0.01)

    gate = tmp_path / "gate"
    dfk = load_recorded()
    first = wait_for(str(gate))
    second = shout(first)
    assert dfk.cancel(second, "not needed")
    gate.write_text("")
    first.result(timeout=10)
    run_dir = finish(dfk)
    task = rows(run_dir, "SELECT * FROM tasks WHERE task_id = 1")[0]
    assert (task["state"], task["cancel_reason"]) == ("cancelled", "not needed")


def test_a_cache_hit_is_a_try_of_its_own(load_recorded):
    @livedag.python_app(cache=True)
    def cached(x):
        return x

    dfk = load_recorded()
    assert cached(1).result(timeout=10) == 1
    assert cached(1).result(timeout=10) == 1
    run_dir = finish(dfk)
    task = rows(run_dir, "SELECT * FROM tasks WHERE task_id = 1")[0]
    assert task["state"] == "memo_done"
    (t,) = rows(run_dir, "SELECT * FROM tries WHERE task_id = 1")
    assert t["outcome"] == "memo_done" and t["launched"] == t["ended"]


def test_block_events_are_rows(load_recorded):
    dfk = load_recorded()
    dfk.bus.publish(ev.BlockChanged(time.time(), "htex", "0", "pending", "1234"))
    dfk.bus.publish(ev.BlockChanged(time.time(), "htex", "0", "failed", "1234", "exit 1"))
    run_dir = finish(dfk)
    got = [(r["executor"], r["block_id"], r["job_id"], r["state"], r["reason"])
           for r in rows(run_dir, "SELECT * FROM blocks ORDER BY seq")]
    assert got == [("htex", "0", "1234", "pending", ""), ("htex", "0", "1234", "failed", "exit 1")]


def test_many_events_are_written_in_few_transactions(load_recorded):
    dfk = load_recorded()
    futures = [shout(i) for i in range(500)]
    assert [f.result(timeout=30) for f in futures] == [2 * i for i in range(500)]
    recorder = recorder_of(dfk)
    assert recorder is not None and recorder.flush(10)
    assert recorder.batches < 500  # 2,000 state events, one commit per bus batch
    run_dir = finish(dfk)
    assert rows(run_dir, "SELECT count(*) FROM tasks")[0][0] == 500
    assert rows(run_dir, "SELECT count(*) FROM tries WHERE outcome = 'exec_done'")[0][0] == 500


def test_the_writer_is_a_process_of_its_own_outside_the_kernels_process_group(
    load_recorded,
):
    dfk = load_recorded()
    recorder = recorder_of(dfk)
    assert recorder is not None and recorder._proc is not None
    writer = recorder._proc
    assert writer.pid != os.getpid() and writer.poll() is None
    # Jupyter interrupts a cell with SIGINT to the kernel's process group: not the
    # writer's (tests/jupyter/test_extension.py interrupts a real kernel).
    assert os.getpgid(writer.pid) != os.getpgid(0)
    assert [f.result(timeout=30) for f in [shout(i) for i in range(50)]] == [
        2 * i for i in range(50)]
    assert recorder.flush(10) and writer.poll() is None
    run_dir = finish(dfk)
    assert writer.wait(10) == 0  # it ends with the kernel's cleanup
    assert rows(run_dir, "SELECT count(*) FROM tries WHERE outcome = 'exec_done'")[0][0] == 50
    assert rows(run_dir, "SELECT ended FROM run")[0][0] is not None


def test_beside_worker_processes_the_record_is_written_from_the_kernels_thread(
    load_recorded,
):
    from livedag.executors import HighThroughputExecutor
    from livedag.providers import LocalProvider

    dfk = load_recorded(executors=[HighThroughputExecutor(
        label="htex", max_workers_per_node=1, provider=LocalProvider(init_blocks=1))])
    recorder = recorder_of(dfk)
    assert recorder is not None and recorder._proc is None  # no writer process
    assert [f.result(timeout=30) for f in [shout(i) for i in range(20)]] == [
        2 * i for i in range(20)]
    run_dir = finish(dfk)
    assert rows(run_dir, "SELECT count(*) FROM tries WHERE outcome = 'exec_done'")[0][0] == 20
    assert {r[0] for r in rows(run_dir, "SELECT pid FROM tries")} != {os.getpid()}


def test_a_writer_that_dies_is_reported_and_the_tasks_carry_on(load_recorded, caplog):
    dfk = load_recorded()
    recorder = recorder_of(dfk)
    assert recorder is not None and recorder._proc is not None
    assert shout(1).result(timeout=10) == 2 and recorder.flush(10)
    recorder._proc.kill()
    assert recorder._proc.wait(10) == -signal.SIGKILL
    # The tasks do not notice; the log says the record stops, and where to look.
    assert [f.result(timeout=30) for f in [shout(i) for i in range(20)]] == [
        2 * i for i in range(20)]
    deadline = time.monotonic() + 10
    while "writer process exited" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "writer process exited with code -9" in caplog.text
    assert recorder.log_path in caplog.text
    assert not recorder.flush(5)  # what came after it is not committed, and flush says so
    run_dir = finish(dfk)
    assert rows(run_dir, "SELECT count(*) FROM tasks")[0][0] == 1  # what it had committed


def test_without_a_writer_process_the_record_is_written_from_a_thread(
    load_recorded, monkeypatch
):
    from livedag.monitoring.store import Recorder

    def cannot_start(self):
        raise OSError("no python here")

    monkeypatch.setattr(Recorder, "_spawn", cannot_start)
    dfk = load_recorded()
    recorder = recorder_of(dfk)
    assert recorder is not None and recorder._proc is None
    assert [f.result(timeout=30) for f in [shout(i) for i in range(30)]] == [
        2 * i for i in range(30)]
    run_dir = finish(dfk)
    assert rows(run_dir, "SELECT count(*) FROM tries WHERE outcome = 'exec_done'")[0][0] == 30
    assert rows(run_dir, "SELECT ended FROM run")[0][0] is not None


def test_attach_is_idempotent_and_one_run_record_serves_each_kernel(run_base):
    options = RunRecord()
    dirs = []
    for monitoring in (True, options, options):
        dfk = livedag.load(livedag.Config(executors=[ThreadPoolExecutor(label="threads")],
                                          run_dir=run_base, monitoring=monitoring,
                                          initialize_logging=False))
        try:
            recorder = recorder_of(dfk)
            assert recorder is not None and attach(dfk) is recorder
            shout(1).result(timeout=10)
        finally:
            dirs.append(finish(dfk))
    assert len(set(dirs)) == 3
    for d in dirs:
        assert rows(d, "SELECT count(*) FROM tasks")[0][0] == 1


def test_a_kernel_without_monitoring_writes_no_database(run_base):
    dfk = livedag.load(livedag.Config(executors=[ThreadPoolExecutor(label="threads")],
                                      run_dir=run_base, initialize_logging=False))
    try:
        shout(1).result(timeout=10)
    finally:
        finish(dfk)
    assert not os.path.exists(os.path.join(dfk.run_dir, DB_NAME))


def test_run_record_limits_are_checked():
    with pytest.raises(ValueError, match="output_chars must be a whole number >= 0"):
        RunRecord(output_chars=-1)


class _Kernel:
    """Just what attach() reads: a run dir and a bus (no subscriber delivers to it here)."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.bus = ev.EventBus()


def _dump(run_dir: str) -> dict[str, list[tuple]]:
    dump = {table: [tuple(r) for r in rows(run_dir, f"SELECT * FROM {table} ORDER BY 1, 2")]
            for table in ("tasks", "tries", "resubmits", "blocks")}
    dump["states"] = [dataclasses.astuple(c) for c in state_changes(run_dir)]
    return dump


def test_the_rows_do_not_depend_on_how_events_are_batched(load_recorded, recorder, tmp_path):
    dfk = load_recorded(retries=1)
    dfk.bus.subscribe(recorder, name="test")
    dfk.task_origin = "cell:x:1"
    with pytest.raises(livedag.errors.DependencyError):
        shout(boom(shout(1))).result(timeout=10)
    finish(dfk)
    events = recorder.events
    dumps = []
    for name, batches in (("one", [events]), ("each", [[e] for e in events])):
        kernel = _Kernel(str(tmp_path / name))
        os.makedirs(kernel.run_dir)
        recorder_ = attach(kernel)
        recorder_._sub.close()  # fed by hand below
        for batch in batches:
            recorder_._write(batch)
        recorder_.close()  # once committed (the writer is a process of its own)
        dumps.append(_dump(kernel.run_dir))
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["tries"]) == 3 and dumps[0]["tries"][1][2] is not None


def test_the_kernels_records_leave_the_rows_their_events_would(load_recorded, tmp_path):
    """The writer reads the kernel's records (events.Batch) field by field, without
    building their Events; a batch of Event objects must leave exactly the same rows."""
    dfk = load_recorded(retries=1)
    items: list[object] = []
    dfk.bus.subscribe(lambda batch: items.extend(batch.items()), name="test")
    dfk.task_origin = "cell:x:1"
    with pytest.raises(livedag.errors.DependencyError):
        shout(boom(shout(1, label="first"))).result(timeout=10)
    assert [f.result(timeout=10) for f in [shout(i) for i in range(5)]] == [0, 2, 4, 6, 8]
    finish(dfk)
    assert any(type(item) is type for item in items)  # records, not only Events
    events = list(ev.Batch(items))
    assert {type(e) for e in events} >= {ev.TaskCreated, ev.TaskStateChanged, ev.TaskOutput,
                                         ev.TaskResources, ev.TaskFailed}
    dumps = []
    for name, batch in (("records", ev.Batch(list(items))), ("events", events)):
        kernel = _Kernel(str(tmp_path / name))
        os.makedirs(kernel.run_dir)
        recorder_ = attach(kernel)
        recorder_._sub.close()  # fed by hand below
        recorder_._write(batch)
        recorder_.close()
        dumps.append(_dump(kernel.run_dir))
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["tasks"]) == 8 and len(dumps[0]["tries"]) == 8
    ran = rows(str(tmp_path / "records"), "SELECT host, pid, cpu_time FROM tries "
               "WHERE started IS NOT NULL")
    assert len(ran) == 8 and all(r["host"] and r["pid"] == os.getpid() for r in ran)
    assert all(r["cpu_time"] is not None for r in ran)


def test_state_changes_are_a_packed_row_per_batch(load_recorded, recorder):
    dfk = load_recorded()
    dfk.bus.subscribe(recorder, name="test")
    futures = [shout(i) for i in range(300)]
    assert [f.result(timeout=30) for f in futures] == [2 * i for i in range(300)]
    store = recorder_of(dfk)
    run_dir = finish(dfk)
    assert store is not None
    assert 0 < rows(run_dir, "SELECT count(*) FROM state_log")[0][0] <= store.batches
    live = [(e.task_id, e.state, e.try_number, e.time) for e in recorder.of(ev.TaskStateChanged)]
    changes = state_changes(run_dir)
    stored = [(c.task_id, c.state, c.try_number, c.time) for c in changes]
    # Every change, and each task's in the order it happened. (Two threads publishing at
    # once, the kernel's and an executor's, may interleave differently in two
    # subscribers' queues: the bus orders events per publisher, not across them.)
    assert sorted(stored, key=repr) == sorted(live, key=repr)
    for task_id in range(300):
        assert [c for c in stored if c[0] == task_id] == [c for c in live if c[0] == task_id]
    assert [c.seq for c in changes] == sorted({c.seq for c in changes})
    codes = {r["code"]: r["state"] for r in rows(run_dir, "SELECT * FROM state_codes")}
    assert codes == dict(enumerate(s.value for s in TaskState))


def test_a_record_with_a_row_per_state_change_still_reads(load_recorded):
    """Schema 1 kept a `states` table, a row per change, instead of state_log."""
    dfk = load_recorded(retries=1)
    with pytest.raises(KeyError):
        boom(1).result(timeout=10)
    run_dir = finish(dfk)
    changes, events, tasks = state_changes(run_dir), replay(run_dir), history(run_dir)
    conn = sqlite3.connect(os.path.join(run_dir, DB_NAME))
    try:
        conn.execute("CREATE TABLE states (seq INTEGER PRIMARY KEY, task_id INTEGER, "
                     "state TEXT, try_number INTEGER, time REAL)")
        conn.executemany("INSERT INTO states VALUES (?, ?, ?, ?, ?)",
                         [(c.seq, c.task_id, c.state.value, c.try_number, c.time)
                          for c in changes])
        conn.execute("DROP TABLE state_log")
        conn.commit()
    finally:
        conn.close()
    assert state_changes(run_dir) == changes
    assert replay(run_dir) == events and history(run_dir) == tasks
