"""The ZMQ executor end to end on real processes: values, exceptions, events, output.

Each test starts an interchange, a LocalProvider block (a pool) and its workers, and
drives the executor directly through the executor contract (start / submit / shutdown).
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import parsl
import psutil
import pytest
from htex_fixtures import Maker, call, executors, loaded_kernels

from livedag import python_app
from livedag.errors import (
    DeserializationError,
    ExecutorError,
    NoDataFlowKernelError,
    SerializationError,
    WorkerImportError,
)
from livedag.events import BlockChanged, TaskOutput, TaskResources, TaskStateChanged
from livedag.executors.base import Reports
from livedag.executors.htex import IGNORED_PARAMETERS, HighThroughputExecutor
from livedag.providers import LocalProvider
from livedag.task import TaskState

pytestmark = pytest.mark.timeout(60)

@pytest.fixture
def htex(tmp_path: Any) -> Iterator[Maker]:
    yield from executors(tmp_path)


@pytest.fixture
def load(tmp_path: Any) -> Iterator[Any]:
    yield from loaded_kernels(tmp_path)



def double(x: int) -> int:
    return 2 * x


def test_signature_keeps_parsl_names_and_defaults() -> None:
    ours = inspect.signature(HighThroughputExecutor.__init__).parameters
    theirs = inspect.signature(parsl.HighThroughputExecutor.__init__).parameters
    assert list(ours) == list(theirs)
    differ = {"provider", "manager_selector"}  # Parsl's default objects; ours are None
    for name, param in theirs.items():
        if name not in differ:
            assert ours[name].default == param.default, name
    assert set(IGNORED_PARAMETERS) <= set(ours)


def test_value_comes_back_and_first_result_is_quick(htex: Any) -> None:
    t0 = time.monotonic()
    ex, events = htex()
    assert ex.submit(call(double, 21)).result(timeout=10) == 42
    # start, block, pool, worker: ~0.4 s on an idle 2-core machine; no strategy tick.
    assert time.monotonic() - t0 < 5.0
    events.wait_for(lambda: any(e.state == "running" for e in events.of(BlockChanged)))
    states = [e.state for e in events.of(BlockChanged)]
    assert states[:2] == ["pending", "running"]


def test_running_event_names_host_pid_block_and_job(htex: Any) -> None:
    ex, events = htex()
    c = call(os.getpid)
    pid = ex.submit(c).result(timeout=10)
    (running,) = events.of(TaskStateChanged, c.task_id)
    assert running.state is TaskState.RUNNING and running.try_number == 1
    assert running.pid == pid and running.host
    assert running.block_id == "0" and running.job_id == ex.blocks.job_of("0")


def raises_value_error(x: int) -> None:
    raise ValueError(f"bad value {x}")


def test_exception_is_the_original_with_its_remote_traceback(htex: Any) -> None:
    ex, _ = htex()
    fut = ex.submit(call(raises_value_error, 7))
    with pytest.raises(ValueError, match="bad value 7") as info:
        fut.result(timeout=10)
    text = "".join(traceback.format_exception(info.value))
    assert "raises_value_error" in text  # the app's own frame, from the worker


def test_many_tasks_all_come_back(htex: Any) -> None:
    ex, _ = htex()
    futs = [ex.submit(call(double, i)) for i in range(2000)]
    assert [f.result(timeout=30) for f in futs] == [2 * i for i in range(2000)]


def test_large_payloads_travel_both_ways(htex: Any) -> None:
    ex, _ = htex()
    blob = os.urandom(8 << 20)
    futs = [ex.submit(call(bytes.upper, blob)) for _ in range(3)]
    for f in futs:
        assert f.result(timeout=30) == blob.upper()


def chatty(n: int) -> str:
    import subprocess

    print("from python", n)
    print("to stderr", file=sys.stderr)
    os.write(1, b"from fd 1\n")
    subprocess.run(["echo", "from a subprocess"], check=True)
    return "ok"


def test_output_of_python_fds_and_subprocesses_is_captured_per_task(htex: Any) -> None:
    ex, events = htex()
    c = call(chatty, 5)
    assert ex.submit(c).result(timeout=10) == "ok"
    out = "".join(e.text for e in events.of(TaskOutput, c.task_id) if e.stream == "stdout")
    err = "".join(e.text for e in events.of(TaskOutput, c.task_id) if e.stream == "stderr")
    assert out == "from python 5\nfrom fd 1\nfrom a subprocess\n"
    assert err == "to stderr\n"
    # Output is published before the result resolves the future, and after RUNNING.
    kinds = [type(e).__name__ for e in events.items if getattr(e, "task_id", None) == c.task_id]
    assert kinds[0] == "TaskStateChanged"


def slow_printer(path: str) -> None:
    print("first line")
    while not os.path.exists(path):
        time.sleep(0.01)
    print("second line")


def test_output_streams_while_the_task_runs(htex: Any, tmp_path: Any) -> None:
    ex, events = htex()
    go = str(tmp_path / "go")
    c = call(slow_printer, go)
    fut = ex.submit(c)
    events.wait_for(lambda: any("first line" in e.text for e in events.of(TaskOutput, c.task_id)))
    assert not fut.done()
    open(go, "w").close()
    fut.result(timeout=10)
    text = "".join(e.text for e in events.of(TaskOutput, c.task_id))
    assert text == "first line\nsecond line\n"


def floods(n: int) -> int:
    sys.stdout.write("x" * n)
    return n


def test_output_is_bounded_per_task(htex: Any) -> None:
    ex, events = htex()
    c = call(floods, 6 << 20)
    assert ex.submit(c).result(timeout=30) == 6 << 20
    texts = [e.text for e in events.of(TaskOutput, c.task_id)]
    assert max(len(t) for t in texts) <= 64 << 10
    total = "".join(texts)
    assert total.count("x") == 4 << 20
    assert "bytes of stdout were dropped" in total


def test_unpicklable_argument_fails_at_submit_with_its_name(htex: Any) -> None:
    import threading

    ex, _ = htex()
    fut = ex.submit(call(double, threading.Lock()))
    with pytest.raises(SerializationError, match="argument 0"):
        fut.result(timeout=5)


def _refuse_to_rebuild() -> None:
    raise ValueError("this object cannot be rebuilt outside a worker")


class BuiltOnlyInWorkers:
    """Pickles in a worker as a call that fails when the kernel unpickles it."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        if "PARSL_WORKER_RANK" in os.environ:
            return (_refuse_to_rebuild, ())
        return (BuiltOnlyInWorkers, ())


def make_built_only_in_workers() -> BuiltOnlyInWorkers:
    return BuiltOnlyInWorkers()


def test_result_the_kernel_cannot_unpickle_names_its_task_and_the_cause(htex: Any) -> None:
    ex, _ = htex()
    c = call(make_built_only_in_workers)
    with pytest.raises(DeserializationError) as info:
        ex.submit(c).result(timeout=10)
    text = str(info.value)
    assert text.startswith(f"task {c.task_id} 'make_built_only_in_workers': its result")
    assert "cannot be rebuilt outside a worker" in text and "__reduce__" in text
    assert isinstance(info.value.__cause__, ValueError)
    assert ex.submit(call(double, 4)).result(timeout=10) == 8  # the executor carries on


def test_missing_module_names_the_workers_python_and_path(htex: Any, tmp_path: Any) -> None:
    # A module only the kernel can import (its path is added after the blocks started):
    # the worker cannot unpickle a value of it.
    ex, _ = htex()
    mod = tmp_path / "kernel_only_mod.py"
    mod.write_text("class Thing:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import kernel_only_mod  # type: ignore[import-not-found]

        fut = ex.submit(call(repr, kernel_only_mod.Thing()))
        with pytest.raises(WorkerImportError) as info:
            fut.result(timeout=10)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("kernel_only_mod", None)
    err = info.value
    assert isinstance(err, ModuleNotFoundError)
    assert err.module == "kernel_only_mod" and err.python == sys.executable
    assert "sys.path" in str(err) and err.sys_path


def test_shutdown_fails_outstanding_tasks_and_later_submits(htex: Any) -> None:
    ex, _ = htex()
    fut = ex.submit(call(time.sleep, 30))
    time.sleep(0.5)
    ex.shutdown()
    with pytest.raises(ExecutorError, match="shut down"):
        fut.result(timeout=5)
    with pytest.raises(ExecutorError):
        ex.submit(call(double, 1)).result(timeout=5)


@python_app
def plus_one(x: int) -> int:
    return x + 1


def calls_an_app(x: int) -> int:
    return plus_one(x).result()  # type: ignore[no-any-return]


def test_an_app_called_inside_a_task_says_where_and_what_to_do(htex: Any) -> None:
    ex, _ = htex()
    exc = ex.submit(call(calls_an_app, 1)).exception(timeout=30)
    assert isinstance(exc, NoDataFlowKernelError)
    text = str(exc)
    assert text.startswith("Must first load config: an app was called inside a task, in "
                           "worker process ")
    assert "make the calling app a @join_app that returns the futures" in text


def test_cancel_withdraws_a_task_that_waits(htex: Any) -> None:
    ex, _ = htex(max_workers_per_node=1)
    blocker = ex.submit(call(time.sleep, 1.5))
    time.sleep(0.5)  # the blocker runs; the next task waits in the interchange
    waiting = call(double, 3)
    fut = ex.submit(waiting)
    assert ex.cancel(waiting.task_id) is True
    assert fut.cancelled()
    assert blocker.result(timeout=10) is None
    assert ex.cancel(waiting.task_id) is False


def test_logs_go_under_the_run_dir(htex: Any) -> None:
    ex, _ = htex()
    ex.submit(call(double, 1)).result(timeout=10)
    logdir = ex.logdir
    assert os.path.exists(os.path.join(logdir, "interchange.log"))
    pools = [os.path.join(r, f) for r, _, fs in os.walk(logdir) for f in fs if f == "pool.log"]
    assert len(pools) == 1
    deadline = time.monotonic() + 10  # the second worker may still be starting
    while time.monotonic() < deadline:
        workers = [f for _, _, fs in os.walk(logdir) for f in fs if f.startswith("worker-")]
        if len(workers) == 2:
            break
        time.sleep(0.05)
    assert sorted(workers) == ["worker-0.log", "worker-1.log"]
    assert os.stat(os.path.join(logdir, "secret")).st_mode & 0o777 == 0o600


def test_the_interchange_ignores_a_jupyter_interrupt_and_is_out_of_its_reach(
    htex: Any,
) -> None:
    # Jupyter interrupts a cell with SIGINT to the kernel's process group (a real kernel:
    # tests/jupyter/test_extension.py). The interchange is not in it, and ignores SIGINT.
    ex, _ = htex()
    ix = ex.interchange_proc
    assert ix is not None and os.getpgid(ix.pid) != os.getpgid(0)
    os.kill(ix.pid, signal.SIGINT)
    assert ex.submit(call(os.getpid)).result(timeout=10) != os.getpid()
    assert ix.poll() is None


def test_events_are_ordered_running_output_then_result(htex: Any) -> None:
    ex, events = htex()
    seen: list[str] = []

    def record(e: Any) -> None:
        events(e)
        seen.append(type(e).__name__)

    ex.publish = record
    ex.reports = Reports(record)  # running and resources, as events (Reports)
    c = call(chatty, 1)
    fut = ex.submit(c)
    fut.add_done_callback(lambda f: seen.append("done"))
    fut.result(timeout=10)
    task_seen = [s for s in seen if s != "BlockChanged"]
    assert task_seen[0] == "TaskStateChanged" and task_seen[-2:] == ["TaskResources", "done"]
    assert set(task_seen[1:-2]) == {"TaskOutput"}


def burn_cpu(seconds: float) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def hold_memory(mib: int) -> int:
    block = bytearray(mib << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1  # touch every page: resident, not just reserved
    return len(block)


def burn_in_child(seconds: float) -> None:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", f"import time\nt = time.process_time()\n"
                    f"while time.process_time() - t < {seconds}: pass"], check=True)


def test_each_try_reports_its_cpu_time_peak_memory_and_wall_time(htex: Any) -> None:
    ex, events = htex(max_workers_per_node=1)  # one worker: "small" runs after "mem" on it
    calls = {"cpu": call(burn_cpu, 0.3), "mem": call(hold_memory, 150),
             "small": call(hold_memory, 1), "child": call(burn_in_child, 0.3)}
    for c in calls.values():
        ex.submit(c).result(timeout=30)
    used = {name: events.of(TaskResources, c.task_id) for name, c in calls.items()}
    assert all(len(u) == 1 for u in used.values()), used
    cpu, mem, small, child = (used[name][0] for name in ("cpu", "mem", "small", "child"))
    assert 0.25 <= cpu.cpu_time < 1.0 and cpu.wall_time >= 0.25
    assert mem.peak_rss >= 150 << 20
    # The next task on that worker starts from a reset high-water mark, not the old peak.
    assert 0 < small.peak_rss < 100 << 20
    assert child.cpu_time >= 0.25  # a subprocess's CPU counts for the task that waited on it


def worker_placement() -> tuple[str, str, list[int], str]:
    return (os.environ["PARSL_WORKER_RANK"], os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            sorted(os.sched_getaffinity(0)), os.environ.get("OMP_NUM_THREADS", ""))


def test_accelerators_and_affinity_pin_each_worker(htex: Any) -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs two cores")
    ex, _ = htex(max_workers_per_node=8, available_accelerators=["gpu-a", "gpu-b"],
                 cpu_affinity="block")
    seen = {}
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        futs = [ex.submit(call(worker_placement)) for _ in range(8)]
        for f in futs:
            rank, gpu, mine, omp = f.result(timeout=10)
            seen[rank] = (gpu, mine, omp)
    assert set(seen) == {"0", "1"}  # two accelerators: two workers, not eight
    per = len(cores) // 2
    for rank, (gpu, mine, omp) in seen.items():
        r = int(rank)
        assert gpu == ["gpu-a", "gpu-b"][r]
        assert mine == cores[per * r : per * (r + 1)] and omp == str(per)


def interchange_links(pid: int) -> dict[str, int]:
    """How many connections the pool `pid` holds, by kind (tcp, unix)."""
    proc = psutil.Process(pid)
    return {kind: len(proc.net_connections(kind=kind)) for kind in ("tcp", "unix")}


def test_local_pools_connect_over_a_unix_socket_and_fall_back_to_zmq(htex: Any) -> None:
    ex, events = htex(provider=LocalProvider(init_blocks=1, max_blocks=2), strategy=None,
                      max_workers_per_node=1)
    first = ex.submit(call(os.getppid)).result(timeout=10)  # a worker's parent: its pool
    assert interchange_links(first) == {"tcp": 0, "unix": 1}
    # A pool that cannot reach the socket (here: a wrong name) uses zmq over TCP.
    ex._local_socket = "livedag-no-such-socket"
    ex.scale_out_one()
    events.wait_for(lambda: ("1", "running") in block_states(events), timeout=20)
    slow = ex.submit(call(time.sleep, 1.0))
    pools = {ex.submit(call(os.getppid)).result(timeout=10) for _ in range(20)}
    slow.result(timeout=10)
    (second,) = pools - {first}  # while one pool sleeps, the other runs the rest
    assert interchange_links(second) == {"tcp": 1, "unix": 0}
    with open(ex.interchange_log) as f:
        assert f.read().count("registered") == 2


def block_states(events: Any) -> list[tuple[str, str]]:
    return [(e.block_id, e.state) for e in events.of(BlockChanged)]


def test_strategy_scales_out_to_cover_outstanding_tasks(htex: Any) -> None:
    ex, events = htex(provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=2),
                      max_workers_per_node=1, strategy_period=0.2)
    futs = [ex.submit(call(time.sleep, 0.5)) for _ in range(4)]
    for f in futs:
        f.result(timeout=20)
    states = block_states(events)
    assert ("0", "running") in states and ("1", "running") in states
    assert not any(b == "2" for b, _ in states)  # max_blocks=2


def test_idle_block_is_scaled_in_and_a_new_task_brings_one_back(htex: Any) -> None:
    ex, events = htex(provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
                      strategy_period=0.2, max_idletime=1.0)
    assert ex.submit(call(double, 1)).result(timeout=10) == 2
    events.wait_for(lambda: ("0", "scaled_in") in block_states(events), timeout=10)
    assert ex.blocks is not None and ex.blocks.live() == []
    t0 = time.monotonic()
    assert ex.submit(call(double, 2)).result(timeout=10) == 4
    assert time.monotonic() - t0 < 4  # started at once, not at the next strategy tick
    assert ("1", "running") in block_states(events)


def test_no_strategy_keeps_blocks(htex: Any) -> None:
    ex, events = htex(strategy=None, strategy_period=0.2, max_idletime=0.2)
    assert ex.submit(call(double, 1)).result(timeout=10) == 2
    time.sleep(1.0)
    assert ex.submit(call(double, 2)).result(timeout=10) == 4
    assert block_states(events) == [("0", "pending"), ("0", "running")]


def test_a_parsl_htex_config_works_unchanged_through_the_engine(tmp_path: Any) -> None:
    # The body of a typical Parsl config, with `parsl` replaced by `livedag`.
    import livedag
    from livedag.config import Config
    from livedag.executors import HighThroughputExecutor as HTEX
    from livedag.launchers import SingleNodeLauncher
    from livedag.providers import LocalProvider as Local

    config = Config(
        executors=[HTEX(
            label="htex_local", worker_debug=True, cores_per_worker=1, max_workers_per_node=2,
            poll_period=10, prefetch_capacity=0, heartbeat_period=2, heartbeat_threshold=10,
            worker_logdir_root=str(tmp_path / "worker_logs"), encrypted=True,
            provider=Local(
                init_blocks=1, min_blocks=0, max_blocks=1, nodes_per_block=1,
                launcher=SingleNodeLauncher(), worker_init="export LIVEDAG_TEST_INIT=yes",
                cmd_timeout=30, parallelism=1,
            ),
        )],
        run_dir=str(tmp_path / "runinfo"),
    )

    @livedag.python_app
    def init_seen() -> str:
        return os.environ.get("LIVEDAG_TEST_INIT", "")

    kernel = livedag.load(config)
    try:
        assert init_seen().result(timeout=20) == "yes"
    finally:
        kernel.cleanup()
        livedag.clear()
    logs = [f for _, _, fs in os.walk(tmp_path / "worker_logs") for f in fs]
    assert "pool.log" in logs and any(f.startswith("worker-") for f in logs)


@python_app
def add_after(a: int, b: int, delay: float = 0.0) -> int:
    time.sleep(delay)
    return a + b


def test_a_lone_result_is_read_by_the_thread_that_waits_for_it(load: Any) -> None:
    load(workers=1)
    assert add_after(0, 0).result(timeout=30) == 0  # the pool has joined
    here = threading.current_thread().name
    seen: list[str] = []
    for i in range(20):
        fut = add_after(i, 1)
        fut.add_done_callback(lambda f: seen.append(threading.current_thread().name))
        assert fut.result(timeout=10) == i + 1
    # A result that comes within SPIN_WINDOW is read here, with no hand-over from the
    # receiver thread (most of them; a slow moment of the machine leaves one to it).
    assert here in seen


def test_waiters_that_give_up_reading_still_get_their_results_at_once(load: Any) -> None:
    load(workers=2)
    assert add_after(0, 0).result(timeout=30) == 0
    fut = add_after(1, 2, 0.3)  # longer than a waiter reads for: the receiver takes over
    with pytest.raises(TimeoutError):
        fut.result(timeout=0)  # no wait at all means none
    t0 = time.monotonic()
    assert fut.result(timeout=10) == 3
    assert time.monotonic() - t0 < 1.0  # (within the task's 0.3 s and a hand-over)
    # Threads that wait at the same time take turns reading; each gets its own result.
    results: dict[int, list[int]] = {}

    def caller(k: int) -> None:
        results[k] = [add_after(k, i).result(timeout=30) for i in range(30)]

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {k: [k + i for i in range(30)] for k in range(4)}


def test_a_done_callback_may_wait_for_another_result(load: Any) -> None:
    load(workers=2)
    first, second = add_after(1, 1, 0.05), add_after(2, 2, 0.3)
    got: list[int] = []
    # Runs on the thread that handles first's result, which must then also read
    # second's (before: the receiver thread waited for itself, until the timeout).
    first.add_done_callback(lambda f: got.append(second.result(timeout=20)))
    assert first.result(timeout=20) == 2
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [4]
    assert add_after(5, 5).result(timeout=20) == 10  # and everything carries on
