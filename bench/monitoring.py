"""What the run record costs: N no-op tasks, with and without it.

    python -m bench.monitoring [--tasks 10000] [--repeat 5] [--executor threads|htex]
    python -m bench.monitoring --instructions [--tasks 10000] [--executor ...]  (valgrind)

`--executor threads` (the default: 4 threads) is the engine's cheapest path, where any
per-task work of a subscriber is the largest share; `--executor htex` is the ZMQ executor
with one local block, what a notebook runs on.

Each measurement runs in a fresh interpreter (`--child`), alternating plain / recorded, so
the two never share a process, a thread pool or a warm cache. Reported per variant, best
and median of the repeats:

* plain: no subscriber, so the kernel builds no events at all;
* null subscriber: events built and delivered to a callback that reads each one and keeps
  none (the price of any subscriber, the widget's too);
* recorded: the run record (beside the thread executor its writer is a process of its
  own, niced: on two CPUs it competes with the tasks for CPU time, not for the GIL;
  beside the ZMQ executor it writes from the kernel's bus thread).

* tasks/s        submit N no-op apps, then wait for every result (the engine's clock);
* tasks/s + commit  the same, plus waiting until the record has committed the last event
  (the store's own backlog: what a reader in another process sees, and when).

The ratio recorded/plain is printed for both; the target is a cost <= 10 %. The ratio
recorded/null subscriber is the store's own share (what the record adds to any listener).
Short runs flatter a store that lags: work it has not done when the last result arrives
is not in "tasks/s" (it is in "+ commit"); --tasks 40000 shows the sustained cost. No
asserts.

Where the thread executor's cost goes (20,000 no-op tasks, 2 CPUs, 2026-12-08).

Wall clock, variants in fresh processes, paired medians of 21 (each +-3 points; the same
code measures 9-17 % from one hour to the next, as the machine's plain throughput moves
between ~40k and ~57k tasks/s while the record's cost in microseconds stays put):

* the kernel writing its records to the log, nobody reading:   8 %
* + a subscriber that pickles each batch into a pipe and drops: 12-13 %
* + the writer process folding and committing (the record):    15-17 %

Instructions, counted by valgrind (`--instructions`: 10,000 minus 5,000 tasks, collector off:
+-1,000 instructions, where wall clock is +-3 points): a plain no-op task is ~150,000
instructions of the kernel's process, a recorded one ~15,000 more:

* pickling the batch (bus thread):                          ~6,000 (40 %)
* the records on the hot path (bytecode, tuples):          ~4,000
* the log's list work (extend, slice, trim, free):         ~2,000
* the rest (allocation, the bus and acks threads' Python): ~3,000

That is ~40 values a task, ~300 instructions each from the hot path to the pipe. Tried,
no better: marshal (0.31 µs a task against pickle's 0.27), msgpack (0.52), array('d') of
an all-numbers layout (0.69), struct-packed records written on the hot path (the same
15,000 instructions, the packing costs what pickling saved, and slower on the wall
clock: 12.9 % against 9.2 % for pickling into a discarding reader), merging a try's resources
into its end record (one record fewer, the same instructions: holding and merging them
costs the bytecode it saves), batch delays from 2 ms to 200 ms. The writer process adds
~2-5 points on two CPUs (it competes for them: a process that reads and discards costs
that much less); folding the kernel's records field by field instead of building their
Events took its CPU from 11.5 to 9.5 µs a task.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

MARK = "@@MONITORING_BENCH@@ "


def _read_all(batch: Sequence[Any]) -> None:
    """The null subscriber: it reads every event and keeps none. (The kernel's events are
    built when a subscriber reads them, livedag.events.Batch: one that never looked at
    its batches would not pay for them, and no real subscriber is like that.)"""
    for _event in batch:
        pass


def child(variant: str, n: int, executor: str = "threads", collector: bool = True) -> None:
    import livedag
    from bench._common import livedag_executor

    @livedag.python_app
    def noop() -> None:
        return None

    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as run_dir:
        monitoring = None
        if variant == "recorded":
            from livedag.monitoring import RunRecord

            monitoring = RunRecord()
        dfk = livedag.load(livedag.Config(executors=[livedag_executor(executor, threads=4)],
                                          run_dir=run_dir, monitoring=monitoring,
                                          initialize_logging=False))
        if variant == "events":  # the events are built, delivered and read, then dropped
            dfk.bus.subscribe(_read_all, name="bench-null")
        for f in [noop() for _ in range(200)]:  # warm up: threads started, code paths hot
            f.result()
        if not collector:
            gc.disable()
        start = time.perf_counter()
        futures = [noop() for _ in range(n)]
        for f in futures:
            f.result()
        engine = time.perf_counter() - start
        committed = engine
        if variant == "recorded":
            from livedag.monitoring import recorder_of

            recorder = recorder_of(dfk)
            assert recorder is not None
            recorder.flush(120)
            committed = time.perf_counter() - start
            batches = recorder.batches
        else:
            batches = 0
        dfk.cleanup()
        livedag.clear()
        size = 0
        if variant == "recorded":
            size = sum(os.path.getsize(os.path.join(dfk.run_dir, f))
                       for f in os.listdir(dfk.run_dir) if f.startswith("monitoring.db"))
    print(MARK + json.dumps({"engine": n / engine, "committed": n / committed,
                             "batches": batches, "db_bytes": size}))


def measure(variant: str, n: int, executor: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "bench.monitoring", "--child", variant,
                           "--tasks", str(n), "--executor", executor],
                          capture_output=True, text=True, timeout=600, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith(MARK))
    result: dict[str, float] = json.loads(line[len(MARK):])
    return result


def instructions(n: int, executor: str) -> None:
    """Instructions per task of the kernel's process, counted by valgrind: each variant at
    n/2 and n tasks, the difference over n/2 (start-up cancels out), the collector off
    (what it costs depends on what the benchmark keeps: the wall clock has that). Other
    processes (the record's writer, the ZMQ executor's workers) are not counted."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("--instructions needs valgrind (apt-get install valgrind)")
    print(f"instructions per no-op task, kernel's process, {executor}, collector off "
          f"({n // 2} and {n} tasks)")
    per: dict[str, float] = {}
    for variant in ("plain", "events", "recorded"):
        counts = []
        for tasks in (n // 2, n):
            done = subprocess.run(
                [valgrind, "--tool=cachegrind", "--cache-sim=no",
                 "--cachegrind-out-file=/dev/null", sys.executable, "-m", "bench.monitoring",
                 "--child", variant, "--tasks", str(tasks), "--executor", executor,
                 "--no-collector"], capture_output=True, text=True, timeout=1800, check=False)
            found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
            if done.returncode or found is None:
                sys.exit(f"{variant}, {tasks} tasks, under valgrind: exit {done.returncode}\n"
                         + done.stderr[-3000:])
            counts.append(int(found.group(1).replace(",", "")))
        per[variant] = (counts[1] - counts[0]) / (n - n // 2)
        extra = per[variant] - per["plain"]
        print(f"{variant:10}{per[variant]:>12,.0f}   {extra:+10,.0f} ({extra / per['plain']:+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--executor", choices=("threads", "htex"), default="threads")
    parser.add_argument("--child", choices=("plain", "events", "recorded"))
    parser.add_argument("--no-collector", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per task with valgrind (steadier than time)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tasks, args.executor, collector=not args.no_collector)
        return
    if args.instructions:
        instructions(args.tasks, args.executor)
        return
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "events": [], "recorded": []}
    for _ in range(args.repeat):
        for variant, results in runs.items():
            results.append(measure(variant, args.tasks, args.executor))
    name = ("thread executor (4 threads)" if args.executor == "threads"
            else "ZMQ executor (one local block)")
    print(f"{args.tasks} no-op tasks, {name}, {args.repeat} runs each, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'':28}{'best':>10}{'median':>10}")
    table: dict[str, float] = {}
    for variant, key, label in (("plain", "engine", "plain tasks/s"),
                                ("events", "engine", "null subscriber tasks/s"),
                                ("recorded", "engine", "recorded tasks/s"),
                                ("recorded", "committed", "recorded tasks/s + commit")):
        values = [r[key] for r in runs[variant]]
        table[label] = statistics.median(values)
        print(f"{label:28}{max(values):>10.0f}{statistics.median(values):>10.0f}")
    plain = table["plain tasks/s"]
    for label in ("null subscriber tasks/s", "recorded tasks/s", "recorded tasks/s + commit"):
        cost = 1 - table[label] / plain
        print(f"ratio {label} / plain (median): {table[label] / plain:.3f}  (cost {cost:+.1%})")
    # Each repeat runs the variants back to back: a ratio within a repeat cancels the
    # drift of a shared machine, and its median is the steadiest figure here.
    from bench._common import paired_cost

    plains = [r["engine"] for r in runs["plain"]]
    for variant, key, label in (("events", "engine", "null subscriber tasks/s"),
                                ("recorded", "engine", "recorded tasks/s"),
                                ("recorded", "committed", "recorded tasks/s + commit")):
        print(f"paired {label} / plain, median of {len(plains)}: "
              f"{paired_cost([r[key] for r in runs[variant]], plains)}")
    store = table["recorded tasks/s"] / table["null subscriber tasks/s"]
    print(f"ratio recorded tasks/s / null subscriber (median): {store:.3f}  "
          f"(the store's own cost {1 - store:+.1%})")
    rec = runs["recorded"][-1]
    print(f"record: {rec['batches']:.0f} transactions, {rec['db_bytes'] / 1e6:.1f} MB on disk")


if __name__ == "__main__":
    main()
