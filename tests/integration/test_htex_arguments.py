"""The kernel lends a task's arguments to the ZMQ executor: once packed, they are held by
the interchange only, and a try that fails brings them back for retries and Resubmit.

    launched           kernel: no reference left        interchange: the packed call
    fails, dies, lost  kernel: the arguments again (unpickled from what came back)
    interchange dies   nothing came back: no retry, and Resubmit says why
"""

from __future__ import annotations

import os
import signal
import sys
import time
import weakref
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest
from htex_fixtures import loaded_kernels, pool_processes, wait_until

import livedag
from livedag import python_app
from livedag.errors import ExecutorError

# A worker cannot import this file: its apps and Blob travel by value, as a notebook's do.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.timeout(120)
T = 60
SIZE = 1 << 20


class Blob:
    """A big argument the test can watch (bytes cannot be weakly referenced)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


@python_app
def size_after(blob: Blob, path: str) -> int:
    """The blob's size once `path` exists; FileNotFoundError if it does not yet."""
    import os

    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return len(blob.data)


@python_app
def size_when(blob: Blob, path: str) -> int:
    """The blob's size, once `path` exists (waits for it)."""
    import os

    while not os.path.exists(path):
        time.sleep(0.05)
    return len(blob.data)


@python_app
def size_dying_once(blob: Blob, marker: str) -> int:
    """Its first try kills its worker (as the OOM killer would); the next one succeeds."""
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return len(blob.data)


@pytest.fixture
def load(tmp_path: Any) -> Iterator[Any]:
    yield from loaded_kernels(tmp_path)


def test_a_launched_task_holds_no_copy_of_its_arguments_in_the_kernel(
    load: Any, tmp_path: Any
) -> None:
    load()
    release, ready = str(tmp_path / "release"), str(tmp_path / "ready")
    blocker = size_when(Blob(b""), release)  # takes the only worker
    blob = Blob(b"x" * SIZE)
    gone = weakref.ref(blob)
    fut = size_after(blob, ready)
    assert fut.task_status() == "launched"
    del blob
    assert gone() is None  # the interchange holds the packed call; the kernel, nothing

    open(release, "w").close()
    assert blocker.result(timeout=T) == 0
    assert isinstance(fut.exception(timeout=T), FileNotFoundError)
    open(ready, "w").close()
    livedag.resubmit(fut)  # with the arguments the failed try brought back
    assert fut.result(timeout=T) == SIZE


def test_a_task_whose_worker_died_is_retried_with_its_arguments(
    load: Any, tmp_path: Any
) -> None:
    load(retries=1)
    fut = size_dying_once(Blob(b"y" * SIZE), str(tmp_path / "died"))
    assert fut.result(timeout=T) == SIZE
    assert [(t.outcome, t.exc_type) for t in fut.tries] == [("failed", "WorkerLost"),
                                                            ("exec_done", "")]


def test_a_task_of_a_lost_pool_is_retried_on_a_new_block_with_its_arguments(
    load: Any, tmp_path: Any
) -> None:
    dfk = load(retries=1)
    release = str(tmp_path / "release")
    fut = size_when(Blob(b"z" * SIZE), release)
    wait_until(lambda: fut.task_status() == "running", "the task never started")
    pools = pool_processes()
    assert len(pools) == 1
    pools[0].send_signal(signal.SIGSTOP)  # silent from now on: lost after 2 s
    try:
        wait_until(lambda: len(fut.tries) == 2, "the task was not retried")
        open(release, "w").close()
        assert fut.result(timeout=T) == SIZE
    finally:
        pools[0].send_signal(signal.SIGCONT)
    assert fut.tries[0].exc_type == "ManagerLost"
    assert dfk.executors["htex"].outstanding == 0


def test_arguments_lost_with_the_interchange_are_not_retried_and_resubmit_says_why(
    load: Any, tmp_path: Any
) -> None:
    dfk = load(retries=1)
    fut = size_when(Blob(b"w" * SIZE), str(tmp_path / "never"))
    wait_until(lambda: fut.task_status() == "running", "the task never started")
    dfk.executors["htex"].interchange_proc.kill()
    exc = fut.exception(timeout=T)
    assert isinstance(exc, ExecutorError)
    assert len(fut.tries) == 1
    assert ("[livedag] not retried: the arguments went with this try to executor 'htex', "
            "and did not come back with its failure") in exc.__notes__
    with pytest.raises(ValueError) as info:
        livedag.resubmit(fut)
    assert str(info.value) == (
        f"task {fut.tid} 'size_when' cannot be resubmitted: its arguments went with its last "
        "try to executor 'htex', and did not come back with its failure. Call the app again "
        "instead"
    )
    assert os.path.exists(dfk.executors["htex"].interchange_log)
