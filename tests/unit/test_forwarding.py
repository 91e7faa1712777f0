"""What observers see of a task launched ahead of its input (forwarding.py), with an
executor driven by hand: the test decides when each try ends, so the races the ZMQ
executor meets now and then (a try given back after its input succeeded, an input that
fails) happen here every time. The real thing is tested in
tests/integration/test_htex_forwarding.py."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

import livedag
from livedag import python_app
from livedag.errors import DependencyError
from livedag.executors.base import Executor, InputsNotForwarded, TaskCall


class HandExecutor(Executor):
    """Keeps every try it is given; the test ends them."""

    label = "hand"
    forwards_results = True

    def __init__(self) -> None:
        self.calls: list[tuple[TaskCall, Future[Any]]] = []

    def submit(self, call: TaskCall) -> Future[Any]:
        fut: Future[Any] = Future()
        self.calls.append((call, fut))
        return fut

    def of(self, task_id: int) -> list[tuple[TaskCall, Future[Any]]]:
        return [(c, f) for c, f in self.calls if c.task_id == task_id]


@python_app(executors=["hand"])
def step(x: int = 0) -> int:
    return x + 1


@pytest.fixture
def hand(tmp_path: Any, recorder: Any) -> Iterator[HandExecutor]:
    executor = HandExecutor()
    dfk = livedag.load(livedag.Config(executors=[executor], run_dir=str(tmp_path)))
    dfk.bus.subscribe(recorder)
    try:
        yield executor
    finally:
        livedag.clear()


def test_a_task_given_back_after_its_input_succeeded_is_launched_again_unseen(
    hand: HandExecutor, recorder: Any
) -> None:
    first = step()
    second = step(first)
    ((call, given),) = hand.of(second.tid)
    assert call.inputs is not None and set(call.inputs) == {first.tid}
    assert second.task_status() == "pending"  # launched ahead: it waits for its input

    hand.of(first.tid)[0][1].set_result(1)
    assert second.task_status() == "launched"  # its input is done: it waits for a worker
    given.set_exception(InputsNotForwarded())  # the input's result had passed already

    (_, (again, fut)) = hand.of(second.tid)
    assert (again.try_number, again.inputs, again.args) == (1, None, (1,))
    assert second.task_status() == "launched"
    fut.set_result(2)
    assert second.result(timeout=5) == 2
    assert [t.outcome for t in second.task_record.tries] == ["exec_done"]
    assert livedag.dfk().bus.flush(5)
    # Once shown launched, it is not shown pending and launched a second time.
    assert recorder.states(second.tid) == ["launched", "exec_done"]


def test_a_task_given_back_because_its_input_failed_is_a_dependency_failure(
    hand: HandExecutor, recorder: Any
) -> None:
    first = step()
    second = step(first)
    ((_, given),) = hand.of(second.tid)

    hand.of(first.tid)[0][1].set_exception(KeyError("missing"))
    assert second.task_status() == "pending"  # not shown launched: it will never run
    given.set_exception(InputsNotForwarded())

    exc = second.exception(timeout=5)
    assert isinstance(exc, DependencyError)
    assert second.task_status() == "dep_fail"
    assert second.task_record.tries == []  # the try given back never ran
    assert len(hand.of(second.tid)) == 1
    assert livedag.dfk().bus.flush(5)
    assert recorder.states(second.tid) == ["dep_fail"]


def test_a_task_given_back_while_its_input_runs_waits_for_it_pending(
    hand: HandExecutor, recorder: Any
) -> None:
    first = step()
    second = step(first)
    hand.of(second.tid)[0][1].set_exception(InputsNotForwarded())  # e.g. withdrawn
    assert second.task_status() == "pending"
    assert len(hand.of(second.tid)) == 1  # not launched again before its input is done

    hand.of(first.tid)[0][1].set_result(1)
    (_, (again, fut)) = hand.of(second.tid)
    assert (again.inputs, again.args) == (None, (1,))
    fut.set_result(2)
    assert second.result(timeout=5) == 2
    assert livedag.dfk().bus.flush(5)
    assert recorder.states(second.tid) == ["launched", "exec_done"]
