"""Crash forensics of the ZMQ executor: one test per way a process of it can die.

    worker dies mid-task (SIGKILL, segfault, os._exit, sys.exit) -> WorkerLost, new worker
    pool stops answering (SIGSTOP, SIGKILL)                      -> ManagerLost
    interchange dies                                            -> ExecutorError for all
    kernel dies                                                 -> interchange, pools leave
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from htex_fixtures import Maker, call, executors, wait_gone

from livedag.errors import ExecutorError, ManagerLost, WorkerLost
from livedag.events import BlockChanged, TaskStateChanged
from livedag.providers import LocalProvider

pytestmark = pytest.mark.timeout(90)

@pytest.fixture
def htex(tmp_path: Any) -> Iterator[Maker]:
    yield from executors(tmp_path)



def sigkill_after_allocating() -> None:
    import signal as _signal

    hog = bytearray(80 << 20)
    hog[::4096] = b"x" * len(hog[::4096])  # touch every page: it is resident
    print("about to be killed", file=sys.stderr, flush=True)
    time.sleep(0.4)  # long enough for the pool to sample the RSS
    os.kill(os.getpid(), _signal.SIGKILL)


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def hard_exit() -> None:
    os._exit(3)


def sys_exit() -> None:
    sys.exit(2)


def keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


CRASHES = {
    "sigkill": (sigkill_after_allocating, {"signal": "SIGKILL", "exitcode": None},
                ["SIGKILL", "out-of-memory", "peak RSS", "about to be killed"]),
    "segfault": (segfault, {"signal": "SIGSEGV", "exitcode": None},
                 ["segmentation fault", "Fatal Python error", "segfault"]),
    "os_exit": (hard_exit, {"signal": "", "exitcode": 3}, ["exit code 3", "os._exit"]),
    "sys_exit": (sys_exit, {"signal": "", "exitcode": 2}, ["SystemExit(2)"]),
    # Python ends with SIGINT after an uncaught KeyboardInterrupt; the task's own words
    # come first, not "killed by SIGINT".
    "keyboard_interrupt": (keyboard_interrupt, {"signal": "SIGINT", "exitcode": None},
                           ["raised KeyboardInterrupt()"]),
}


@pytest.mark.parametrize("kind", list(CRASHES))
def test_worker_death_fails_only_its_task_with_evidence(htex: Any, kind: str) -> None:
    fn, fields, words = CRASHES[kind]
    ex, events = htex()
    bystander = ex.submit(call(pid_after, 2.0))  # on the other worker, all along
    time.sleep(0.3)
    c = call(fn)
    t0 = time.monotonic()
    with pytest.raises(WorkerLost) as info:
        ex.submit(c).result(timeout=10)
    assert time.monotonic() - t0 < 2.5
    err = info.value
    (running,) = events.of(TaskStateChanged, c.task_id)
    assert err.task_id == c.task_id and err.pid == running.pid and err.host == running.host
    assert err.signal == fields["signal"] and err.exitcode == fields["exitcode"]
    text = str(err)
    for word in [f"task {c.task_id}", fn.__name__, "pool.log", *words]:
        assert word in text, (word, text)
    # The other task carried on, and the pool replaced the dead worker.
    assert isinstance(bystander.result(timeout=10), int)
    pids = {ex.submit(call(pid_after, 0.2)).result(timeout=10) for _ in range(4)}
    assert running.pid not in pids


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


def raise_unprintable() -> int:
    raise UnprintableError


def test_exception_that_cannot_be_printed_fails_its_task_not_its_worker(htex: Any) -> None:
    ex, events = htex(max_workers_per_node=1)
    first = call(pid_after, 0.0)
    pid = ex.submit(first).result(timeout=10)
    c = call(raise_unprintable)
    with pytest.raises(UnprintableError):
        ex.submit(c).result(timeout=10)
    (running,) = events.of(TaskStateChanged, c.task_id)
    assert running.pid == pid
    assert ex.submit(call(pid_after, 0.0)).result(timeout=10) == pid  # the same worker


def pool_of(pid: int) -> psutil.Process:
    return psutil.Process(pid).parent()


def test_stopped_pool_fails_its_tasks_with_manager_lost(htex: Any) -> None:
    ex, events = htex(max_workers_per_node=1, provider=LocalProvider(init_blocks=2, max_blocks=2))
    first, second = call(pid_after, 8.0), call(pid_after, 1.0)
    futs = {first.task_id: ex.submit(first), second.task_id: ex.submit(second)}
    events.wait_for(lambda: len(events.of(TaskStateChanged)) == 2)
    running = {e.task_id: e for e in events.of(TaskStateChanged)}
    assert running[first.task_id].block_id != running[second.task_id].block_id
    pool = pool_of(running[first.task_id].pid)
    pool.suspend()  # SIGSTOP: it stops heartbeating, its TCP connection stays up
    t0 = time.monotonic()
    try:
        with pytest.raises(ManagerLost) as info:
            futs[first.task_id].result(timeout=10)
        waited = time.monotonic() - t0
        assert waited < 2 * ex.heartbeat_period + 1.0
        err = info.value
        assert err.block_id == running[first.task_id].block_id
        assert err.job_id == ex.blocks.job_of(err.block_id) and err.host
        assert err.last_heartbeat_age is not None and err.last_heartbeat_age >= 1.0
        for word in ["heartbeat", f"block {err.block_id}", f"job {err.job_id}", "pool.log"]:
            assert word in str(err)
        # The other pool carries on, with its own task and new ones.
        assert isinstance(futs[second.task_id].result(timeout=10), int)
        assert ex.submit(call(pid_after, 0)).result(timeout=10)
        failed = [e for e in events.of(BlockChanged) if e.state == "failed"]
        assert [e.block_id for e in failed] == [err.block_id]
    finally:
        pool.resume()


def test_killed_pool_fails_its_tasks_and_its_workers_leave(htex: Any) -> None:
    ex, events = htex(max_workers_per_node=1)
    c = call(pid_after, 30.0)
    fut = ex.submit(c)
    events.wait_for(lambda: bool(events.of(TaskStateChanged, c.task_id)))
    worker = events.of(TaskStateChanged, c.task_id)[0].pid
    t0 = time.monotonic()
    pool_of(worker).kill()
    with pytest.raises(ManagerLost) as info:
        fut.result(timeout=2 * ex.heartbeat_period + 2)
    # A local pool's connection closes with it: lost at once, not after missed heartbeats.
    assert time.monotonic() - t0 < ex.heartbeat_period
    assert "connection to the interchange closed" in str(info.value)
    assert wait_gone([worker], timeout=3) == []


def test_interchange_death_fails_every_outstanding_task_quickly(htex: Any) -> None:
    ex, _ = htex()
    futs = [ex.submit(call(pid_after, 30.0)) for _ in range(5)]
    time.sleep(0.5)
    pools = [p.pid for p in psutil.Process().children(recursive=True)
             if "htex.pool" in " ".join(p.cmdline())]
    assert ex._ix is not None
    t0 = time.monotonic()
    ex._ix.kill()
    for fut in futs:
        with pytest.raises(ExecutorError, match="interchange process") as info:
            fut.result(timeout=5)
    assert time.monotonic() - t0 < 5
    assert "interchange.log" in str(info.value) and "signal 9" in str(info.value)
    assert ex.bad_state_is_set
    with pytest.raises(ExecutorError):
        ex.submit(call(pid_after, 0)).result(timeout=2)
    # Pools notice their interchange is gone and leave by themselves.
    assert wait_gone(pools, timeout=10) == []


def test_block_that_cannot_start_fails_tasks_with_its_stderr(htex: Any) -> None:
    ex, events = htex(provider=LocalProvider(worker_init="echo no such env >&2; exit 3"))
    fut = ex.submit(call(pid_after, 0))
    with pytest.raises(ExecutorError) as info:
        fut.result(timeout=10)
    text = str(info.value)
    assert "ended before its worker pool connected" in text and "no such env" in text
    assert "exited with code 3" in text
    (ended,) = [e for e in events.of(BlockChanged) if e.state == "failed"]
    assert "no such env" in ended.reason


def test_workers_that_cannot_start_end_the_block_with_their_error(
    htex: Any, tmp_path: Any
) -> None:
    # A tblib that cannot be imported: the pool starts (it does not need tblib), its
    # workers die at start-up. The pool gives up after a few tries instead of looping.
    shadow = tmp_path / "shadow" / "tblib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('this tblib is broken')\n")
    init = f"export PYTHONPATH={shadow.parent}${{PYTHONPATH:+:$PYTHONPATH}}"
    ex, _ = htex(provider=LocalProvider(worker_init=init))
    fut = ex.submit(call(pid_after, 0))
    # ManagerLost when the task had reached the pool (the usual case), else ExecutorError.
    with pytest.raises((ManagerLost, ExecutorError)) as info:
        fut.result(timeout=15)
    text = str(info.value)
    assert "died before they were ready" in text and "this tblib is broken" in text
    later = ex.submit(call(pid_after, 0))
    with pytest.raises(ExecutorError, match="no block is left"):
        later.result(timeout=10)
    assert "before it was ready to run tasks" in text


KERNEL = textwrap.dedent("""
    import json, os, sys, time
    sys.path[:0] = {paths!r}
    from livedag.executors.base import TaskCall
    from livedag.executors.htex import HighThroughputExecutor
    import psutil
    ex = HighThroughputExecutor(label="htex", heartbeat_period=1, heartbeat_threshold=30,
                                max_workers_per_node=1)
    ex.start(lambda e: None, {run_dir!r})
    assert ex.submit(TaskCall(1, 1, "f", os.getpid, (), {{}})).result(timeout=20)
    ex.submit(TaskCall(2, 1, "sleep", time.sleep, (60,), {{}}))
    time.sleep(0.5)
    pids = [p.pid for p in psutil.Process().children(recursive=True)]
    print(json.dumps(pids), flush=True)
    time.sleep(60)
""")


def test_kernel_death_makes_interchange_and_pools_exit(tmp_path: Any) -> None:
    paths = [p for p in sys.path if p]
    script = KERNEL.format(paths=paths, run_dir=str(tmp_path))
    kernel = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert kernel.stdout is not None
        line = kernel.stdout.readline()
        pids = json.loads(line)
        assert len(pids) >= 3  # interchange, block script, pool, worker
        kernel.kill()
        kernel.wait(timeout=5)
        left = wait_gone(pids, timeout=10)
        assert left == [], [psutil.Process(p).cmdline() for p in left]
    finally:
        kernel.kill()
        kernel.wait()
        kernel.stdout.close()  # type: ignore[union-attr]
        for pid in psutil.pids():
            with_cmd = ""
            try:
                with_cmd = " ".join(psutil.Process(pid).cmdline())
            except psutil.Error:
                continue
            if str(tmp_path) in with_cmd:
                os.kill(pid, signal.SIGKILL)
