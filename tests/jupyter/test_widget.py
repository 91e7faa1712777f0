"""The widget outside a browser: real kernel (DataFlowKernel), real anywidget, the dummy
comm ipywidgets uses without a Jupyter kernel. The browser side is in tests/browser."""

from __future__ import annotations

import pytest

import livedag
from livedag import Config, ThreadPoolExecutor

pytest.importorskip("anywidget")
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def dfk(tmp_path):
    k = livedag.DataFlowKernel(Config(executors=[ThreadPoolExecutor(label="threads")],
                                      run_dir=str(tmp_path), initialize_logging=False))
    try:
        yield k
    finally:
        k.cleanup()


@pytest.fixture
def widget(dfk):
    from livedag.jupyter.widget import DagWidget

    w = DagWidget(dfk, interval=0.02)
    try:
        yield w
    finally:
        w.close()


def test_assets_are_found():
    from livedag.jupyter.widget import DagWidget

    assert "export default" in str(DagWidget._esm)
    assert ".livedag-dag" in str(DagWidget._css)


def test_diffs_reach_synced_state(dfk, widget):
    @livedag.python_app(data_flow_kernel=dfk)
    def inc(x):
        return x + 1

    futures = [inc(i) for i in range(20)]
    assert [f.result(timeout=10) for f in futures] == list(range(1, 21))
    assert widget.flush(10)
    assert widget.diff["legend"] == {"done": 20}
    state = widget.get_state()
    snap = state["snapshot"]
    assert len(snap["nodes"]) == 20 and snap["rev"] == widget.graph.rev
    # The timeline: a bar per task, in the kernel's own lane (threads), ended "done".
    bars = snap["timeline"]["bars"]
    assert len(bars) == 20 and {b["state"] for b in bars} == {"done"}
    assert {b["lane"] for b in bars} == {lane["key"] for lane in snap["timeline"]["lanes"]}
    assert state["_model_module_version"] == "*"
    # A partial state (what a diff sends) does not recompute the snapshot.
    assert "snapshot" not in widget.get_state("diff")


def test_tasks_made_before_the_widget_are_seeded(dfk):
    from livedag.jupyter.widget import DagWidget

    @livedag.python_app(data_flow_kernel=dfk)
    def boom():
        raise ValueError("early")

    f = boom()
    with pytest.raises(ValueError):
        f.result(timeout=10)
    w = DagWidget(dfk, interval=0.02)
    try:
        assert w.settled().nodes[f.tid].state == "failed"
    finally:
        w.close()


def test_commands_from_the_browser_run_on_the_engine(dfk, widget):
    import threading

    gate = threading.Event()

    @livedag.python_app(data_flow_kernel=dfk)
    def wait():
        gate.wait(10)

    @livedag.python_app(data_flow_kernel=dfk)
    def flaky(x):
        if not gate.is_set():
            raise RuntimeError("not yet")
        return x

    acks: dict[str, dict] = {}
    widget.observe(lambda change: acks.update(
        {a["cmd"]: a for a in change["new"].get("acks", [])}), names="diff")
    bad = flaky(1)
    with pytest.raises(RuntimeError):
        bad.result(timeout=10)
    blocker = wait()
    pending = flaky(blocker)
    widget._on_frontend_msg(widget, {"type": "cancel", "id": pending.tid, "cmd": "c1"}, [])
    assert widget.flush(10)
    assert pending.cancelled()
    gate.set()
    widget._on_frontend_msg(widget, {"type": "resubmit_failed", "cmd": "c2"}, [])
    widget._on_frontend_msg(widget, {"type": "resubmit", "id": 999, "cmd": "c3"}, [])
    assert widget.flush(10)
    assert bad.result(timeout=10) == 1
    assert widget.flush(10)
    assert acks["c1"]["ok"] and acks["c1"]["text"] == f"task {pending.tid} cancelled"
    assert acks["c2"]["ok"] and acks["c2"]["text"] == "resubmitted 1 failed task"
    assert not acks["c3"]["ok"] and "999" in acks["c3"]["text"]


def test_drill_into_a_box_of_the_aggregated_view(dfk):
    from livedag.jupyter.widget import DagWidget

    @livedag.python_app(data_flow_kernel=dfk)
    def inc(x):
        return x + 1

    w = DagWidget(dfk, interval=0.02, aggregate_above=5)
    try:
        acks: dict[str, dict] = {}
        w.observe(lambda change: acks.update(
            {a["cmd"]: a for a in change["new"].get("acks", [])}), names="diff")
        futures = [inc(i) for i in range(8)]
        for f in futures:
            f.result(timeout=10)
        assert w.flush(10)
        (box,) = w.get_state()["snapshot"]["agg"]
        key = box["key"]
        w._on_frontend_msg(w, {"type": "drill", "key": key, "cmd": "d1"}, [])
        assert w.flush(10)
        assert acks["d1"]["ok"], acks
        assert acks["d1"]["text"] == "showing the newest 5 of 8 tasks of inc · (outside a cell)"
        assert w.get_state()["snapshot"]["focus"]["shown"] == 5
        w._on_frontend_msg(w, {"type": "drill", "key": None, "cmd": "d2"}, [])
        w._on_frontend_msg(w, {"type": "drill", "key": "nope", "cmd": "d3"}, [])
        assert w.flush(10)
        assert acks["d2"]["text"] == "overview"
        assert not acks["d3"]["ok"] and "nope" in acks["d3"]["text"]
    finally:
        w.close()


def test_bundle_has_png_and_text_beside_the_view(dfk, widget):
    bundle = widget._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("livedag: 0 tasks")
    assert bundle["image/png"].startswith("iVBOR")


def test_close_unsubscribes(dfk, widget):
    widget.close()
    assert not dfk.bus.active


def test_a_busy_round_folds_within_its_budget_and_the_rest_waits(dfk):
    from livedag import events as ev
    from livedag.jupyter.widget import DagWidget

    w = DagWidget(dfk, interval=0.02)
    try:
        with w._lock:  # the pusher waits: this test folds by hand
            w._on_events([ev.TaskCreated(0.0, 10_000 + i, "a", "python", "threads", (), None)
                          for i in range(1000)])
            assert w._fold(budget=0.0) is False  # one chunk, then the budget is spent
            assert 0 < len(w.graph.nodes) < 1000
            assert w._fold() is True
            assert len(w.graph.nodes) == 1000
    finally:
        w.close()


def test_a_view_that_fell_behind_catches_up_once_tasks_stop(dfk):
    import time

    from livedag.jupyter.widget import DagWidget

    w = DagWidget(dfk, interval=0.02)
    w.fold_budget = 0.0  # a busy round folds one chunk of events: the view falls behind
    try:
        @livedag.python_app(data_flow_kernel=dfk)
        def noop():
            return None

        futures = [noop() for _ in range(3000)]
        for f in futures:
            f.result(timeout=30)
        # No flush(): the pusher sees no new events, folds the rest and sends it.
        deadline = time.monotonic() + 20
        while w.diff.get("legend", {}).get("done") != 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.diff["legend"] == {"done": 3000}
    finally:
        w.close()


def test_cancel_on_the_zmq_executor_withdraws_a_waiting_task_and_explains_a_held_one(tmp_path):
    """Cancel from the widget on the ZMQ executor: a task still in the interchange is
    withdrawn and the executor carries on; one a worker pool already holds (prefetched)
    cannot be, and the widget says why."""
    import time

    from livedag.executors.htex import HighThroughputExecutor
    from livedag.jupyter.widget import DagWidget
    from livedag.providers import LocalProvider

    k = livedag.DataFlowKernel(Config(
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=1,
                                          prefetch_capacity=1, provider=LocalProvider())],
        run_dir=str(tmp_path / "runinfo"), initialize_logging=False))
    w = DagWidget(k, interval=0.02)
    try:
        @livedag.python_app(data_flow_kernel=k)
        def wait_for(path, x):
            import os
            import time

            while not os.path.exists(path):
                time.sleep(0.02)
            return x

        release = str(tmp_path / "release")
        running = wait_for(release, 0)
        held = wait_for(release, 1)  # prefetched: the pool's one extra slot
        waiting = wait_for(release, 2)  # in the interchange
        deadline = time.monotonic() + 30
        while running.task_status() != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        acks: dict[str, dict] = {}
        w.observe(lambda change: acks.update(
            {a["cmd"]: a for a in change["new"].get("acks", [])}), names="diff")
        w._on_frontend_msg(w, {"type": "cancel", "id": waiting.tid, "cmd": "c1"}, [])
        w._on_frontend_msg(w, {"type": "cancel", "id": held.tid, "cmd": "c2"}, [])
        assert w.flush(10)
        assert waiting.cancelled()
        open(release, "w").close()
        assert [running.result(timeout=30), held.result(timeout=30)] == [0, 1]
        assert w.flush(10)
        assert acks["c1"]["ok"] and acks["c1"]["text"] == f"task {waiting.tid} cancelled"
        assert acks["c2"]["text"] == (f"task {held.tid} is already with a worker pool, about "
                                      "to start: it cannot be cancelled")
    finally:
        w.close()
        k.cleanup()
