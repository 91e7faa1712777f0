"""AppFuture on a real kernel: a concurrent.futures.Future with Parsl's fields, what the app
printed, and its tries."""

from __future__ import annotations

import concurrent.futures
import gc
import time
import weakref
from concurrent.futures import Future
from typing import Any

import pytest

from livedag import python_app
from livedag.futures import AppFuture

T = 60


@python_app
def identity(x: Any) -> Any:
    return x


@python_app
def broken(message: str) -> None:
    raise ValueError(message)


def test_app_future_is_a_concurrent_future(dfk: Any) -> None:
    futs = [identity(i) for i in range(5)]
    assert all(isinstance(f, (AppFuture, Future)) for f in futs)
    _, not_done = concurrent.futures.wait(futs, timeout=T)
    assert not not_done
    assert sorted(f.result() for f in concurrent.futures.as_completed(futs, timeout=T)) == [
        0, 1, 2, 3, 4
    ]
    called: list[Any] = []
    futs[0].add_done_callback(called.append)  # already done: runs at once
    assert called == [futs[0]]


class Box:
    """A result the test can watch (an int cannot be weakly referenced)."""

    def __init__(self, value: Any) -> None:
        self.value = value


@python_app
def boxed(value: Any) -> Box:
    return Box(value)


def test_a_finished_future_the_user_drops_frees_its_result_at_once(dfk: Any) -> None:
    """A loop that keeps no futures holds no results: each goes with its future, not at
    the garbage collector's next pass (the kernel's record of a finished task does not
    point back at its future)."""
    gc.disable()
    try:
        fut = boxed(1)
        result = weakref.ref(fut.result(timeout=T))
        del fut
        deadline = time.monotonic() + 5  # the kernel's thread may still be in set_result
        while result() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert result() is None
    finally:
        gc.enable()


def test_task_ids_count_up_from_zero_per_kernel(dfk: Any) -> None:
    assert [identity(i).tid for i in range(3)] == [0, 1, 2]


def test_task_status_names(dfk: Any) -> None:
    gate: Future[int] = Future()
    waiting = identity(gate)
    assert waiting.task_status() == "pending"
    ok = identity(1)
    bad = broken("x")
    blocked = identity(bad)
    ok.result(timeout=T)
    concurrent.futures.wait([bad, blocked], timeout=T)
    assert (ok.task_status(), bad.task_status(), blocked.task_status()) == (
        "exec_done", "failed", "dep_fail"
    )
    gate.set_result(0)
    assert waiting.result(timeout=T) == 0


def test_repr_shows_task_app_and_state(dfk: Any) -> None:
    fut = identity(1)
    fut.result(timeout=T)
    assert repr(fut) == f"<AppFuture task {fut.tid} 'identity' exec_done>"


def test_captured_output_of_a_python_app(dfk: Any) -> None:
    @python_app
    def chatty(n: int) -> int:
        import sys

        print("to stdout", n)
        print("to stderr", n, file=sys.stderr)
        return n

    fut = chatty(3)
    assert fut.result(timeout=T) == 3
    assert fut.captured_stdout == "to stdout 3\n"
    assert fut.captured_stderr == "to stderr 3\n"


def test_concurrent_tasks_output_is_not_interleaved(dfk: Any) -> None:
    @python_app
    def chatter(i: int, n: int) -> int:
        import sys

        for j in range(n):
            print(f"task {i} line {j}")
            if j % 50 == 0:
                print(f"task {i} err {j}", file=sys.stderr)
        return i

    lines = 400
    futs = [chatter(i, lines) for i in range(8)]
    for i, fut in enumerate(futs):
        assert fut.result(timeout=T) == i
        assert fut.captured_stdout.splitlines() == [f"task {i} line {j}" for j in range(lines)]
        assert fut.captured_stderr.splitlines() == [
            f"task {i} err {j}" for j in range(0, lines, 50)
        ]


def test_tries_record_each_attempt(load_dfk: Any, tmp_path: Any) -> None:
    load_dfk(retries=1)
    flag = str(tmp_path / "second-try")

    @python_app
    def flaky(flag: str) -> str:
        import os

        if not os.path.exists(flag):
            open(flag, "w").close()
            raise RuntimeError("first try fails")
        return "ok"

    fut = flaky(flag)
    assert fut.result(timeout=T) == "ok"
    first, second = fut.tries
    assert (first.number, first.outcome, first.exc_type, first.message) == (
        1, "failed", "RuntimeError", "first try fails"
    )
    assert (second.number, second.outcome) == (2, "exec_done")
    assert first.launched <= first.ended <= second.launched <= second.ended  # type: ignore[operator]
    assert second.started is not None and second.pid is not None


def test_failed_future_result_and_exception(dfk: Any) -> None:
    fut = broken("nope")
    exc = fut.exception(timeout=T)
    assert isinstance(exc, ValueError)
    with pytest.raises(ValueError, match="nope"):
        fut.result(timeout=0)
