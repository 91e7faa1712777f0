"""Dependencies: what counts as one, when a task waits, join apps, lifted `fut[key]` and
`fut.attr`, and long chains."""

from __future__ import annotations

import concurrent.futures
import types
from concurrent.futures import Future
from typing import Any

import pytest

from livedag import DEEP_DEPENDENCY_RESOLVER, SHALLOW_DEPENDENCY_RESOLVER, join_app, python_app
from livedag.errors import DependencyError, JoinError
from livedag.events import TaskCreated

T = 60


@python_app
def identity(x: Any) -> Any:
    return x


@python_app
def add(a: int, b: int = 0, inputs: Any = ()) -> int:
    return a + b + sum(inputs)


def test_futures_as_positional_keyword_and_inputs(dfk: Any, recorder: Any) -> None:
    dfk.bus.subscribe(recorder)
    a, b, c = identity(1), identity(2), identity(3)
    fut = add(a, b=b, inputs=[c, 4])
    assert fut.result(timeout=T) == 10
    assert dfk.bus.flush(T)
    (created,) = recorder.of(TaskCreated, fut.tid)
    assert sorted(created.depends_on) == sorted([a.tid, b.tid, c.tid])
    assert created.app_name == "add"


def test_a_plain_concurrent_future_is_waited_for(dfk: Any) -> None:
    gate: Future[int] = Future()
    fut = add(gate, 1)
    done, _ = concurrent.futures.wait([identity(0)], timeout=T)  # the kernel is running tasks
    assert done
    assert not fut.done()
    assert fut.task_status() == "pending"
    gate.set_result(41)
    assert fut.result(timeout=T) == 42


def test_a_failed_plain_future_is_a_dependency_failure(dfk: Any) -> None:
    gate: Future[int] = Future()
    fut = add(gate)
    gate.set_exception(OSError("disk gone"))
    with pytest.raises(DependencyError) as info:
        fut.result(timeout=T)
    assert fut.task_status() == "dep_fail"
    assert "failed with OSError: disk gone" in str(info.value)


def test_deep_resolver_waits_for_futures_in_containers(load_dfk: Any) -> None:
    load_dfk(dependency_resolver=DEEP_DEPENDENCY_RESOLVER)

    @python_app
    def show(value: Any) -> Any:
        return value

    gate: Future[int] = Future()
    fut = show({"list": [identity(1), gate], "tuple": (identity(2),), "set": {identity(3)},
                identity("key"): "v"})
    assert not fut.done()
    gate.set_result(9)
    assert fut.result(timeout=T) == {"list": [1, 9], "tuple": (2,), "set": {3}, "key": "v"}


@pytest.mark.parametrize("resolver", [None, SHALLOW_DEPENDENCY_RESOLVER],
                         ids=["default", "shallow"])
def test_shallow_resolver_does_not_look_inside_containers(
    load_dfk: Any, recorder: Any, resolver: Any
) -> None:
    kernel = load_dfk(dependency_resolver=resolver)
    kernel.bus.subscribe(recorder)

    @python_app
    def length(value: Any) -> int:
        return len(value)

    never: Future[int] = Future()  # never set: a task waiting for it would never end
    fut = length([never])
    concurrent.futures.wait([fut], timeout=T)
    assert fut.done()
    assert kernel.bus.flush(T)
    assert recorder.of(TaskCreated, fut.tid)[0].depends_on == ()


# ---------------------------------------------------------------- join apps


def test_join_app_waits_for_the_futures_it_returns(dfk: Any) -> None:
    gate: Future[int] = Future()

    @join_app
    def later() -> Any:
        return add(gate, 1)

    fut = later()
    inner_done, _ = concurrent.futures.wait([identity(0)], timeout=T)
    assert inner_done and not fut.done()
    gate.set_result(1)
    assert fut.result(timeout=T) == 2
    assert fut.task_status() == "exec_done"


def test_join_app_with_a_failing_inner_future_is_a_join_error(dfk: Any) -> None:
    @python_app
    def broken(n: int) -> int:
        raise ValueError(f"bad row {n}")

    inner: list[Any] = []

    @join_app
    def gather() -> Any:
        futs = [identity(1), broken(17)]
        inner.extend(futs)
        return futs

    fut = gather()
    with pytest.raises(JoinError) as info:
        fut.result(timeout=T)
    exc = info.value
    failed = inner[1]
    assert str(exc) == (
        f"task {fut.tid} 'gather' failed: the joined task {failed.tid} 'broken' failed with "
        "ValueError: bad row 17"
    )
    assert exc.root_causes[0].task_id == failed.tid
    assert isinstance(exc.__cause__, ValueError)
    assert fut.task_status() == "failed"


# ---------------------------------------------------------------- lifted operators


def test_lifted_getitem_and_getattr(dfk: Any) -> None:
    @python_app
    def record() -> Any:
        return {"rows": [10, 20, 30], "name": "data"}

    @python_app
    def namespace() -> Any:
        return types.SimpleNamespace(size=3, inner={"k": "v"})

    fut = record()
    assert fut["rows"][1].result(timeout=T) == 20
    assert fut["name"].result(timeout=T) == "data"
    ns = namespace()
    assert ns.size.result(timeout=T) == 3
    assert ns.inner["k"].result(timeout=T) == "v"
    assert add(fut["rows"][2], 1).result(timeout=T) == 31


def test_lifted_getitem_of_a_missing_key_fails_with_key_error(dfk: Any) -> None:
    with pytest.raises(KeyError, match="absent"):
        identity({"present": 1})["absent"].result(timeout=T)


# ---------------------------------------------------------------- long chains


def test_a_long_chain_of_dependency_failures_has_no_recursion_error(dfk: Any) -> None:
    @python_app
    def first_link(go: int) -> int:
        raise ValueError("the first link broke")

    gate: Future[int] = Future()
    first = first_link(gate)
    fut = first
    for _ in range(2000):
        fut = add(fut)
    gate.set_result(1)  # the first task fails, then 2000 dependents fail in one cascade
    with pytest.raises(DependencyError) as info:
        fut.result(timeout=T)
    assert [r.task_id for r in info.value.root_causes] == [first.tid]
    assert type(info.value.__cause__) is ValueError
    assert fut.tid - first.tid == 2000


def test_a_long_chain_of_successes(dfk: Any) -> None:
    fut = identity(0)
    for _ in range(500):
        fut = add(fut, 1)
    assert fut.result(timeout=T) == 500
