"""The event stream, as a subscriber sees it; and subscribers that raise or lag never slow
or break the tasks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from livedag import python_app
from livedag.errors import DependencyError
from livedag.events import (
    Event,
    KernelChanged,
    TaskCancelled,
    TaskCreated,
    TaskFailed,
    TaskOutput,
    TaskResources,
    TaskStateChanged,
)
from livedag.task import TaskState

T = 60


@python_app
def identity(x: Any) -> Any:
    return x


@python_app
def noop() -> None:
    return None


@python_app
def explode(message: str) -> None:
    raise ValueError(message)


def test_task_created_names_app_kind_executor_and_dependencies(
    dfk: Any, recorder: Any, executor_label: str
) -> None:
    dfk.bus.subscribe(recorder)
    a, b = identity(1), identity(2)
    fut = identity("ab", inputs=[a, b])
    fut.result(timeout=T)
    assert dfk.bus.flush(T)
    (created,) = recorder.of(TaskCreated, fut.tid)
    assert (created.app_name, created.kind, created.executor) == (
        "identity", "python", executor_label
    )
    assert sorted(created.depends_on) == [a.tid, b.tid]
    assert "inputs=" in created.args_summary
    assert [e.task_id for e in recorder.of(TaskCreated)] == [a.tid, b.tid, fut.tid]


def test_state_changes_of_a_task_in_order(dfk: Any, recorder: Any) -> None:
    dfk.bus.subscribe(recorder)
    fut = identity(1)
    fut.result(timeout=T)
    assert dfk.bus.flush(T)
    assert recorder.states(fut.tid) == ["launched", "running", "exec_done"]
    (running,) = [e for e in recorder.of(TaskStateChanged, fut.tid)
                  if e.state is TaskState.RUNNING]
    assert running.try_number == 1
    assert running.pid is not None and running.host


def test_each_try_reports_the_cpu_time_it_used(dfk: Any, recorder: Any) -> None:
    @python_app
    def spin(seconds: float) -> None:
        import time

        start = time.thread_time()
        while time.thread_time() - start < seconds:
            pass

    dfk.bus.subscribe(recorder)
    fut = spin(0.2)
    fut.result(timeout=T)
    assert dfk.bus.flush(T)
    (used,) = recorder.of(TaskResources, fut.tid)
    assert used.try_number == 1
    assert 0.15 <= used.cpu_time < 2.0 and used.wall_time >= used.cpu_time * 0.9
    # The kernel keeps it with the try, for the widget and the run record.
    assert fut.task_record.tries[-1].cpu_time == used.cpu_time
    # Before the task's end: a subscriber can attach it to the try that ends next.
    order = [type(e).__name__ for e in recorder.events if getattr(e, "task_id", None) == fut.tid]
    assert order.index("TaskResources") < len(order) - 1


def test_output_chunks_carry_what_the_app_printed(dfk: Any, recorder: Any) -> None:
    @python_app
    def chatty() -> None:
        import sys

        for i in range(20):
            print(f"out {i}")
        print("err line", file=sys.stderr)

    dfk.bus.subscribe(recorder)
    fut = chatty()
    fut.result(timeout=T)
    assert dfk.bus.flush(T)
    chunks = recorder.of(TaskOutput, fut.tid)
    out = "".join(c.text for c in chunks if c.stream == "stdout")
    err = "".join(c.text for c in chunks if c.stream == "stderr")
    assert out == "".join(f"out {i}\n" for i in range(20))
    assert err == "err line\n"
    assert {c.try_number for c in chunks} == {1}


def test_task_failed_carries_type_message_traceback_and_root_cause(
    dfk: Any, recorder: Any
) -> None:
    dfk.bus.subscribe(recorder)
    failed = explode("bad row 17")
    blocked = identity(failed)
    assert isinstance(blocked.exception(timeout=T), DependencyError)
    assert dfk.bus.flush(T)

    (own,) = recorder.of(TaskFailed, failed.tid)
    assert (own.state, own.exc_type, own.message, own.will_retry) == (
        TaskState.FAILED, "ValueError", "bad row 17", False
    )
    assert 'in explode\n    raise ValueError(message)' in own.traceback
    assert own.root_cause_ids == ()

    (dep,) = recorder.of(TaskFailed, blocked.tid)
    assert (dep.state, dep.exc_type, dep.root_cause_ids) == (
        TaskState.DEP_FAIL, "DependencyError", (failed.tid,)
    )
    assert dep.message == str(blocked.exception())


def test_a_retried_failure_says_it_will_retry(load_dfk: Any, recorder: Any) -> None:
    kernel = load_dfk(retries=1)
    kernel.bus.subscribe(recorder)
    fut = explode("again")
    fut.exception(timeout=T)
    assert kernel.bus.flush(T)
    assert [(e.try_number, e.will_retry) for e in recorder.of(TaskFailed, fut.tid)] == [
        (1, True), (2, False)
    ]


def test_task_cancelled_event(dfk: Any, recorder: Any) -> None:
    dfk.bus.subscribe(recorder)
    gate: Future[int] = Future()
    fut = identity(gate)
    assert fut.cancel()
    assert dfk.bus.flush(T)
    (event,) = recorder.of(TaskCancelled, fut.tid)
    assert event.reason == "cancelled by the user"
    assert recorder.states(fut.tid) == ["cancelled"]
    gate.set_result(0)


def test_cleanup_is_announced(dfk: Any, recorder: Any) -> None:
    dfk.bus.subscribe(recorder)
    dfk.cleanup()
    (event,) = recorder.of(KernelChanged)
    assert (event.state, event.run_dir) == ("cleanup", dfk.run_dir)


def test_raising_and_slow_subscribers_never_hold_up_tasks(dfk: Any, recorder: Any) -> None:
    calls = {"broken": 0, "slow": 0}

    def broken(batch: Sequence[Event]) -> None:
        calls["broken"] += 1
        raise RuntimeError("a buggy subscriber")

    def slow(batch: Sequence[Event]) -> None:
        calls["slow"] += 1
        time.sleep(0.5)  # a subscriber that lags: it must not slow the tasks

    dfk.bus.subscribe(broken, name="broken")
    dfk.bus.subscribe(slow, name="slow")
    good = dfk.bus.subscribe(recorder, name="good")

    futs = [noop() for _ in range(1000)]
    for fut in futs:
        assert fut.result(timeout=T) is None
    assert good.flush(T)

    tids = {f.tid for f in futs}
    assert {e.task_id for e in recorder.of(TaskCreated)} == tids
    finished = {e.task_id for e in recorder.of(TaskStateChanged)
                if e.state is TaskState.EXEC_DONE}
    assert finished == tids
    assert calls["broken"] >= 1 and calls["slow"] >= 1
