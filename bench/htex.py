"""ZMQ-executor benchmarks: livedag vs Parsl, both on HighThroughputExecutor + LocalProvider.

Same harness as bench/engine.py (fresh child per run, alternation, best and median); the
configuration is ``Config(executors=[HighThroughputExecutor(label='htex',
provider=LocalProvider())])`` for both engines, every other argument at its default (so
Parsl runs with its default CurveZMQ encryption on loopback; livedag binds local blocks
to 127.0.0.1 and authenticates them with the run's secret instead).

noop_5k    submit 5000 no-op apps, then wait for all. Clock: first submit -> last result.
latency    one no-op at a time, 300 in sequence. Median and p95 in microseconds.
payload    100 apps, each given 1 MiB and returning a new 1 MiB. Seconds and MiB/s.
load       load(config) -> first result of a no-op (interchange, block, pool, worker start).

Run from the repository root:  python3 -m bench.htex [--quick] [--only latency]
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Metric, Workload, executors_module, loaded, main_for
from bench.engine import Apps, MiB, _check

MODULE = "bench.htex"


def htex_config(lib: ModuleType, run_dir: str) -> Any:
    providers = importlib.import_module(lib.__name__ + ".providers")
    executor = executors_module(lib).HighThroughputExecutor(
        label="htex", provider=providers.LocalProvider()
    )
    return lib.Config(executors=[executor], run_dir=run_dir)


def noop_throughput(lib: ModuleType, n: int) -> dict[str, float]:
    apps = Apps(lib)
    with loaded(lib, htex_config):
        apps.noop().result()
        start = time.perf_counter()
        futures = [apps.noop() for _ in range(n)]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - start
    _check(results == [None] * n, "no-op results")
    return {"tasks_per_s": n / elapsed}


def latency(lib: ModuleType, n: int) -> dict[str, float]:
    import statistics

    apps = Apps(lib)
    samples: list[float] = []
    with loaded(lib, htex_config):
        for _ in range(20):
            apps.noop().result()
        for _ in range(n):
            start = time.perf_counter()
            apps.noop().result()
            samples.append((time.perf_counter() - start) * 1e6)
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[-1]
    return {"median_us": statistics.median(samples), "p95_us": p95}


def payloads(lib: ModuleType, n: int, size: int) -> dict[str, float]:
    import random

    apps = Apps(lib)
    inputs = [random.Random(i).randbytes(size) for i in range(n)]
    with loaded(lib, htex_config):
        apps.noop().result()
        start = time.perf_counter()
        futures = [apps.reflect(data) for data in inputs]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - start
    _check(all(r == d[1:] + d[:1] for r, d in zip(results, inputs, strict=True)), "payloads")
    return {"seconds": elapsed, "mib_per_s": 2 * n * size / MiB / elapsed}


def load_first_result(lib: ModuleType) -> dict[str, float]:
    apps = Apps(lib)
    with tempfile.TemporaryDirectory(prefix=f"bench-{lib.__name__}-") as run_dir:
        config = htex_config(lib, run_dir)
        start = time.perf_counter()
        lib.load(config)
        apps.noop().result()
        elapsed = time.perf_counter() - start
        lib.dfk().cleanup()
        lib.clear()
    return {"ms": elapsed * 1000}


WORKLOADS = [
    Workload("noop_5k", MODULE, "noop_throughput", {"n": 5000}, {"n": 1000},
             (Metric("tasks_per_s", "htex no-op throughput, {n:,} tasks", "tasks/s", True),)),
    Workload("latency", MODULE, "latency", {"n": 300}, {"n": 50},
             (Metric("median_us", "htex latency, median of {n}", "µs", False),
              Metric("p95_us", "htex latency, p95 of {n}", "µs", False))),
    Workload("payload", MODULE, "payloads", {"n": 100, "size": MiB}, {"n": 20, "size": MiB},
             (Metric("seconds", "htex 1 MiB in + out, {n} tasks", "s", False),
              Metric("mib_per_s", "htex payload rate, {n} tasks", "MiB/s", True))),
    Workload("load", MODULE, "load_first_result", {}, {},
             (Metric("ms", "htex load() -> first result", "ms", False),)),
]


if __name__ == "__main__":
    sys.exit(main_for("livedag vs Parsl: HighThroughputExecutor, LocalProvider", WORKLOADS))
