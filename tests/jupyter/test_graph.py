"""The view model, pure: events in, nodes / edges / groups / diffs out."""

from __future__ import annotations

import pytest

from livedag import events as ev
from livedag.jupyter.graph import Graph, make_origin, parse_origin, seed_events
from livedag.task import TaskState

S = TaskState
C1 = make_origin("cell-a", 1)


def created(tid, deps=(), *, app="f", origin=C1, args=""):
    return ev.TaskCreated(1.0, tid, app, "python", "threads", tuple(deps), origin, args)


def state(tid, st, try_number=1, **kw):
    return ev.TaskStateChanged(2.0, tid, st, try_number, **kw)


def failed(tid, exc_type="KeyError", message="'x'", *, st=S.FAILED, roots=(), retry=False):
    return ev.TaskFailed(3.0, tid, 1, st, exc_type, message, f"Traceback...\n{exc_type}",
                         tuple(roots), retry)


def run_ok(tid):
    return [state(tid, S.LAUNCHED), state(tid, S.RUNNING, host="h", pid=7), state(tid, S.EXEC_DONE)]


def test_origin_round_trip():
    assert parse_origin(make_origin("abc", 4)) == ("abc", 4, "In [4]")
    assert parse_origin(None)[0] == "(outside a cell)"
    assert parse_origin("my tag") == ("my tag", 0, "my tag")


def test_nodes_states_and_details():
    g = Graph()
    g.apply([created(0, args="1, 2"), *run_ok(0), created(1, [0])])
    n0, n1 = g.nodes[0], g.nodes[1]
    assert n0.state == "done" and n0.host == "h" and n0.pid == 7
    assert [t.number for t in n0.tries] == [1] and n0.tries[0].outcome == "done"
    assert n0.tries[0].started is not None and n0.tries[0].ended is not None
    assert n1.state == "pending" and n1.deps == (0,)
    assert g.edges == [(0, 1)]
    assert (n0.layer, n1.layer) == (0, 1)
    detail = n0.detail_json()
    assert detail["args"] == "1, 2" and detail["cell"] == "In [1]"


def test_memo_hit_is_cached_and_joining_is_running():
    g = Graph()
    g.apply([created(0), state(0, S.MEMO_DONE), created(1), state(1, S.LAUNCHED),
             state(1, S.RUNNING), state(1, S.JOINING)])
    assert g.nodes[0].state == "cached"
    assert g.nodes[1].state == "running"


def test_output_tails_are_bounded_and_reset_per_try():
    g = Graph()
    g.apply([created(0), state(0, S.LAUNCHED)])
    g.apply([ev.TaskOutput(1, 0, 1, "stdout", "x" * 1000) for _ in range(20)])
    g.apply([ev.TaskOutput(1, 0, 1, "stderr", "warn\n")])
    node = g.nodes[0]
    assert len(node.stdout) < 4100 and node.stdout.startswith("[...]")
    assert node.stderr == "warn\n"
    g.apply([state(0, S.PENDING), state(0, S.LAUNCHED, 2)])
    assert node.stdout == "" and [t.number for t in node.tries] == [1, 2]


def test_failure_keeps_traceback_and_retry_timeline():
    g = Graph()
    g.apply([created(0), state(0, S.LAUNCHED), failed(0, retry=True), state(0, S.PENDING),
             state(0, S.LAUNCHED, 2), state(0, S.FAILED, 2),
             ev.TaskFailed(3, 0, 2, S.FAILED, "ValueError", "bad", "Traceback\nValueError")])
    node = g.nodes[0]
    assert node.state == "failed" and node.exc_type == "ValueError"
    assert "ValueError" in node.traceback
    assert [(t.number, t.outcome) for t in node.tries] == [(1, "failed (retrying)"), (2, "failed")]
    assert g.failed_ids() == [0]


def test_a_try_given_back_before_it_ran_leaves_no_try_behind():
    # Launched ahead of its input (forwarded results), given back when the input failed,
    # launched again after the input's retry: one try, not two.
    g = Graph()
    g.apply([created(0), created(1, [0]), state(0, S.LAUNCHED), state(1, S.LAUNCHED),
             state(1, S.PENDING, 0)])
    assert g.nodes[1].state == "pending" and g.nodes[1].tries == []
    g.apply([state(1, S.LAUNCHED), state(1, S.RUNNING), state(1, S.EXEC_DONE)])
    assert [(t.number, t.outcome) for t in g.nodes[1].tries] == [(1, "done")]


def test_each_try_carries_its_cpu_time_and_peak_memory_into_the_detail():
    g = Graph()
    g.apply([created(0), state(0, S.LAUNCHED), state(0, S.RUNNING),
             ev.TaskResources(2.5, 0, 1, 0.21, 118 << 20, 0.3), failed(0, retry=True),
             state(0, S.PENDING), state(0, S.LAUNCHED, 2), state(0, S.RUNNING, 2),
             ev.TaskResources(3.5, 0, 2, 0.05, 0, 0.1),  # 0: the executor cannot tell
             state(0, S.EXEC_DONE, 2)])
    g.apply([ev.TaskResources(4.0, 9, 1, 1.0, 1, 1.0)])  # an unknown task: ignored
    tries = g.diff()["nodes"][0]["tries"]
    assert [(t["number"], t["cpu_time"], t["peak_rss"]) for t in tries] == [
        (1, 0.21, 118 << 20), (2, 0.05, None)]
    g.apply([created(1), state(1, S.LAUNCHED), state(1, S.RUNNING), state(1, S.EXEC_DONE)])
    (t1,) = g.nodes[1].detail_json()["tries"]
    assert t1["cpu_time"] is None and t1["peak_rss"] is None  # never reported


def test_cascade_folds_into_root_with_count_and_unfolds_on_resubmit():
    g = Graph()
    events = [created(0), state(0, S.LAUNCHED), state(0, S.FAILED), failed(0)]
    for tid in range(1, 43):
        events += [created(tid, [tid - 1]), state(tid, S.DEP_FAIL),
                   failed(tid, "DependencyError", "...", st=S.DEP_FAIL, roots=[0])]
    g.apply(events)
    assert len(g.nodes[0].blocked) == 42
    assert all(g.nodes[t].folded_into == 0 for t in range(1, 43))
    assert g.cascades()[0]["text"] == "42 tasks blocked by task 0 'f': KeyError: 'x'"
    assert g.legend() == {"failed": 1, "dep_fail": 42}
    g.diff()
    g.apply([state(0, S.PENDING)] + [state(t, S.PENDING) for t in range(1, 43)]
            + [ev.TaskResubmitted(4, 0, 2, tuple(range(1, 43)), True)])
    assert g.nodes[0].blocked == set() and g.nodes[5].folded_into is None
    assert g.legend() == {"pending": 43}
    d = g.diff()
    assert d["cascades"] == []
    assert {n["id"] for n in d["nodes"]} == set(range(43))


def test_layout_is_layered_and_stable_when_cells_add_tasks():
    g = Graph()
    g.apply([created(i) for i in range(5)] + [created(5, range(5))])
    before = {t: (n.layer, n.row) for t, n in g.nodes.items()}
    assert {n.layer for t, n in g.nodes.items() if t < 5} == {0}
    assert len({n.row for t, n in g.nodes.items() if t < 5}) == 5
    assert g.nodes[5].layer == 1
    c2 = make_origin("cell-b", 2)
    g.apply([created(6, [5], origin=c2), created(7, [6], origin=c2), created(8, origin=c2)])
    assert {t: (n.layer, n.row) for t, n in g.nodes.items() if t in before} == before
    assert (g.nodes[6].layer, g.nodes[7].layer) == (2, 3)
    # The second cell's band starts below the first one's rows.
    assert min(g.nodes[t].row for t in (6, 7, 8)) > max(r for _, r in before.values())
    positions = [(n.layer, n.row) for n in g.nodes.values()]
    assert len(positions) == len(set(positions))
    assert [gr.label for gr in g.groups.values()] == ["In [1]", "In [2]"]


def test_chains_stay_on_one_row():
    g = Graph()
    g.apply([created(0), created(1), created(2, [0]), created(3, [1]), created(4, [2])])
    assert g.nodes[2].row == g.nodes[0].row == g.nodes[4].row
    assert g.nodes[3].row == g.nodes[1].row


def test_rerun_cell_supersedes_earlier_tasks():
    g = Graph()
    g.apply([created(0), *run_ok(0), created(1)])
    g.apply([created(2, origin=make_origin("cell-a", 3))])
    assert g.nodes[0].superseded and g.nodes[1].superseded and not g.nodes[2].superseded
    assert g.nodes[0].view_state == "superseded"
    assert g.legend() == {"pending": 1, "superseded": 2}
    assert g.groups[C1].superseded
    # The extension says so even before the new run makes a task.
    g.cell_started(make_origin("cell-a", 4))
    assert g.nodes[2].superseded


def test_diff_is_bounded_and_incremental():
    g = Graph(diff_nodes=100)
    g.apply([created(i) for i in range(250)])
    sizes = []
    while True:
        d = g.diff()
        sizes.append(len(d["nodes"]))
        if not d["more"]:
            break
    assert sizes == [100, 100, 50]
    assert g.diff()["nodes"] == []
    g.apply(run_ok(3))
    d = g.diff()
    assert [n["id"] for n in d["nodes"]] == [3] and d["nodes"][0]["state"] == "done"
    assert d["legend"] == {"pending": 249, "done": 1}
    assert d["rev"] > 1


def test_snapshot_has_the_whole_view():
    g = Graph()
    g.apply([created(i) for i in range(10)])
    g.diff()
    snap = g.snapshot()
    assert len(snap["nodes"]) == 10 and snap["mode"] == "nodes" and snap["rev"] == g.rev


def test_aggregated_view_above_threshold():
    g = Graph(aggregate_above=100)
    events = [created(i, app="a") for i in range(80)]
    events += [created(100 + i, [i], app="b") for i in range(80)]
    g.apply(events)
    assert g.aggregated
    g.apply([state(100, S.LAUNCHED), state(100, S.FAILED), failed(100)])
    g.apply(run_ok(5))
    d = g.diff()
    assert d["reset"] and d["mode"] == "aggregate"
    by_app = {a["app"]: a for a in d["agg"]}
    assert by_app["a"]["counts"] == {"pending": 79, "done": 1}
    assert by_app["b"]["counts"] == {"pending": 79, "failed": 1}
    assert by_app["b"]["failed"] == [100]
    assert (by_app["a"]["layer"], by_app["b"]["layer"]) == (0, 1)
    assert by_app["b"]["deps"] == [by_app["a"]["key"]]
    # Only failures travel one by one: the diff stays small.
    assert [n["id"] for n in d["nodes"]] == [100]
    g.apply(run_ok(6))
    d2 = g.diff()
    assert d2["nodes"] == [] and len(d2["agg"]) == 1
    assert d2["agg"][0]["counts"]["done"] == 2


def test_drilling_into_a_box_sends_its_newest_tasks_and_keeps_them_current():
    g = Graph(aggregate_above=100)
    g.apply([created(i, app="a") for i in range(150)] + [created(200, [0], app="b")])
    g.apply([state(7, S.LAUNCHED), state(7, S.FAILED), failed(7)])
    g.diff()
    key_a = next(a.key for a in g._agg.values() if a.app == "a")
    g.focus_on(key_a)
    d = g.diff()
    # The newest 100 of box a (the cap is aggregate_above), and the failure sent anyway.
    assert d["focus"] == {"key": key_a, "app": "a", "label": "In [1]", "shown": 100,
                          "total": 150}
    assert sorted(n["id"] for n in d["nodes"]) == list(range(50, 150))
    # Kept current: a state change of a shown task travels, one of another box does not.
    g.apply(run_ok(120) + run_ok(200) + run_ok(10))
    d = g.diff()
    assert [n["id"] for n in d["nodes"]] == [120] and "focus" not in d
    # A page that reloads gets the focus and its tasks in the snapshot.
    snap = g.snapshot()
    assert snap["focus"]["key"] == key_a
    assert {n["id"] for n in snap["nodes"]} == {7, *range(50, 150)}
    # Back to the overview: counts only again.
    g.focus_on(None)
    d = g.diff()
    assert d["focus"] is None and d["nodes"] == []
    g.apply(run_ok(121))
    assert g.diff()["nodes"] == []
    with pytest.raises(KeyError):
        g.focus_on("no such box")


def test_a_new_task_of_the_box_drilled_into_is_shown_up_to_the_cap():
    g = Graph(aggregate_above=10)
    g.apply([created(i, app="a") for i in range(11)] + [created(11, app="b")])
    g.focus_on(next(a.key for a in g._agg.values() if a.app == "b"))
    assert [n["id"] for n in g.diff()["nodes"]] == [11]
    g.apply([created(12, app="b")] + [created(i, app="b") for i in range(13, 30)])
    d = g.diff()
    assert [n["id"] for n in d["nodes"]] == list(range(12, 21))  # 10 shown at most
    assert g.focus_json()["shown"] == 10 and g.focus_json()["total"] == 19


def test_a_task_selected_in_the_aggregated_view_is_sent_with_its_details():
    g = Graph(aggregate_above=10)
    g.apply([created(i) for i in range(20)] + run_ok(3))
    g.diff()
    g.pin(3)
    (sent,) = g.diff()["nodes"]
    assert sent["id"] == 3 and sent["host"] == "h" and sent["tries"]
    g.apply([state(3, S.PENDING), state(3, S.LAUNCHED, 2)])  # kept current, like a failure
    assert [n["id"] for n in g.diff()["nodes"]] == [3]
    assert 3 in {n["id"] for n in g.snapshot()["nodes"]}
    for tid in range(4, 20):  # only the newest 12 stay pinned: 8 to 19
        g.pin(tid, keep=12)
    g.diff()
    g.apply(run_ok(9) + run_ok(7) + run_ok(3))
    assert [n["id"] for n in g.diff()["nodes"]] == [9]
    with pytest.raises(KeyError):
        g.pin(99)


def test_relayout_uses_topological_generations():
    g = Graph()
    g.apply([created(0), created(1), created(2, [0, 1]), created(3, [2])])
    assert g.relayout() == {0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (2, 0)}


def test_summary_names_failures_and_cascades():
    g = Graph()
    g.apply([created(0, app="load"), state(0, S.LAUNCHED), state(0, S.FAILED), failed(0),
             created(1, [0]), state(1, S.DEP_FAIL),
             failed(1, "DependencyError", "", st=S.DEP_FAIL, roots=[0])])
    text = g.summary()
    assert "2 tasks (1 failed, 1 dep_fail)" in text
    assert "task 0 'load' failed: KeyError: 'x'" in text
    assert "1 task blocked by task 0 'load'" in text


def test_unknown_task_events_are_ignored():
    g = Graph()
    g.apply([state(9, S.RUNNING), ev.TaskOutput(1, 9, 1, "stdout", "x"), failed(9),
             ev.TaskCancelled(1, 9, "r"), ev.BlockChanged(1, "x", "0", "running")])
    assert g.nodes == {}


@pytest.mark.timeout(30)
def test_real_engine_events(tmp_path):
    """The same fold on the stream of a real kernel (thread executor)."""
    import livedag
    from livedag import Config, ThreadPoolExecutor

    dfk = livedag.DataFlowKernel(Config(executors=[ThreadPoolExecutor(label="threads")],
                                        run_dir=str(tmp_path), initialize_logging=False))
    g = Graph()
    sub = dfk.bus.subscribe(g.apply, name="graph")
    try:
        dfk.task_origin = C1

        @livedag.python_app(data_flow_kernel=dfk)
        def boom(x):
            print("about to fail", x)
            raise KeyError(x)

        @livedag.python_app(data_flow_kernel=dfk)
        def inc(x):
            return x + 1

        a = boom(1, )
        b = inc(a)
        c = inc(b)
        ok = inc(1)
        for f in (a, b, c):
            with pytest.raises(Exception):
                f.result(timeout=10)
        assert ok.result(timeout=10) == 2
        sub.flush(5)
        root = g.nodes[a.tid]
        assert root.state == "failed" and root.exc_type == "KeyError"
        assert "about to fail 1" in root.stdout and "KeyError" in root.traceback
        assert root.blocked == {b.tid, c.tid}
        assert g.nodes[c.tid].root_cause_ids == (a.tid,)
        assert g.nodes[ok.tid].state == "done"
        assert g.edges == [(a.tid, b.tid), (b.tid, c.tid)]
    finally:
        sub.close()
        dfk.cleanup()


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


@pytest.mark.parametrize(("error", "message"), [
    (ValueError("no"), "no"),
    # A widget shown after such a failure must still draw it (str() raises).
    (_Unprintable(), "<str() of this _Unprintable raised RuntimeError>"),
], ids=["plain", "unprintable"])
def test_seed_events_from_records(tmp_path, error, message):
    import livedag
    from livedag import Config, ThreadPoolExecutor

    dfk = livedag.DataFlowKernel(Config(executors=[ThreadPoolExecutor(label="threads")],
                                        run_dir=str(tmp_path), initialize_logging=False))
    try:
        @livedag.python_app(data_flow_kernel=dfk)
        def boom():
            raise error

        a = boom()
        with pytest.raises(type(error)):
            a.result(timeout=10)
        g = Graph()
        g.apply(seed_events(dfk.tasks.values()))
        node = g.nodes[a.tid]
        assert node.state == "failed" and node.exc_type == type(error).__name__
        assert node.message == message
    finally:
        dfk.cleanup()


def test_a_view_opened_later_shows_the_arguments_of_finished_tasks(tmp_path):
    """A finished task lets go of its arguments; the summary made for the views that
    listened when it was created stays on its record for the ones opened later."""
    import livedag
    from livedag import Config, ThreadPoolExecutor

    dfk = livedag.DataFlowKernel(Config(executors=[ThreadPoolExecutor(label="threads")],
                                        run_dir=str(tmp_path), initialize_logging=False,
                                        garbage_collect=False))
    try:
        dfk.bus.subscribe(lambda batch: None)  # e.g. the run record, or a first view

        @livedag.python_app(data_flow_kernel=dfk)
        def echo(x, label="a"):
            return x

        fut = echo(41, label="b")
        assert fut.result(timeout=10) == 41
        assert dfk.tasks[fut.tid].args == ()
        g = Graph()
        g.apply(seed_events(dfk.tasks.values()))
        assert g.nodes[fut.tid].args == "41, label='b'"
    finally:
        dfk.cleanup()


def test_incremental_layers_are_networkx_topological_generations():
    import random

    import networkx as nx

    rng = random.Random(7)
    g = Graph()
    events = []
    for tid in range(300):
        deps = rng.sample(range(tid), k=min(tid, rng.randint(0, 3)))
        origin = make_origin(f"cell-{tid // 60}", tid // 60 + 1)
        events.append(created(tid, deps, origin=origin))
    g.apply(events)
    expected = {t: layer for layer, gen in enumerate(nx.topological_generations(g.dag))
                for t in gen}
    assert {t: n.layer for t, n in g.nodes.items()} == expected
    positions = [(n.layer, n.row) for n in g.nodes.values()]
    assert len(positions) == len(set(positions))


def test_a_try_sends_every_field_to_the_panel():
    """Try.to_json is written out by hand (asdict deep-copies): a field added to Try must
    reach the detail panel too."""
    import dataclasses

    from livedag.jupyter.nodes import Try

    attempt = Try(2, 1.0, 2.0, 3.5, "failed", "KeyError", "node7", 4242, 0.25, 1 << 20)
    assert attempt.to_json() == dataclasses.asdict(attempt)
