"""Shared helpers of the ZMQ executor tests: start an executor on real processes, wait for
events, and make sure nothing outlives the test."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil

from livedag.events import Event
from livedag.executors.base import TaskCall
from livedag.executors.htex import HighThroughputExecutor
from livedag.providers import LocalProvider

_ids = itertools.count(1)


class Events:
    """The executor's `publish`: keeps every event (called from its receiver thread)."""

    def __init__(self) -> None:
        self.items: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def of(self, kind: type, task_id: int | None = None) -> list[Any]:
        with self._cond:
            return [e for e in self.items if isinstance(e, kind)
                    and (task_id is None or getattr(e, "task_id", None) == task_id)]

    def wait_for(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"condition not met within {timeout} s; events: {self.items[-10:]}"
                    )
                self._cond.wait(left)


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> TaskCall:
    return TaskCall(next(_ids), 1, getattr(fn, "__name__", "app"), fn, args, kwargs)


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Pids among `pids` still alive (not zombies) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def descendants() -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True)]


Maker = Callable[..., tuple[HighThroughputExecutor, Events]]


def executors(tmp_path: Any) -> Iterator[Maker]:
    """Body of each test module's `htex` fixture: make(**executor_kwargs) -> (started
    executor, its events). Shut down afterwards, and the test fails if any process it
    started is still alive then."""
    made: list[HighThroughputExecutor] = []
    before = set(descendants())

    def make(**kw: Any) -> tuple[HighThroughputExecutor, Events]:
        kw.setdefault("label", "htex")
        kw.setdefault("heartbeat_period", 1)
        kw.setdefault("heartbeat_threshold", 3)
        kw.setdefault("max_workers_per_node", 2)
        kw.setdefault("provider", LocalProvider())
        # Set by the kernel from its Config in real use.
        strategy = {k: kw.pop(k) for k in ("strategy", "strategy_period", "max_idletime")
                    if k in kw}
        events = Events()
        ex = HighThroughputExecutor(**kw)
        for name, value in strategy.items():
            setattr(ex, name, value)
        made.append(ex)
        ex.start(events, os.path.join(str(tmp_path), f"run{len(made)}"))
        return ex, events

    try:
        yield make
    finally:
        for ex in made:
            ex.shutdown()
        left = wait_gone([p for p in descendants() if p not in before], timeout=10)
        for pid in left:
            psutil.Process(pid).kill()
        assert not left, f"processes outlived the executor: {left}"


def loaded_kernels(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Body of a `load` fixture: make(workers=1, **config) loads a kernel whose only
    executor is a ZMQ executor ("htex", one local block, a pool lost after 2 s of
    silence); cleaned up afterwards."""
    import livedag

    def make(**config: Any) -> livedag.DataFlowKernel:
        executor = HighThroughputExecutor(
            label="htex", max_workers_per_node=config.pop("workers", 1), heartbeat_period=1,
            heartbeat_threshold=3, provider=LocalProvider(),
        )
        return livedag.load(livedag.Config(executors=[executor],
                                           run_dir=str(tmp_path / "runinfo"), **config))

    yield make
    livedag.dfk().cleanup()
    livedag.clear()


def wait_until(pred: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def pool_processes() -> list[psutil.Process]:
    """The worker pools this test process started (through its kernel's executor)."""
    return [p for p in psutil.Process().children(recursive=True)
            if "livedag.executors.htex.pool" in " ".join(p.cmdline())]
