"""replay(): the database back into events, folded by the DAG view exactly as the live
events were; a RecordedRun is enough of a kernel for the widget to draw a finished run."""

from __future__ import annotations

import pytest

import livedag
from livedag import events as ev
from livedag.monitoring import ReadOnlyRunError, RecordedRun, replay
from tests.monitoring.conftest import finish

pytest.importorskip("networkx")
pytestmark = pytest.mark.timeout(60)


@livedag.python_app
def load_data(n):
    print("loading", n)
    return list(range(n))


@livedag.python_app
def crash(data):
    import sys

    print("bad row", file=sys.stderr)
    raise IndexError(len(data))


@livedag.python_app
def total(*parts):
    return sum(sum(p) for p in parts)


@livedag.python_app
def plus_one(x):
    return x + 1


def _run_a_small_dag(load_recorded, recorder, tmp_path):
    dfk = load_recorded(retries=1)
    dfk.bus.subscribe(recorder, name="test")
    dfk.task_origin = "cell:c1:1"
    a, b = load_data(3), load_data(4)
    dfk.task_origin = "cell:c2:2"
    bad = crash(a)
    end = total(a, b, bad)
    with pytest.raises(IndexError):
        bad.result(timeout=10)
    with pytest.raises(livedag.errors.DependencyError):
        end.result(timeout=10)
    gate = tmp_path / "gate"

    @livedag.python_app
    def waits(path):
        import os
        import time

        while not os.path.exists(path):
            time.sleep(0.01)

    first = waits(str(gate))
    dfk.cancel(total(first), "changed my mind")
    gate.write_text("")
    first.result(timeout=10)
    return finish(dfk)


def _view(events):
    from livedag.jupyter.graph import Graph

    graph = Graph()
    graph.apply(events)
    return [n.detail_json() for n in graph.nodes.values()], graph.cascades(), graph.summary()


def test_replay_gives_the_view_the_live_events_gave(load_recorded, recorder, tmp_path):
    run_dir = _run_a_small_dag(load_recorded, recorder, tmp_path)
    events = replay(run_dir)
    assert _view(events) == _view(recorder.events)
    kinds = [type(e) for e in events]
    assert kinds[0] is ev.TaskCreated and kinds[-1] is ev.KernelChanged
    assert kinds.count(ev.TaskFailed) == len(recorder.of(ev.TaskFailed)) == 3
    assert kinds.count(ev.TaskCancelled) == 1
    live = [(type(e), getattr(e, "task_id", None)) for e in recorder.events
            if not isinstance(e, ev.TaskOutput)]
    again = [(type(e), getattr(e, "task_id", None)) for e in events
             if not isinstance(e, ev.TaskOutput)]
    assert again == live  # the same events in the same order (output comes as one tail)


def test_a_resubmitted_cascade_replays_to_the_same_view(load_recorded, recorder, tmp_path):
    flag = tmp_path / "fixed"

    @livedag.python_app
    def flaky(path):
        import os

        if not os.path.exists(path):
            raise RuntimeError("not yet")
        return 1

    dfk = load_recorded()
    dfk.bus.subscribe(recorder, name="test")
    root = flaky(str(flag))
    leaves = [plus_one(root), plus_one(root)]
    for f in leaves:
        with pytest.raises(livedag.errors.DependencyError):
            f.result(timeout=10)
    flag.write_text("")
    livedag.resubmit(root)
    assert [f.result(timeout=10) for f in leaves] == [2, 2]
    run_dir = finish(dfk)
    assert _view(replay(run_dir)) == _view(recorder.events)


def test_the_widget_draws_a_recorded_run_read_only(load_recorded, recorder, tmp_path):
    pytest.importorskip("anywidget")
    from livedag.jupyter.widget import DagWidget

    run_dir = _run_a_small_dag(load_recorded, recorder, tmp_path)
    run = RecordedRun(run_dir)
    widget = DagWidget(run, interval=0.02)
    try:
        assert widget.flush(10)
        nodes = [n.detail_json() for n in widget.settled().nodes.values()]
        assert nodes == _view(recorder.events)[0]
        assert "failed" in widget.get_state()["snapshot"]["legend"]
        with pytest.raises(ReadOnlyRunError, match="recorded run \\(read-only\\)"):
            widget._run_command({"type": "resubmit", "id": 2})
    finally:
        widget.close()
