"""What each try used (TaskResources): kept in the tries table, read back by history()
and replay(), drawn by plot.resources(); from synthetic events, the thread executor and
the ZMQ executor."""

from __future__ import annotations

import io
import os
import sqlite3
import sys
import types

import pytest

import livedag
from livedag import events as ev
from livedag.monitoring import DB_NAME, attach, history, replay
from livedag.monitoring.schema import ADDED_COLUMNS, connect, create
from livedag.task import TaskState
from tests.monitoring.conftest import finish

pytestmark = pytest.mark.timeout(90)
MiB = 1 << 20
S = TaskState


class _Kernel:
    """Just what attach() reads: a run dir and a bus (fed by hand here)."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.bus = ev.EventBus()


def _task(tid: int, app: str, t: float, *tries: tuple[float, int, float] | None,
          failed_first: bool = False) -> list[ev.Event]:
    """The events of a task whose tries used (cpu, rss, wall); None: no report."""
    out: list[ev.Event] = [ev.TaskCreated(t, tid, app, "python", "htex", (), None)]
    for n, used in enumerate(tries, start=1):
        out += [ev.TaskStateChanged(t + n, tid, S.LAUNCHED, n),
                ev.TaskStateChanged(t + n + 0.1, tid, S.RUNNING, n, "node", 100 + n)]
        if used is not None:
            out.append(ev.TaskResources(t + n + 0.5, tid, n, *used))
        if failed_first and n == 1:
            out += [ev.TaskFailed(t + n + 0.6, tid, n, S.FAILED, "OSError", "disk", "tb",
                                  will_retry=True),
                    ev.TaskStateChanged(t + n + 0.6, tid, S.PENDING, n)]
        else:
            out.append(ev.TaskStateChanged(t + n + 0.6, tid, S.EXEC_DONE, n))
    return out


def _record(run_dir: str, events: list[ev.Event], *, per_event: bool = False) -> str:
    os.makedirs(run_dir, exist_ok=True)
    recorder = attach(_Kernel(run_dir))
    assert recorder._sub is not None
    recorder._sub.close()  # fed by hand below
    for batch in ([e] for e in events) if per_event else [events]:
        recorder._write(batch)
    recorder.close()
    return run_dir


EVENTS = [
    *_task(0, "fit", 100.0, (1.5, 300 * MiB, 2.0)),
    *_task(1, "fit", 101.0, (0.25, 0, 0.5)),  # 0 bytes: not measured (thread executor)
    *_task(2, "load", 102.0, (0.5, 80 * MiB, 1.0), (0.75, 120 * MiB, 1.5), failed_first=True),
    *_task(3, "load", 103.0, None),  # an executor that reports nothing
]


def test_a_try_keeps_what_it_used(tmp_path):
    run_dir = _record(str(tmp_path / "run"), EVENTS)
    conn = sqlite3.connect(os.path.join(run_dir, DB_NAME))
    try:
        got = conn.execute("SELECT task_id, try_number, cpu_time, peak_rss, wall_time "
                           "FROM tries ORDER BY 1, 2").fetchall()
    finally:
        conn.close()
    assert got == [(0, 1, 1.5, 300 * MiB, 2.0), (1, 1, 0.25, None, 0.5),
                   (2, 1, 0.5, 80 * MiB, 1.0), (2, 2, 0.75, 120 * MiB, 1.5),
                   (3, 1, None, None, None)]
    fit, thread, retried, silent = history(run_dir)
    (attempt,) = fit.tries
    assert (attempt.cpu_time, attempt.peak_rss, attempt.wall_time) == (1.5, 300 * MiB, 2.0)
    assert thread.tries[0].peak_rss is None and thread.tries[0].cpu_time == 0.25
    assert [(a.cpu_time, a.outcome) for a in retried.tries] == [(0.5, "failed"),
                                                                 (0.75, "exec_done")]
    assert silent.tries[0].cpu_time is None and silent.tries[0].wall_time is None


def test_the_rows_do_not_depend_on_how_resource_events_are_batched(tmp_path):
    one = _record(str(tmp_path / "one"), EVENTS)
    each = _record(str(tmp_path / "each"), EVENTS, per_event=True)
    assert history(one) == history(each)
    assert replay(one) == replay(each)


def test_replay_puts_each_report_back_in_its_place(tmp_path):
    run_dir = _record(str(tmp_path / "run"), EVENTS)
    again = [e for e in replay(run_dir) if not isinstance(e, ev.TaskOutput)]
    assert [(type(e), getattr(e, "task_id", None)) for e in again] == [
        (type(e), e.task_id) for e in EVENTS]
    reports = [e for e in again if isinstance(e, ev.TaskResources)]
    assert [(e.task_id, e.try_number, e.cpu_time, e.peak_rss, e.wall_time) for e in reports] == [
        (0, 1, 1.5, 300 * MiB, 2.0), (1, 1, 0.25, 0, 0.5), (2, 1, 0.5, 80 * MiB, 1.0),
        (2, 2, 0.75, 120 * MiB, 1.5)]


def test_the_frame_has_a_task_s_totals_and_its_largest_peak(tmp_path, monkeypatch):
    run_dir = _record(str(tmp_path / "run"), EVENTS)
    fake = types.ModuleType("pandas")
    fake.DataFrame = lambda records: records  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pandas", fake)
    rows = history(run_dir, as_frame=True)
    got = [(r["id"], r["cpu_time"], r["peak_rss"], r["wall_time"]) for r in rows]
    assert got == [(0, 1.5, 300 * MiB, 2.0), (1, 0.25, None, 0.5),
                   (2, 1.25, 120 * MiB, 2.5), (3, None, None, None)]


def test_a_record_made_before_the_resource_columns_reads_and_gets_them(tmp_path):
    run_dir = _record(str(tmp_path / "run"), EVENTS)
    path = os.path.join(run_dir, DB_NAME)
    conn = sqlite3.connect(path)
    try:
        for table, column, _kind in ADDED_COLUMNS:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.commit()
    finally:
        conn.close()
    fit = history(run_dir)[0]
    assert (fit.tries[0].cpu_time, fit.tries[0].peak_rss, fit.tries[0].wall_time) == (
        None, None, None)
    assert not any(isinstance(e, ev.TaskResources) for e in replay(run_dir))
    conn = connect(path)
    try:
        create(conn)  # what a recorder does when it opens a database
        columns = {r[1] for r in conn.execute("PRAGMA table_info(tries)")}
    finally:
        conn.close()
    assert {column for _t, column, _k in ADDED_COLUMNS} <= columns


# ---------------------------------------------------------------- real executors
def test_the_thread_executor_reports_cpu_and_wall_time_but_no_peak(load_recorded):
    @livedag.python_app
    def spin(seconds):
        import time

        start = time.thread_time()
        while time.thread_time() - start < seconds:
            pass

    dfk = load_recorded()
    spin(0.1).result(timeout=30)
    (task,) = history(finish(dfk))
    (attempt,) = task.tries
    assert attempt.cpu_time is not None and 0.05 < attempt.cpu_time < 2.0
    assert attempt.wall_time is not None and attempt.wall_time >= attempt.cpu_time * 0.9
    assert attempt.peak_rss is None  # threads share the kernel's process: not measured


def test_the_zmq_executor_reports_cpu_time_and_peak_rss(load_recorded):
    from livedag.executors import HighThroughputExecutor
    from livedag.providers import LocalProvider

    @livedag.python_app
    def burn(seconds):
        import time

        start = time.process_time()
        while time.process_time() - start < seconds:
            pass

    @livedag.python_app
    def hold(mib):
        block = bytearray(mib << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1  # touch every page: resident, not only reserved
        return len(block)

    dfk = load_recorded(executors=[HighThroughputExecutor(
        label="htex", max_workers_per_node=1, provider=LocalProvider(init_blocks=1))])
    burn(0.2).result(timeout=60)
    assert hold(100).result(timeout=60) == 100 * MiB
    run_dir = finish(dfk)
    burnt, held = history(run_dir)
    assert burnt.tries[0].cpu_time is not None and burnt.tries[0].cpu_time > 0.05
    assert held.tries[0].peak_rss is not None and held.tries[0].peak_rss > 50 * MiB
    assert burnt.tries[0].wall_time is not None and burnt.tries[0].wall_time >= 0.15
    pytest.importorskip("matplotlib")
    fig = livedag.plot.resources(run_dir)
    cpu_ax, rss_ax = fig.axes[:2]
    assert len(cpu_ax.collections) == len(rss_ax.collections) == 2  # a colour per app


# ---------------------------------------------------------------- the picture
def _points(ax):
    return {c.get_label().split(" (")[0]: len(c.get_offsets()) for c in ax.collections}


def test_resources_draws_a_point_per_try_and_a_colour_per_app(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    run_dir = _record(str(tmp_path / "run"), EVENTS)
    fig = livedag.plot.resources(run_dir)
    assert isinstance(fig, Figure)
    cpu_ax, rss_ax = fig.axes
    assert _points(cpu_ax) == {"fit": 2, "load": 2}
    assert _points(rss_ax) == {"fit": 1, "load": 2}  # task 1's peak was not measured
    colours = {c.get_label(): tuple(c.get_facecolor()[0]) for c in cpu_ax.collections}
    assert len(set(colours.values())) == 2
    fig.savefig(io.BytesIO(), format="png")  # it draws
    by_task = livedag.plot.resources(run_dir, x="task", measure="peak_rss")
    (ax,) = by_task.axes
    offsets = sorted(float(x) for c in ax.collections for x, _y in c.get_offsets())
    assert offsets == [0.0, 2.0, 2.0]


def test_resources_draws_into_the_axes_it_is_given(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    run_dir = _record(str(tmp_path / "run"), EVENTS)
    fig = Figure()
    one, two = fig.subplots(1, 2)
    assert livedag.plot.resources(run_dir, ax=(one, two)) is fig
    assert _points(one) == {"fit": 2, "load": 2} and _points(two) == {"fit": 1, "load": 2}
    sub = Figure().subfigures(1, 2)[1]
    assert livedag.plot.resources(run_dir, ax=sub.add_subplot(), measure="cpu_time") is (
        sub.figure)
    with pytest.raises(ValueError, match="1 Axes for 2 measures; pass measure='cpu_time'"):
        livedag.plot.resources(run_dir, ax=one)
    with pytest.raises(ValueError, match=r"measure='memory'.*expected cpu_time, peak_rss"):
        livedag.plot.resources(run_dir, measure="memory")
    with pytest.raises(ValueError, match=r"x='host'.*expected one of time, task"):
        livedag.plot.resources(run_dir, x="host")


def test_a_record_without_measurements_says_what_would_measure_them(tmp_path, load_recorded):
    pytest.importorskip("matplotlib")
    silent = _record(str(tmp_path / "silent"), _task(0, "fit", 1.0, None))
    cpu_ax, rss_ax = livedag.plot.resources(silent).axes
    assert len(cpu_ax.collections) == len(rss_ax.collections) == 0
    assert "no CPU time in this record" in cpu_ax.texts[0].get_text()
    assert "HighThroughputExecutor" in rss_ax.texts[0].get_text()
    empty = finish(load_recorded())
    for ax in livedag.plot.resources(empty).axes:
        assert ax.texts[0].get_text() == "no task has run in this record"


def test_resources_reads_the_loaded_kernel_s_run_by_default(load_recorded, tmp_path,
                                                             monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # no ./runinfo here: only the loaded kernel's run

    @livedag.python_app
    def nap():
        import time

        time.sleep(0.01)

    dfk = load_recorded(run_dir=str(tmp_path / "elsewhere"))
    nap().result(timeout=10)
    (task,) = history()  # flushed first: the record has every event published so far
    assert task.state is S.EXEC_DONE and task.tries[0].cpu_time is not None
    cpu_ax, _rss_ax = livedag.plot.resources().axes
    assert _points(cpu_ax) == {"nap": 1}
    finish(dfk)  # the kernel is gone: the default is ./runinfo again, which has none
    with pytest.raises(livedag.monitoring.NoRunRecord):
        history()
