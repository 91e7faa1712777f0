"""Loading, the kernel as a context manager, waiting, clearing, and cancelling tasks."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

import livedag
from livedag import python_app
from livedag.errors import (
    ConfigurationError,
    DependencyError,
    ExecutorError,
    NoDataFlowKernelError,
    TaskCancelled,
)
from livedag.events import TaskStateChanged
from livedag.task import TaskState

T = 60


@python_app
def identity(x: Any) -> Any:
    return x


@python_app
def wait_for_file(path: str) -> str:
    """Runs until `path` exists: a task the test can hold in the running state."""
    import os
    import time

    for _ in range(1200):
        if os.path.exists(path):
            return "released"
        time.sleep(0.05)
    raise TimeoutError(f"{path} never appeared")


@pytest.fixture
def set_later() -> Iterator[Any]:
    """`set_later(future, value)`: the future gets its result from another thread, soon,
    while the test's thread is blocked in the call under test."""
    timers: list[threading.Timer] = []

    def schedule(fut: Future[Any], value: Any) -> None:
        timer = threading.Timer(0.2, fut.set_result, (value,))
        timers.append(timer)
        timer.start()

    yield schedule
    for timer in timers:
        timer.cancel()
        timer.join(10)


def test_loading_twice_is_a_configuration_error(dfk: Any, tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        livedag.load(livedag.Config(run_dir=str(tmp_path / "other")))
    assert str(info.value) == (
        "Config has already been loaded: call livedag.dfk().cleanup() and livedag.clear() "
        "before loading another"
    )
    assert livedag.dfk() is dfk


def test_load_takes_only_a_config(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError,
                       match=re.escape("livedag.load() takes a livedag.Config, got dict")):
        livedag.load({"run_dir": str(tmp_path)})  # type: ignore[arg-type]
    with pytest.raises(NoDataFlowKernelError, match=r"^Must first load config$"):
        livedag.dfk()


def test_run_dirs_are_numbered_inside_the_base(load_dfk: Any, run_base: str) -> None:
    first = load_dfk()
    first.cleanup()
    livedag.clear()
    second = load_dfk()
    assert [os.path.relpath(k.run_dir, run_base) for k in (first, second)] == ["000", "001"]
    assert os.path.exists(os.path.join(first.run_dir, "livedag.log"))


def test_clear_forgets_the_loaded_kernel(load_dfk: Any) -> None:
    first = load_dfk()
    livedag.clear()
    with pytest.raises(NoDataFlowKernelError, match=r"^Must first load config$"):
        livedag.dfk()
    second = load_dfk()
    assert livedag.dfk() is second is not first


def test_wait_for_current_tasks_waits_for_every_task(dfk: Any, set_later: Any) -> None:
    gate: Future[int] = Future()
    futs = [identity(gate) for _ in range(5)] + [identity(i) for i in range(5)]
    set_later(gate, 7)
    livedag.wait_for_current_tasks()
    assert all(f.done() for f in futs)
    assert [f.result() for f in futs[:5]] == [7] * 5


def test_context_manager_cleanup_fails_unfinished_tasks(load_dfk: Any) -> None:
    gate: Future[int] = Future()
    with load_dfk(exit_mode="cleanup") as kernel:
        done = identity(1)
        done.result(timeout=T)
        stuck = identity(gate)
    with pytest.raises(ExecutorError, match=f"task {stuck.tid} 'identity' had not finished "
                                            "when the kernel was cleaned up"):
        stuck.result(timeout=T)
    with pytest.raises(NoDataFlowKernelError, match=r"^Must first load config$"):
        livedag.dfk()
    with pytest.raises(NoDataFlowKernelError, match="this DataFlowKernel was cleaned up"):
        kernel.submit(identity, (1,), {})


def test_context_manager_wait_waits_then_cleans_up(load_dfk: Any, set_later: Any) -> None:
    gate: Future[int] = Future()
    with load_dfk(exit_mode="wait"):
        fut = identity(gate)
        set_later(gate, 5)
    assert fut.done()
    assert fut.result() == 5
    with pytest.raises(NoDataFlowKernelError):
        livedag.dfk()


def test_context_manager_wait_does_not_wait_after_an_exception(load_dfk: Any) -> None:
    gate: Future[int] = Future()
    with pytest.raises(KeyError, match="user error"), load_dfk(exit_mode="wait"):
        fut = identity(gate)
        raise KeyError("user error")
    assert isinstance(fut.exception(timeout=T), ExecutorError)


def test_context_manager_skip_leaves_the_kernel_running(load_dfk: Any) -> None:
    with load_dfk(exit_mode="skip") as kernel:
        pass
    assert livedag.dfk() is kernel
    assert identity(3).result(timeout=T) == 3


def test_cleanup_twice_is_harmless(dfk: Any) -> None:
    dfk.cleanup()
    dfk.cleanup()
    assert "run_dir=" in repr(dfk)


# ---------------------------------------------------------------- cancel


def test_cancel_a_waiting_task_fails_its_dependents_naming_it(dfk: Any) -> None:
    gate: Future[int] = Future()
    waiting = identity(gate)
    child = identity(waiting)
    grandchild = identity(child)
    assert waiting.cancel() is True
    assert waiting.cancelled()
    assert waiting.task_status() == "cancelled"
    for fut in (child, grandchild):
        exc = fut.exception(timeout=T)
        assert isinstance(exc, DependencyError)
        assert fut.task_status() == "dep_fail"
        assert str(exc) == (
            f"task {fut.tid} 'identity' was not run: its input from task {waiting.tid} "
            f"'identity' failed with TaskCancelled: task {waiting.tid} 'identity' was "
            "cancelled: cancelled by the user"
        )
        assert isinstance(exc.__cause__, TaskCancelled)
    gate.set_result(0)
    assert waiting.tries == []  # it never ran


def test_cancel_of_a_finished_task_is_false(dfk: Any) -> None:
    fut = identity(1)
    assert fut.result(timeout=T) == 1
    assert fut.cancel() is False
    assert not fut.cancelled()
    assert fut.task_status() == "exec_done"


def test_the_same_config_loads_again_after_cleanup(make_executor: Any, run_base: str) -> None:
    """A notebook's load cell run again after cleanup() hands the same Config, and the
    same executor objects, to a new kernel: they start afresh."""
    config = livedag.Config(executors=[make_executor()], run_dir=run_base)
    try:
        for value in (1, 2):
            dfk = livedag.load(config)
            assert identity(value).result(timeout=T) == value
            dfk.cleanup()
            livedag.clear()
    finally:
        livedag.clear()


def test_cancel_of_a_launched_task_that_waits_for_a_worker(dfk: Any, tmp_path: Any) -> None:
    """Launched, but every worker is busy: it waits in its executor (a thread pool's queue,
    the interchange) and is withdrawn from there. The executor carries on: the withdrawn
    task's result never meets its cancelled future (on htex that used to kill the
    executor's receiver, and with it every later task)."""
    release = str(tmp_path / "release")
    holders = [wait_for_file(release) for _ in range(6)]  # more than the executors' workers
    deadline = time.monotonic() + T
    while holders[0].task_status() != "running":
        assert time.monotonic() < deadline, holders[0].task_status()
        time.sleep(0.02)
    waiting = holders[-1]
    assert waiting.task_status() == "launched"
    assert waiting.cancel() is True
    assert waiting.cancelled()
    assert waiting.task_status() == "cancelled"
    open(release, "w").close()
    assert [h.result(timeout=T) for h in holders[:-1]] == ["released"] * 5
    assert identity("after").result(timeout=T) == "after"
    assert [t.outcome for t in waiting.tries] == ["cancelled"]
    livedag.resubmit(waiting)
    assert waiting.result(timeout=T) == "released"


def test_cancel_of_a_running_task_is_false(dfk: Any, tmp_path: Any) -> None:
    running = threading.Event()
    release = str(tmp_path / "release")
    holder: list[int] = []

    def watch(batch: Any) -> None:
        for e in batch:
            if (isinstance(e, TaskStateChanged) and e.state is TaskState.RUNNING
                    and e.task_id in holder):
                running.set()

    dfk.bus.subscribe(watch)
    fut = wait_for_file(release)
    holder.append(fut.tid)
    if fut.task_status() != "running":  # it may have started before `holder` was filled
        assert running.wait(T)
    assert fut.cancel() is False
    open(release, "w").close()
    assert fut.result(timeout=T) == "released"
    assert not fut.cancelled()
