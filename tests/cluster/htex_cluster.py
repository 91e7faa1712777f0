"""Helpers of the ZMQ-executor-on-a-cluster tests: load livedag with one
HighThroughputExecutor on a batch provider, keep its events, and make sure that the test
leaves no job in the queue and no process behind.

    with loaded(tmp_path, provider, retries=1) as run:   # livedag.load(Config(...))
        ... run.events, run.wait_for(pred), run.job_ids() ...
    # dfk.cleanup(); livedag.clear(); every job of the provider has left the queue;
    # no child process of the test is left
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

import livedag
from livedag import Config
from livedag.events import BlockChanged, Event, TaskFailed, TaskStateChanged
from livedag.executors.htex import HighThroughputExecutor
from livedag.providers.batch import BatchProvider
from livedag.task import TaskState

HERE = Path(__file__).resolve().parent
# worker_init of every test: it runs first in the job, and makes cluster_apps importable.
WORKER_INIT = f"export LIVEDAG_TEST_INIT=ran PYTHONPATH={HERE}${{PYTHONPATH:+:$PYTHONPATH}}"


class Run:
    def __init__(self, dfk: Any, executor: HighThroughputExecutor) -> None:
        self.dfk = dfk
        self.executor = executor
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def _on_events(self, batch: Sequence[Event]) -> None:
        with self._cond:
            self.events.extend(batch)
            self._cond.notify_all()

    def of(self, kind: type, **fields: Any) -> list[Any]:
        with self._cond:
            return [e for e in self.events if isinstance(e, kind)
                    and all(getattr(e, k) == v for k, v in fields.items())]

    def wait_for(self, pred: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"waited {timeout} s for {what}; last events: {self.events[-8:]}")
                self._cond.wait(min(left, 0.5))

    def running(self, task_id: int, try_number: int = 1) -> TaskStateChanged:
        """The RUNNING event of a task's try (waits for it)."""
        def seen() -> list[Any]:
            return self.of(TaskStateChanged, task_id=task_id, state=TaskState.RUNNING,
                           try_number=try_number)
        self.wait_for(lambda: bool(seen()), timeout=60, what=f"task {task_id} running")
        event: TaskStateChanged = seen()[0]
        return event

    def blocks(self) -> list[tuple[str, str, str | None]]:
        return [(e.block_id, e.state, e.job_id) for e in self.of(BlockChanged)]

    def failures(self, task_id: int) -> list[TaskFailed]:
        return self.of(TaskFailed, task_id=task_id)

    @property
    def provider(self) -> BatchProvider:
        provider = self.executor.provider
        assert isinstance(provider, BatchProvider)
        return provider

    def job_ids(self) -> list[str]:
        return list(self.provider.resources)


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@contextlib.contextmanager
def loaded(
    run_dir: Path, provider: BatchProvider, *, queued: Callable[[Sequence[str]], list[str]],
    retries: int = 0, strategy_period: float = 0.5, max_idletime: float = 120.0,
    **executor: Any,
) -> Iterator[Run]:
    """livedag.load() one HighThroughputExecutor on `provider`; afterwards every job it
    submitted must have left the queue (`queued(ids)` -> the ones still there)."""
    before = children()
    executor.setdefault("heartbeat_period", 2)
    executor.setdefault("heartbeat_threshold", 4)
    executor.setdefault("max_workers_per_node", 2)
    ex = HighThroughputExecutor(label="cluster", provider=provider, **executor)
    dfk = livedag.load(Config(executors=[ex], run_dir=str(run_dir), retries=retries,
                              strategy="simple", strategy_period=strategy_period,
                              max_idletime=max_idletime))
    run = Run(dfk, ex)
    dfk.bus.subscribe(run._on_events)
    try:
        yield run
    finally:
        dfk.cleanup()
        livedag.clear()
        ids = run.job_ids()
        deadline = time.monotonic() + 30
        while queued(ids) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = queued(ids)
        stray = wait_gone(children() - before, timeout=10)
        assert not left, f"jobs still queued after cleanup: {left}"
        assert not stray, f"processes outlived the test: {stray}"


def wait_gone(pids: set[int], *, timeout: float) -> list[str]:
    """The processes among `pids` still alive after `timeout` s, as "pid: command line"
    (so a failure says what was left behind); they are killed."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
        if not alive or time.monotonic() > deadline:
            left = []
            for proc in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    left.append(f"{proc.pid}: {' '.join(proc.cmdline())[:200]}")
                    proc.kill()
            return left
        time.sleep(0.1)


def squeue(ids: Sequence[str]) -> list[str]:
    """The ids among `ids` that Slurm still has pending or running."""
    if not ids:
        return []
    out = subprocess.run(["squeue", "--noheader", "--format=%i", f"--jobs={','.join(ids)}"],
                         capture_output=True, text=True, timeout=20, check=False).stdout
    return [line.strip() for line in out.splitlines() if line.strip() in ids]


def qstat(ids: Sequence[str]) -> list[str]:
    """The ids among `ids` that Grid Engine still has in its queue."""
    if not ids:
        return []
    out = subprocess.run(["qstat"], capture_output=True, text=True, timeout=20,
                         check=False).stdout
    found = {line.split()[0] for line in out.splitlines() if line.strip()[:1].isdigit()}
    return [i for i in ids if i in found]
