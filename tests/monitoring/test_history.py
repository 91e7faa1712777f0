"""The reading side across processes: a run recorded by one interpreter is read by another,
after a clean exit, an exit without cleanup, or a SIGKILL in the middle of the run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
import types

import psutil
import pytest

import livedag
from livedag.monitoring import DB_NAME, NoRunRecord, TaskRow, history, replay
from livedag.task import TaskState
from tests.monitoring.conftest import finish, run_child, start_child

pytestmark = pytest.mark.timeout(90)

WRITER = """
import sys
import livedag
import livedag.monitoring  # registers the load hook (until the kernel attaches by itself)
from livedag.executors.threads import ThreadPoolExecutor

@livedag.python_app
def greet(name):
    print("hello", name)
    return name

@livedag.python_app
def explode(name):
    print("exploding", name, file=sys.stderr)
    raise ZeroDivisionError(f"cannot divide {name}")

@livedag.python_app
def after(x):
    return x

dfk = livedag.load(livedag.Config(executors=[ThreadPoolExecutor(label="threads")],
                                  monitoring=True, retries=1))
greet("ada").result()
try:
    after(explode("bob")).result()
except Exception:
    pass
print(dfk.run_dir)
{ending}
"""

READER = """
import dataclasses, json, sys
import livedag
rows = livedag.history({run_dir!r})
print(json.dumps([dict(dataclasses.asdict(r), state=r.state.value) for r in rows]))
"""


@pytest.mark.parametrize("ending", ["livedag.dfk().cleanup()", "pass  # no cleanup: exit"])
def test_history_in_another_process_after_the_kernel_is_gone(tmp_path, ending):
    run_dir = run_child(WRITER.replace("{ending}", ending), cwd=str(tmp_path)).stdout.split()[-1]
    out = run_child(READER.format(run_dir=run_dir), cwd=str(tmp_path)).stdout
    greet, explode, after = json.loads(out)
    assert (greet["app"], greet["state"], greet["tries"][0]["stdout"]) == (
        "greet", "exec_done", "hello ada\n")
    assert (explode["state"], explode["exc_type"]) == ("failed", "ZeroDivisionError")
    assert "cannot divide bob" in explode["message"]
    assert 'raise ZeroDivisionError(f"cannot divide {name}")' in explode["traceback"]
    assert [t["will_retry"] for t in explode["tries"]] == [True, False]
    for t in explode["tries"]:
        assert t["stderr"] == "exploding bob\n"
        assert "ZeroDivisionError" in t["traceback"] and t["pid"] is not None
    assert (after["state"], after["root_cause_ids"]) == ("dep_fail", [1])
    assert "ZeroDivisionError" in after["traceback"]


KILLED = """
import livedag
import livedag.monitoring
from livedag.executors.threads import ThreadPoolExecutor

@livedag.python_app
def step(i):
    import time
    time.sleep(0.002)
    print("step", i)
    return i

livedag.load(livedag.Config(executors=[ThreadPoolExecutor(max_threads=2)], monitoring=True))
i = 0
while True:
    futures = [step(i + k) for k in range(50)]
    for f in futures:
        f.result()
    i += 50
"""


def test_a_run_killed_mid_way_leaves_a_consistent_database(tmp_path):
    child = start_child(KILLED, cwd=str(tmp_path))
    db = tmp_path / "runinfo" / "000" / DB_NAME
    try:
        deadline = time.monotonic() + 30
        done = 0
        while done < 300:
            assert time.monotonic() < deadline, f"only {done} tasks recorded in 30 s"
            assert child.poll() is None, child.communicate()[1]
            time.sleep(0.05)
            if db.exists():
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    done = conn.execute(
                        "SELECT count(*) FROM tasks WHERE state = 'exec_done'").fetchone()[0]
                except sqlite3.OperationalError:  # the schema is not there yet
                    done = 0
                finally:
                    conn.close()
        writers = [p for p in psutil.Process(child.pid).children()
                   if "livedag.monitoring.writer" in " ".join(p.cmdline())]
        assert len(writers) == 1
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    # Its writer commits what it had read, and ends by itself: no orphan.
    _, alive = psutil.wait_procs(writers, timeout=10)
    assert not alive

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT ended FROM run").fetchone()[0] is None
    finally:
        conn.close()
    tasks = history(str(tmp_path / "runinfo"))
    finished = [t for t in tasks if t.state is TaskState.EXEC_DONE]
    assert len(finished) >= 300
    for t in finished:  # a committed batch is whole: the task, its try, its output
        (attempt,) = t.tries
        assert attempt.outcome == "exec_done" and attempt.ended is not None
        assert attempt.stdout == f"step {t.id}\n"
        assert t.ended is not None and attempt.started is not None
    for t in tasks:  # the others were caught on their way: none is half-written
        assert t.app == "step" and t.state in (TaskState.PENDING, TaskState.LAUNCHED,
                                               TaskState.RUNNING, TaskState.EXEC_DONE)
    assert len([e for e in replay(str(tmp_path / "runinfo")) if type(e).__name__ ==
                "TaskCreated"]) == len(tasks)


@livedag.python_app
def double(x):
    return 2 * x


def test_the_default_is_the_newest_run_under_runinfo(tmp_path, monkeypatch, load_recorded):
    monkeypatch.chdir(tmp_path)
    for n in (1, 2):
        dfk = load_recorded(run_dir="runinfo")
        for i in range(n):
            double(i).result(timeout=10)
        finish(dfk)
    os.makedirs(tmp_path / "runinfo" / "007")  # a newer run without a record is skipped
    newest = history()
    assert [t.id for t in newest] == [0, 1] and all(isinstance(t, TaskRow) for t in newest)
    assert [t.id for t in history("runinfo/000")] == [0]
    assert history("runinfo/001") == newest
    assert livedag.history is history


def test_no_record_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(NoRunRecord, match=r"no run record in .*Config\(monitoring=True\)"):
        history(str(tmp_path))


def test_as_frame_needs_pandas(load_recorded, monkeypatch):
    dfk = load_recorded()
    double(1).result(timeout=10)
    run_dir = finish(dfk)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(ImportError, match="needs pandas"):
        history(run_dir, as_frame=True)
    fake = types.ModuleType("pandas")
    fake.DataFrame = lambda records: records  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pandas", fake)
    (row,) = history(run_dir, as_frame=True)
    assert (row["app"], row["state"], row["tries"]) == ("double", "exec_done", 1)
