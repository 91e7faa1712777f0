"""Memoization and checkpoints: a cached task does not run again (its counter file proves
it), a failure is never cached, a redefined app is, and a new kernel reuses checkpoints."""

from __future__ import annotations

from typing import Any

import pytest

import livedag
from livedag import BasicMemoizer, python_app
from livedag.events import TaskStateChanged

T = 60


@python_app(cache=True)
def counted(marker: str, x: int, seed: int = 0) -> int:
    with open(marker, "a") as f:
        f.write("run\n")
    return x * 10


def test_cached_app_runs_once_for_the_same_arguments(dfk: Any, counter: Any,
                                                     recorder: Any) -> None:
    dfk.bus.subscribe(recorder)
    marker = counter.new()
    first = counted(marker, 1)
    assert first.result(timeout=T) == 10
    again = counted(marker, 1)
    assert again.result(timeout=T) == 10
    assert again.task_status() == "memo_done"
    assert counted(marker, 2).result(timeout=T) == 20
    assert counter.count(marker) == 2
    assert dfk.bus.flush(T)
    assert recorder.states(again.tid) == ["memo_done"]


def test_uncached_app_runs_every_time(dfk: Any, counter: Any) -> None:
    @python_app
    def uncached(marker: str) -> None:
        with open(marker, "a") as f:
            f.write("run\n")

    marker = counter.new()
    for _ in range(3):
        uncached(marker).result(timeout=T)
    assert counter.count(marker) == 3


def test_app_cache_false_turns_caching_off(load_dfk: Any, counter: Any) -> None:
    load_dfk(app_cache=False)
    marker = counter.new()
    counted(marker, 1).result(timeout=T)
    fut = counted(marker, 1)
    fut.result(timeout=T)
    assert fut.task_status() == "exec_done"
    assert counter.count(marker) == 2


def test_ignore_for_cache_leaves_an_argument_out(dfk: Any, counter: Any) -> None:
    @python_app(cache=True, ignore_for_cache=["seed"])
    def seeded(marker: str, x: int, seed: int = 0) -> int:
        with open(marker, "a") as f:
            f.write("run\n")
        return x + seed

    marker = counter.new()
    assert seeded(marker, 1, seed=5).result(timeout=T) == 6
    hit = seeded(marker, 1, seed=7)
    assert hit.result(timeout=T) == 6  # the cached value, computed with seed=5
    assert hit.task_status() == "memo_done"
    assert counter.count(marker) == 1


def test_a_failure_is_never_cached(dfk: Any, counter: Any, tmp_path: Any) -> None:
    @python_app(cache=True)
    def read(marker: str, path: str) -> str:
        with open(marker, "a") as f:
            f.write("run\n")
        with open(path) as f:
            return f.read()

    marker, path = counter.new(), str(tmp_path / "later.txt")
    with pytest.raises(FileNotFoundError):
        read(marker, path).result(timeout=T)
    with open(path, "w") as f:
        f.write("there now")
    fut = read(marker, path)
    assert fut.result(timeout=T) == "there now"
    assert fut.task_status() == "exec_done"
    assert counter.count(marker) == 2


def test_redefining_an_app_invalidates_its_cache(dfk: Any, counter: Any) -> None:
    @python_app(cache=True)
    def step(marker: str, x: int) -> int:
        with open(marker, "a") as f:
            f.write("run\n")
        return x + 1

    marker = counter.new()
    assert step(marker, 1).result(timeout=T) == 2

    @python_app(cache=True)  # redefined on purpose, as a notebook cell run again
    def step(marker: str, x: int) -> int:
        with open(marker, "a") as f:
            f.write("run\n")
        return x + 100

    fut = step(marker, 1)
    assert fut.result(timeout=T) == 101
    assert fut.task_status() == "exec_done"
    assert counter.count(marker) == 2


def test_the_same_definition_run_again_keeps_its_cache(dfk: Any, counter: Any) -> None:
    marker = counter.new()
    futs = []
    for _ in range(2):  # a new function object each time, from the same source
        @python_app(cache=True)
        def same(marker: str) -> str:
            with open(marker, "a") as f:
                f.write("run\n")
            return "value"

        fut = same(marker)
        fut.result(timeout=T)
        futs.append(fut)
    assert [f.task_status() for f in futs] == ["exec_done", "memo_done"]
    assert counter.count(marker) == 1


@pytest.mark.parametrize(
    "cache_fields",
    [
        lambda: {"checkpoint_mode": "task_exit"},
        lambda: {"memoizer": BasicMemoizer(checkpoint_mode="task_exit")},
        lambda: {"memoizer": BasicMemoizer(checkpoint_mode="dfk_exit")},
    ],
    ids=["checkpoint_mode", "memoizer", "dfk_exit"],
)
def test_a_new_kernel_reuses_checkpointed_results(
    load_dfk: Any, counter: Any, recorder: Any, cache_fields: Any
) -> None:
    marker = counter.new()
    first = load_dfk(**cache_fields())
    assert counted(marker, 4).result(timeout=T) == 40
    first.cleanup()
    livedag.clear()

    second = load_dfk(**cache_fields())
    assert second.run_dir != first.run_dir
    second.bus.subscribe(recorder)
    fut = counted(marker, 4)
    assert fut.result(timeout=T) == 40
    assert fut.task_status() == "memo_done"
    assert counter.count(marker) == 1
    assert second.bus.flush(T)
    assert [e.state.value for e in recorder.of(TaskStateChanged, fut.tid)] == ["memo_done"]


def test_without_checkpoints_a_new_kernel_runs_again(load_dfk: Any, counter: Any) -> None:
    marker = counter.new()
    first = load_dfk()
    counted(marker, 4).result(timeout=T)
    first.cleanup()
    livedag.clear()
    load_dfk()
    fut = counted(marker, 4)
    fut.result(timeout=T)
    assert fut.task_status() == "exec_done"
    assert counter.count(marker) == 2
