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
chain      a 1000-step chain (each task takes the previous future). Seconds.
memory     many no-ops in batches of 1,000 whose futures are dropped: the client's RSS growth
           from after the first 10% of tasks to the end (MiB; flat is ~0).
payload    also reports the client's peak RSS (MiB; the 2 x 100 MiB of inputs and results
           the workload itself holds are the same for both engines).
stream     the payload workload when the user keeps nothing (the inputs submitted in one
           burst and dropped, no future kept, each result checked and dropped by a
           done-callback as it arrives): seconds, and how much the client's peak RSS rose
           above its size before the run (MiB): the engine's own holding of payloads. The
           interchange's rise in the same run is shown beside it: the queued payloads
           have to be somewhere.

After the table, the same no-op workload on a plain concurrent.futures.ProcessPoolExecutor
(max_workers = CPU count) gives the floor a process executor can reach here, and livedag's
ratio to it.

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
    return {"seconds": elapsed, "mib_per_s": 2 * n * size / MiB / elapsed,
            "peak_rss_mib": _peak_rss_mib()}


def stream(lib: ModuleType, n: int, size: int) -> dict[str, float]:
    """1 MiB in and out per task, but the user keeps nothing: the inputs, cheap to make,
    are submitted in one burst and dropped, the futures are not kept, and each result is
    checked (against a digest of what it must be) and dropped by a done-callback as it
    arrives. What the client process grows by is then the engine's own holding of
    payloads; the interchange's growth is reported beside it (it holds the queued ones)."""
    import functools
    import gc
    import hashlib
    import threading

    apps = Apps(lib)
    ended = threading.Semaphore(0)
    wrong: list[str] = []

    def check(digest: bytes, fut: Any) -> None:
        try:
            if hashlib.blake2b(fut.result()).digest() != digest:
                wrong.append("a result that is not its input rotated")
        except Exception as exc:  # shown by _check below, with the engine's words
            wrong.append(repr(exc))
        ended.release()

    with loaded(lib, htex_config) as dfk:
        apps.noop().result()
        interchange = dfk.executors["htex"].interchange_proc.pid
        gc.collect()
        before, ix_before = _rss_mib(), _rss_mib(interchange)
        _reset_peak()
        _reset_peak(interchange)
        start = time.perf_counter()
        for i in range(n):
            data = i.to_bytes(8, "little") * (size // 8)  # unique per task, made in 0.1 ms
            digest = hashlib.blake2b(data[1:] + data[:1]).digest()
            apps.reflect(data).add_done_callback(functools.partial(check, digest))
            del data
        for _ in range(n):
            ended.acquire()
        elapsed = time.perf_counter() - start
        peak, ix_peak = _peak_rss_since_reset_mib(), _peak_rss_since_reset_mib(interchange)
    _check(not wrong, f"streamed payloads: {wrong[:3]}")
    return {"seconds": elapsed, "added_mib": peak - before,
            "interchange_added_mib": ix_peak - ix_before}


def _reset_peak(pid: int | str = "self") -> None:
    """Start a process's RSS high-water mark from now (Linux)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def _peak_rss_since_reset_mib(pid: int | str = "self") -> float:
    return _status_kib(pid, "VmHWM:") / 1024


def _status_kib(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib(pid: int | str = "self") -> float:
    return _status_kib(pid, "VmRSS:") / 1024


def chain(lib: ModuleType, n: int) -> dict[str, float]:
    apps = Apps(lib)
    with loaded(lib, htex_config):
        apps.noop().result()
        start = time.perf_counter()
        fut = apps.inc(0)
        for _ in range(n - 1):
            fut = apps.inc(fut)
        value = fut.result()
        elapsed = time.perf_counter() - start
    _check(value == n, "chain end")
    return {"seconds": elapsed}


def memory(lib: ModuleType, n: int) -> dict[str, float]:
    import gc

    apps = Apps(lib)
    batch = 1000
    with loaded(lib, htex_config):
        apps.noop().result()
        early = 0.0
        for done in range(0, n, batch):
            futures = [apps.noop() for _ in range(batch)]
            for f in futures:
                f.result()
            del futures
            if done + batch == max(batch, n // 10):
                gc.collect()
                early = _rss_mib()
        gc.collect()
        late = _rss_mib()
    return {"growth_mib": late - early}


def procpool_noop(n: int) -> float:
    """Tasks/s of the same no-op workload on concurrent.futures.ProcessPoolExecutor."""
    import concurrent.futures
    import os

    with concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        pool.submit(_noop).result()
        start = time.perf_counter()
        futures = [pool.submit(_noop) for _ in range(n)]
        for f in futures:
            f.result()
        return n / (time.perf_counter() - start)


def _noop() -> None:
    return None


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
              Metric("mib_per_s", "htex payload rate, {n} tasks", "MiB/s", True),
              Metric("peak_rss_mib", "htex client peak RSS, {n} x 1 MiB", "MiB", False))),
    Workload("stream", MODULE, "stream", {"n": 100, "size": MiB}, {"n": 20, "size": MiB},
             (Metric("seconds", "htex 1 MiB in + out, {n} tasks, nothing kept", "s", False),
              Metric("added_mib", "htex client RSS added, {n} x 1 MiB, nothing kept", "MiB",
                     False),
              Metric("interchange_added_mib", "htex interchange RSS added, same run", "MiB",
                     False))),
    Workload("chain", MODULE, "chain", {"n": 1000}, {"n": 200},
             (Metric("seconds", "htex {n:,}-step chain", "s", False),)),
    Workload("memory", MODULE, "memory", {"n": 100_000}, {"n": 10_000},
             (Metric("growth_mib", "htex client RSS growth over {n:,} dropped tasks", "MiB",
                     False),)),
    Workload("load", MODULE, "load_first_result", {}, {},
             (Metric("ms", "htex load() -> first result", "ms", False),)),
]


def print_procpool_baseline(argv: list[str]) -> None:
    """The no-op workload on ProcessPoolExecutor, and livedag's ratio to it (in a child)."""
    import subprocess

    n = 1000 if "--quick" in argv else 5000
    code = f"from bench.htex import procpool_noop; print(procpool_noop({n}))"
    rates = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True, timeout=300, cwd=Path(__file__).parent.parent)
                   .stdout.strip()) for _ in range(3)]
    ours = [float(subprocess.run([sys.executable, "-c", CHILD_LIVEDAG.format(n=n)],
                                 capture_output=True, text=True, check=True, timeout=300,
                                 cwd=Path(__file__).parent.parent).stdout.strip().splitlines()[-1])
            for _ in range(3)]
    print(f"\nProcessPoolExecutor no-op throughput, {n:,} tasks: {max(rates):,.0f} tasks/s "
          f"(best of 3); livedag htex: {max(ours):,.0f} tasks/s; "
          f"livedag / ProcessPoolExecutor = {max(ours) / max(rates):.2f}x")


CHILD_LIVEDAG = (
    "import livedag; from bench.htex import noop_throughput; "
    "print(noop_throughput(livedag, {n})['tasks_per_s'])"
)


if __name__ == "__main__":
    code = main_for("livedag vs Parsl: HighThroughputExecutor, LocalProvider", WORKLOADS)
    if "--only" not in sys.argv or "procpool" in sys.argv:
        print_procpool_baseline(sys.argv[1:])
    sys.exit(code)
