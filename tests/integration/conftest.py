"""The integration suite runs once per executor in EXECUTORS.

Adding an executor is one line in EXECUTORS. Tests get a loaded kernel from `dfk`, or
load their own Config (same executor, fresh run_dir) with `load_dfk(**config_fields)`.
App functions must be able to travel to another process: define them in the test body or
at module level, and let them touch only what they are given (paths, values), never a
lock or an event of the test's process. The few thread-only tests say so and use
`load_one_thread_dfk`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import livedag
from livedag.executors.htex import HighThroughputExecutor
from livedag.executors.threads import ThreadPoolExecutor

# name -> factory of a fresh, unstarted executor; every integration test runs once per entry.
EXECUTORS: dict[str, Callable[[], Any]] = {
    "threads": lambda: ThreadPoolExecutor(max_threads=4),
    "htex": lambda: HighThroughputExecutor(
        label="htex", max_workers_per_node=4, heartbeat_period=1, heartbeat_threshold=3
    ),
}


@pytest.fixture(autouse=True)
def _apps_of_engine_tests_travel_by_value(request: pytest.FixtureRequest) -> None:
    """A worker process cannot import a test file: its module-level apps are sent by value,
    as a notebook's are."""
    module = request.module
    if module.__name__.rpartition(".")[2].startswith("test_engine_"):
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)


@pytest.fixture(params=list(EXECUTORS))
def make_executor(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """A factory of fresh (unstarted) executors of the kind this run is parametrised by."""
    return EXECUTORS[request.param]


@pytest.fixture
def run_base(tmp_path: Any) -> str:
    """The Config.run_dir of this test (each kernel gets a numbered run dir inside it)."""
    return os.path.join(str(tmp_path), "runinfo")


def _loading(make_executor: Callable[[], Any], run_base: str) -> Iterator[Any]:
    loaded: list[livedag.DataFlowKernel] = []

    def load(**fields: Any) -> livedag.DataFlowKernel:
        fields.setdefault("executors", [make_executor()])
        fields.setdefault("run_dir", run_base)
        kernel = livedag.load(livedag.Config(**fields))
        loaded.append(kernel)
        return kernel

    try:
        yield load
    finally:
        try:
            for kernel in loaded:
                kernel.cleanup()
        finally:
            livedag.clear()


@pytest.fixture
def load_dfk(
    make_executor: Callable[[], Any], run_base: str
) -> Iterator[Callable[..., livedag.DataFlowKernel]]:
    """`load_dfk(**config_fields)` loads a Config with this run's executor; every kernel
    it loaded is cleaned up at the end, and livedag is left with none loaded."""
    yield from _loading(make_executor, run_base)


@pytest.fixture
def load_one_thread_dfk(run_base: str) -> Iterator[Callable[..., livedag.DataFlowKernel]]:
    """Thread-only: a kernel whose executor has ONE worker thread, so that a task that
    blocks its worker deadlocks for certain instead of by chance."""
    yield from _loading(lambda: ThreadPoolExecutor(max_threads=1), run_base)


@pytest.fixture
def dfk(load_dfk: Callable[..., livedag.DataFlowKernel]) -> livedag.DataFlowKernel:
    """A loaded kernel with this run's executor and a fresh run_dir."""
    return load_dfk()


@pytest.fixture
def executor_label(dfk: livedag.DataFlowKernel) -> str:
    (executor,) = dfk.config.executors
    return str(executor.label)
