"""Fixtures shared by every test: no test may leave a loaded kernel behind for the next."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_kernel_left_loaded() -> Iterator[None]:
    """A test that fails half-way must not make every later `livedag.load()` fail too."""
    yield
    from livedag import dataflow

    left = dataflow.current_or_none()
    if left is not None:
        left.cleanup()
        dataflow.clear()
        pytest.fail("the test left a DataFlowKernel loaded (use the `dfk` fixture)")


class Recorder:
    """An event-bus subscriber that keeps every event, for tests to read after a flush."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.batches = 0
        self._lock = threading.Lock()

    def __call__(self, batch: Sequence[Any]) -> None:
        with self._lock:
            self.events.extend(batch)
            self.batches += 1

    def of(self, kind: type, task_id: int | None = None) -> list[Any]:
        with self._lock:
            return [
                e for e in self.events
                if isinstance(e, kind) and (task_id is None or e.task_id == task_id)
            ]

    def states(self, task_id: int) -> list[str]:
        from livedag.events import TaskStateChanged

        return [e.state.value for e in self.of(TaskStateChanged, task_id)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


class Counter:
    """Files that apps append one line to per run: a side effect every process can see.

    An app body appends with `with open(path, "a") as f: f.write("run\\n")`; the test
    asks `count(path)`.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._made = 0

    def new(self) -> str:
        self._made += 1
        path = os.path.join(self.directory, f"runs-{self._made}.txt")
        open(path, "w").close()
        return path

    @staticmethod
    def count(path: str) -> int:
        with open(path) as f:
            return len(f.read().splitlines())


@pytest.fixture
def counter(tmp_path: Any) -> Counter:
    return Counter(str(tmp_path))
