"""Results forwarded in the ZMQ executor: a task whose inputs run there is launched at
once and runs with their results as soon as they succeed, without a trip to the kernel.

    b = step(a)          a running in a pool ──> b parked in that pool ──> a's result ──> b
    a fails / dies       b given back: pending in the kernel, then as without forwarding
                         (a dependency failure, or b runs after a's retry)

Each test holds the first task of a chain on a file, so what is launched before it ends
is known, not raced.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest
from htex_fixtures import loaded_kernels, pool_processes, wait_until

import livedag
from livedag import python_app
from livedag.errors import DependencyError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.timeout(120)
T = 60


@python_app
def first(path: str, value: int = 1) -> int:
    """`value`, once `path` exists."""
    import os

    while not os.path.exists(path):
        time.sleep(0.02)
    return value


@python_app
def first_failing(path: str) -> int:
    import os

    while not os.path.exists(path):
        time.sleep(0.02)
    raise ValueError("the first step failed")


@python_app
def first_dying_once(path: str, marker: str) -> int:
    """Kills its worker on its first try (once `path` exists); 10 on the next."""
    import os

    while not os.path.exists(path):
        time.sleep(0.02)
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(9)
    return 10


@python_app
def step(x: Any) -> Any:
    return x + 1


@python_app
def total(a: int, b: int, *, inputs: list[int] = ()) -> int:  # type: ignore[assignment]
    return a + b + sum(inputs)


@python_app
def step_failing_once(x: int, marker: str) -> int:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first try of this step fails")
    return x + 1


@python_app
def grow(data: bytes) -> bytes:
    return data + b"x" * 1000


@pytest.fixture
def load(tmp_path: Any) -> Iterator[Any]:
    yield from loaded_kernels(tmp_path)


def test_a_chain_is_launched_ahead_of_its_inputs_and_gives_the_same_results(
    load: Any, tmp_path: Any
) -> None:
    load()
    release = str(tmp_path / "release")
    head = first(release)
    chain = [step(head)]
    for _ in range(199):
        chain.append(step(chain[-1]))
    side = total(chain[0], chain[1], inputs=[chain[2], head])  # several inputs, and inputs=
    # Each has a try, launched ahead of its inputs (without forwarding they would wait in
    # the kernel, with no try), and is shown as waiting for them.
    assert {(len(f.tries), f.task_status()) for f in [*chain, side]} == {(1, "pending")}
    open(release, "w").close()
    assert [f.result(timeout=T) for f in chain] == list(range(2, 202))
    assert side.result(timeout=T) == 2 + 3 + 4 + 1
    assert all(len(f.tries) == 1 for f in chain)


def test_big_results_are_forwarded_whole(load: Any, tmp_path: Any) -> None:
    load()
    release = str(tmp_path / "release")
    data = first(release, b"y" * (1 << 18))
    for _ in range(5):
        data = grow(data)
    open(release, "w").close()
    assert data.result(timeout=T) == b"y" * (1 << 18) + b"x" * 5000


def test_a_failed_input_makes_forwarded_dependents_dependency_failures(
    load: Any, tmp_path: Any
) -> None:
    load()
    release = str(tmp_path / "release")
    root = first_failing(release)
    b = step(root)
    c = step(b)
    assert (len(b.tries), len(c.tries)) == (1, 1)
    open(release, "w").close()
    assert isinstance(root.exception(timeout=T), ValueError)
    for dependent in (b, c):
        exc = dependent.exception(timeout=T)
        assert isinstance(exc, DependencyError)
        assert dependent.task_status() == "dep_fail"
        assert dependent.task_record.root_cause_ids == (root.tid,)
        assert dependent.tries == []  # the forwarded try never ran: it is not a try


def test_an_input_retried_after_its_worker_died_feeds_its_dependents(
    load: Any, tmp_path: Any
) -> None:
    load(retries=1)
    release = str(tmp_path / "release")
    root = first_dying_once(release, str(tmp_path / "died"))
    b = step(root)
    c = step(b)
    assert len(c.tries) == 1
    open(release, "w").close()
    assert c.result(timeout=T) == 12
    assert [t.exc_type for t in root.tries] == ["WorkerLost", ""]
    assert (len(b.tries), len(c.tries)) == (1, 1)


def test_a_forwarded_task_that_fails_is_retried_and_resubmitted_with_its_input(
    load: Any, tmp_path: Any
) -> None:
    load(retries=1)
    release = str(tmp_path / "release")
    root = first(release, 5)
    retried = step_failing_once(root, str(tmp_path / "once-a"))
    assert len(retried.tries) == 1
    open(release, "w").close()
    assert retried.result(timeout=T) == 6  # the retry got the input back, as a value
    assert [t.exc_type for t in retried.tries] == ["RuntimeError", ""]

    livedag.dfk().config.retries = 0
    release2 = str(tmp_path / "release2")
    root2 = first(release2, 7)
    failed = step_failing_once(root2, str(tmp_path / "once-b"))
    open(release2, "w").close()
    assert isinstance(failed.exception(timeout=T), RuntimeError)
    livedag.resubmit(failed)
    assert failed.result(timeout=T) == 8


def test_cancelling_a_task_parked_in_the_interchange_blocks_its_dependents(
    load: Any, tmp_path: Any
) -> None:
    load()
    release = str(tmp_path / "release")
    blocker = first(release)  # the only worker's: `queued` waits in the interchange
    queued = step(41)
    parked = step(queued)  # its input is queued there: parked there too
    after = step(parked)
    assert len(parked.tries) == 1
    assert parked.cancel()
    open(release, "w").close()
    assert queued.result(timeout=T) == 42
    assert parked.cancelled()
    assert isinstance(after.exception(timeout=T), DependencyError)
    assert blocker.result(timeout=T) == 1


def test_cancelling_a_task_parked_in_a_pool_blocks_its_dependents(
    load: Any, tmp_path: Any
) -> None:
    load()
    release = str(tmp_path / "release")
    running = first(release)
    wait_until(lambda: running.task_status() == "running", "the first step never started")
    parked = step(running)  # its input runs in the pool: parked in the pool
    after = step(parked)
    assert len(parked.tries) == 1 and parked.task_status() == "pending"
    assert parked.cancel()
    assert isinstance(after.exception(timeout=T), DependencyError)
    open(release, "w").close()
    assert running.result(timeout=T) == 1
    assert parked.cancelled() and parked.tries[-1].outcome == "cancelled"
    assert step(running).result(timeout=T) == 2  # the pool carries on


def test_tasks_parked_in_a_lost_pool_run_after_their_input_is_retried(
    load: Any, tmp_path: Any
) -> None:
    dfk = load(retries=1)
    release = str(tmp_path / "release")
    root = first(release, 20)
    b = step(root)
    c = step(b)
    wait_until(lambda: root.task_status() == "running", "the first step never started")
    pools = pool_processes()
    assert len(pools) == 1
    pools[0].send_signal(signal.SIGSTOP)  # silent from now on: lost after 2 s
    try:
        wait_until(lambda: len(root.tries) == 2, "the first step was not retried")
        open(release, "w").close()
        assert c.result(timeout=T) == 22
    finally:
        pools[0].send_signal(signal.SIGCONT)
    assert root.tries[0].exc_type == "ManagerLost"
    assert (len(b.tries), len(c.tries)) == (1, 1)  # parked, not run: no lost try
    assert dfk.executors["htex"].outstanding == 0
