"""Engine benchmarks: livedag vs Parsl, both on their default thread executor.

Every workload is written once, as a function of the engine module ``lib`` (``parsl`` or
``livedag``), and runs in a fresh child process per (engine, workload, repetition); see
bench/_common.py for the harness. Both engines get the same default configuration,
``Config(executors=[ThreadPoolExecutor()])`` (2 threads, label 'threads'), with only the
run_dir moved to a temp dir. What is measured, and where the clock starts and stops:

noop_1k, noop_10k  no-op throughput: submit N no-op apps, then wait for all results.
                   Clock: first submit -> last result. Reports tasks/s.
latency            submit -> result() of one no-op at a time, ~500 in sequence.
                   Reports the median and the 95th percentile in microseconds.
chain              a 1000-step chain: each app takes the previous app's future as its
                   argument. Clock: first submit -> result of the last. Seconds.
fanout             5000 independent apps, then one app given all their futures as
                   ``inputs=[...]``. Clock: first submit -> fan-in result. Seconds.
payload            200 apps, each given its own 1 MiB bytes argument and returning a new
                   1 MiB bytes (the argument rotated by one byte). Clock: first submit ->
                   last result. Seconds, and MiB/s counting both directions (2 MiB a task).
load               ``load(config)`` -> the first ``result()`` of a no-op, in a process
                   that has imported the engine but never loaded it. Milliseconds.

Except for `load`, each child loads the engine and runs one no-op before the clock starts,
so that what is timed is the steady state, not thread-pool start-up. Results are checked
(the chain must end at N, the fan-in must sum right, ...): a wrong answer is reported as
an error in the table instead of a figure. Cleanup is never timed.

Run from the repository root:  bench/run.sh [--quick] [--only chain,fanout] [--json out.json]
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as `python3 bench/engine.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Metric, Workload, executors_module, loaded, main_for

# Children import the workload functions from here (also when this file runs as __main__).
MODULE = "bench.engine"
MiB = 1024 * 1024
WARMUP_LATENCY_CALLS = 20


# ---------------------------------------------------------------------------------------
# Configuration and apps (built inside the child, after the engine is imported)
# ---------------------------------------------------------------------------------------


def thread_config(lib: ModuleType, run_dir: str) -> Any:
    """The engine's default thread-executor configuration; only run_dir is moved."""
    executors = executors_module(lib)
    return lib.Config(executors=[executors.ThreadPoolExecutor()], run_dir=run_dir)


class Apps:
    """The apps every workload uses, decorated with the engine's own ``python_app``."""

    def __init__(self, lib: ModuleType) -> None:
        # Typed as a plain decorator: the engines' own annotations are not what is tested.
        python_app: Callable[[Callable[..., Any]], Any] = lib.python_app

        @python_app
        def noop() -> None:
            return None

        @python_app
        def inc(x: int) -> int:
            return x + 1

        @python_app
        def total(inputs: Any = ()) -> int:
            return sum(inputs)

        @python_app
        def reflect(data: bytes) -> bytes:
            # A new object of the same size (rotated by one byte, ~0.1 ms per MiB), so the
            # result is not the argument handed back and the work per task stays small.
            return data[1:] + data[:1]

        self.noop, self.inc, self.total, self.reflect = noop, inc, total, reflect


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"wrong result: {what}")


# ---------------------------------------------------------------------------------------
# Workloads: each is f(lib, **params) -> {metric key: value}, run inside a child
# ---------------------------------------------------------------------------------------


def noop_throughput(lib: ModuleType, n: int) -> dict[str, float]:
    """Submit n no-ops, then wait for all of them."""
    apps = Apps(lib)
    with loaded(lib, thread_config):
        apps.noop().result()  # warm-up: executor threads started
        start = time.perf_counter()
        futures = [apps.noop() for _ in range(n)]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - start
    _check(results == [None] * n, "no-op results")
    return {"tasks_per_s": n / elapsed, "seconds": elapsed}


def latency(lib: ModuleType, n: int) -> dict[str, float]:
    """One no-op at a time: the cost of a round trip through the engine."""
    apps = Apps(lib)
    samples_ns: list[int] = []
    with loaded(lib, thread_config):
        for _ in range(WARMUP_LATENCY_CALLS):
            apps.noop().result()
        for _ in range(n):
            start = time.perf_counter_ns()
            apps.noop().result()
            samples_ns.append(time.perf_counter_ns() - start)
    samples_us = [ns / 1000 for ns in samples_ns]
    p95 = statistics.quantiles(samples_us, n=20, method="inclusive")[-1]
    return {"median_us": statistics.median(samples_us), "p95_us": p95}


def chain(lib: ModuleType, n: int) -> dict[str, float]:
    """n apps, each taking the previous one's future: dependency resolution, serially."""
    apps = Apps(lib)
    with loaded(lib, thread_config):
        apps.noop().result()
        start = time.perf_counter()
        future = apps.inc(0)
        for _ in range(n - 1):
            future = apps.inc(future)
        value = future.result()
        elapsed = time.perf_counter() - start
    _check(value == n, f"chain ended at {value}, expected {n}")
    return {"seconds": elapsed}


def fan_out_in(lib: ModuleType, n: int) -> dict[str, float]:
    """n independent apps, then one app that depends on all of them through inputs=."""
    apps = Apps(lib)
    with loaded(lib, thread_config):
        apps.noop().result()
        start = time.perf_counter()
        futures = [apps.inc(i) for i in range(n)]
        value = apps.total(inputs=futures).result()
        elapsed = time.perf_counter() - start
    expected = n * (n + 1) // 2  # sum of i + 1 for i in range(n)
    _check(value == expected, f"fan-in sum {value}, expected {expected}")
    return {"seconds": elapsed}


def payloads(lib: ModuleType, n: int, size: int) -> dict[str, float]:
    """n apps, each with its own `size`-byte argument and a new `size`-byte result."""
    apps = Apps(lib)
    # Distinct, incompressible inputs, made before the clock starts.
    inputs = [random.Random(i).randbytes(size) for i in range(n)]
    with loaded(lib, thread_config):
        apps.noop().result()
        start = time.perf_counter()
        futures = [apps.reflect(data) for data in inputs]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - start
    _check(all(r == d[1:] + d[:1] for r, d in zip(results, inputs, strict=True)), "payload bytes")
    moved_mib = 2 * n * size / MiB  # in and out
    return {"seconds": elapsed, "mib_per_s": moved_mib / elapsed}


def load_first_result(lib: ModuleType) -> dict[str, float]:
    """From load(config) to the first result, as a user's first cell would see it."""
    apps = Apps(lib)  # decorating is not part of it: Parsl apps bind the DFK at call time
    with tempfile.TemporaryDirectory(prefix=f"bench-{lib.__name__}-") as run_dir:
        config = thread_config(lib, run_dir)
        start = time.perf_counter()
        lib.load(config)
        apps.noop().result()
        elapsed = time.perf_counter() - start
        lib.dfk().cleanup()
        lib.clear()
    return {"ms": elapsed * 1000}


# ---------------------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------------------


def _workload(
    name: str, func: str, params: dict[str, Any], quick: dict[str, Any], *metrics: Metric
) -> Workload:
    return Workload(name, MODULE, func, params, quick, metrics)


def _rate(label: str) -> Metric:
    return Metric("tasks_per_s", label, "tasks/s", higher_is_better=True)


def _seconds(label: str) -> Metric:
    return Metric("seconds", label, "s", higher_is_better=False)


WORKLOADS: tuple[Workload, ...] = (
    _workload(
        "noop_1k",
        "noop_throughput",
        {"n": 1000},
        {"n": 200},
        _rate("no-op throughput, {n:,} tasks"),
    ),
    _workload(
        "noop_10k",
        "noop_throughput",
        {"n": 10_000},
        {"n": 1000},
        _rate("no-op throughput, {n:,} tasks"),
    ),
    _workload(
        "latency",
        "latency",
        {"n": 500},
        {"n": 100},
        Metric("median_us", "submit->result latency, median of {n}", "us", False),
        Metric("p95_us", "submit->result latency, p95 of {n}", "us", False),
    ),
    _workload("chain", "chain", {"n": 1000}, {"n": 100}, _seconds("{n:,}-step chain")),
    _workload(
        "fanout", "fan_out_in", {"n": 5000}, {"n": 500}, _seconds("{n:,}-task fan-out/fan-in")
    ),
    _workload(
        "payload",
        "payloads",
        {"n": 200, "size": MiB},
        {"n": 20, "size": MiB},
        _seconds("{n} x 1 MiB payloads"),
        Metric("mib_per_s", "{n} x 1 MiB payloads, in+out", "MiB/s", True),
    ),
    _workload(
        "load", "load_first_result", {}, {}, Metric("ms", "load -> first result", "ms", False)
    ),
)

TITLE = "livedag vs Parsl: engine benchmarks, ThreadPoolExecutor at its defaults"


def main(argv: list[str] | None = None) -> int:
    return main_for(TITLE, WORKLOADS, argv)


if __name__ == "__main__":
    sys.exit(main())
