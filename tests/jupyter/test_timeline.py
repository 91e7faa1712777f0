"""The timeline view model, pure: events in, lanes of bars and bounded diffs out."""

from __future__ import annotations

import os
import types

import pytest

from livedag import events as ev
from livedag.jupyter.timeline import MAX_SLOTS, Timeline
from livedag.task import TaskState

S = TaskState


def created(tid, app="f"):
    return ev.TaskCreated(0.5, tid, app, "python", "local", (), None)


def state(tid, st, t, try_number=1, *, pid=100, host="h"):
    return ev.TaskStateChanged(t, tid, st, try_number, host, pid, "0")


def ran(tid, start, end, *, pid=100, final=S.EXEC_DONE):
    return [state(tid, S.LAUNCHED, start - 0.1, pid=pid), state(tid, S.RUNNING, start, pid=pid),
            state(tid, final, end, pid=pid)]


def bars(diff):
    return {b["key"]: b for b in diff["bars"]}


def test_a_bar_per_try_from_running_to_its_end_in_its_workers_lane():
    tl = Timeline()
    tl.apply([created(0, "load"), created(1), *ran(0, 1.0, 2.0), *ran(1, 1.5, 3.0, pid=200,
                                                                       final=S.FAILED)])
    d = tl.diff(now=5.0)
    b = bars(d)
    assert b["0.1"] == {"key": "0.1", "task": 0, "try": 1, "app": "load", "lane": "h:100",
                        "slot": 0, "start": 1.0, "end": 2.0, "state": "done"}
    assert (b["1.1"]["lane"], b["1.1"]["state"]) == ("h:200", "failed")
    assert [(lane["key"], lane["runs"], lane["block"]) for lane in d["lanes"]] == [
        ("h:100", 1, "0"), ("h:200", 1, "0")]
    assert d["now"] == 5.0 and not d["more"] and d["gone"] == []
    assert not tl.dirty and tl.diff(now=6.0)["bars"] == []


def test_running_bars_are_open_until_the_try_ends_and_a_retry_is_a_new_bar():
    tl = Timeline()
    tl.apply([created(0), state(0, S.LAUNCHED, 0.9), state(0, S.RUNNING, 1.0)])
    assert bars(tl.diff(now=2.0))["0.1"]["end"] is None
    # A failure that will be retried ends the try; the retry runs as try 2.
    tl.apply([ev.TaskFailed(2.5, 0, 1, S.FAILED, "OSError", "disk", "tb", (), True),
              state(0, S.PENDING, 2.5), state(0, S.LAUNCHED, 2.6, 2), state(0, S.RUNNING, 3.0, 2),
              state(0, S.EXEC_DONE, 4.0, 2)])
    b = bars(tl.diff(now=5.0))
    assert (b["0.1"]["state"], b["0.1"]["end"]) == ("failed", 2.5)
    assert (b["0.2"]["state"], b["0.2"]["start"], b["0.2"]["end"]) == ("done", 3.0, 4.0)
    # Only a try that ran makes a bar: memo hits, dependency failures, cancels don't.
    tl.apply([created(1), state(1, S.MEMO_DONE, 6.0), created(2), state(2, S.DEP_FAIL, 6.0),
              created(3), ev.TaskCancelled(6.0, 3, "by the user"), state(3, S.CANCELLED, 6.0)])
    assert not tl.dirty


def test_overlapping_bars_of_one_process_go_to_slots_that_are_reused():
    tl = Timeline()
    events = [created(i) for i in range(4)]
    events += [state(0, S.RUNNING, 1.0), state(1, S.RUNNING, 1.2), state(0, S.EXEC_DONE, 2.0),
               state(2, S.RUNNING, 2.5), state(1, S.EXEC_DONE, 3.0), state(2, S.EXEC_DONE, 3.5),
               state(3, S.RUNNING, 4.0)]
    tl.apply(events)
    d = tl.diff(now=5.0)
    assert {k: b["slot"] for k, b in bars(d).items()} == {"0.1": 0, "1.1": 1, "2.1": 0, "3.1": 0}
    assert d["lanes"][0]["slots"] == 2
    # Clocks that disagree could make every bar overlap: a lane stays MAX_SLOTS tall.
    tl.apply([created(i) for i in range(10, 60)])
    tl.apply([state(i, S.RUNNING, 10.0) for i in range(10, 60)])
    assert tl.lanes["h:100"].to_json()["slots"] == MAX_SLOTS


def test_a_bar_is_as_long_as_the_worker_measured_and_moves_up_when_it_ends():
    # One report told the kernel that both started; the worker ran them one after the
    # other (wall times): the bars end up in one row, each as long as it ran.
    tl = Timeline()
    tl.apply([created(0), created(1), state(0, S.RUNNING, 1.0), state(1, S.RUNNING, 1.0)])
    assert {k: b["slot"] for k, b in bars(tl.diff(now=1.1)).items()} == {"0.1": 0, "1.1": 1}
    tl.apply([ev.TaskResources(1.5, 0, 1, 0.1, 0, 0.2), state(0, S.EXEC_DONE, 1.5),
              ev.TaskResources(1.9, 1, 1, 0.1, 0, 0.3), state(1, S.EXEC_DONE, 1.9)])
    b = bars(tl.diff(now=2.0))
    assert (b["0.1"]["start"], b["0.1"]["end"], b["0.1"]["slot"]) == pytest.approx((1.3, 1.5, 0))
    assert (b["1.1"]["start"], b["1.1"]["end"], b["1.1"]["slot"]) == pytest.approx((1.6, 1.9, 0))
    # The next one starts in the first free row again.
    tl.apply([created(2), state(2, S.RUNNING, 2.0)])
    assert bars(tl.diff(now=2.1))["2.1"]["slot"] == 0


def test_a_lane_keeps_its_newest_bars_and_says_how_many_it_ran():
    tl = Timeline(bars_per_lane=3)
    tl.apply([created(i) for i in range(6)])
    tl.apply([e for i in range(2) for e in ran(i, i, i + 0.5)])
    tl.diff(now=9.0)  # the page has bars 0 and 1
    tl.apply([created(9), state(9, S.RUNNING, 0.0)])  # still running: never dropped
    tl.apply([e for i in range(2, 6) for e in ran(i, i, i + 0.5)])
    d = tl.diff(now=9.0)
    assert d["gone"] == ["0.1", "1.1"]  # what the page had and must drop
    kept = list(tl.lanes["h:100"].bars)
    assert len(kept) == 3 and kept[0] == "9.1"
    assert set(bars(d)) == {"9.1", "4.1", "5.1"}  # 2.1 and 3.1 came and went unseen
    assert d["lanes"][0]["runs"] == 7 and d["bars_per_lane"] == 3


def test_diffs_are_bounded_and_the_snapshot_has_everything():
    tl = Timeline(diff_bars=10)
    tl.apply([created(i) for i in range(25)])
    tl.apply([e for i in range(25) for e in ran(i, i, i + 0.5, pid=i % 2)])
    sizes = []
    while True:
        d = tl.diff(now=30.0)
        sizes.append(len(d["bars"]))
        if not d["more"]:
            break
    assert sizes == [10, 10, 5]
    snap = tl.snapshot(now=30.0)
    assert snap["reset"] and len(snap["bars"]) == 25 and len(snap["lanes"]) == 2


def test_seeded_from_the_tries_of_task_records():
    tries = [types.SimpleNamespace(number=1, executor="local", started=1.0, ended=2.0,
                                   host="h", pid=5, block_id="0", outcome="failed"),
             types.SimpleNamespace(number=2, executor="local", started=3.0, ended=None,
                                   host="h", pid=5, block_id="0", outcome="")]
    never_ran = types.SimpleNamespace(number=1, executor="local", started=None, ended=None,
                                      host="", pid=None, block_id=None, outcome="")
    records = [types.SimpleNamespace(id=0, app_name="fit", tries=tries),
               types.SimpleNamespace(id=1, app_name="wait", tries=[never_ran])]
    tl = Timeline()
    tl.seed(records)
    b = bars(tl.diff(now=4.0))
    assert set(b) == {"0.1", "0.2"}
    assert (b["0.1"]["state"], b["0.2"]["state"], b["0.2"]["app"]) == ("failed", "running", "fit")
    # The event of the running try, delivered after the seed, does not open a second bar.
    tl.apply([ev.TaskStateChanged(3.0, 0, S.RUNNING, 2, "h", 5), state(0, S.EXEC_DONE, 5.0, 2,
                                                                       pid=5)])
    assert bars(tl.diff(now=6.0))["0.2"] == {**b["0.2"], "end": 5.0, "state": "done"}


def test_a_thread_executor_lane_is_the_kernel_process(tmp_path):
    import livedag
    from livedag import Config, ThreadPoolExecutor

    dfk = livedag.DataFlowKernel(Config(executors=[ThreadPoolExecutor(label="threads")],
                                        run_dir=str(tmp_path), initialize_logging=False))
    tl = Timeline()
    sub = dfk.bus.subscribe(tl.apply, name="timeline-test")
    try:
        @livedag.python_app(data_flow_kernel=dfk)
        def inc(x):
            return x + 1

        assert [inc(i).result(timeout=10) for i in range(3)] == [1, 2, 3]
        assert sub.flush(10)
    finally:
        sub.close()
        dfk.cleanup()


    d = tl.diff(now=0.0)
    assert {b["state"] for b in d["bars"]} == {"done"} and len(d["bars"]) == 3
    assert [lane["pid"] for lane in d["lanes"]] == [os.getpid()]
    assert all(b["end"] >= b["start"] > 0 for b in d["bars"])
