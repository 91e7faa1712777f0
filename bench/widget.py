"""What the DAG widget costs the engine: N no-op tasks, without a subscriber, with a no-op
subscriber (the cost of building events at all), and with the widget subscribed (folding +
diffs every 150 ms). Figures, not asserts.

    python3 -m bench.widget [--tasks 5000] [--repeat 3] [--executor threads|htex]

`--executor threads` (the default) is the engine's cheapest path, where any per-task work
of a subscriber is the largest share; `--executor htex` is the ZMQ executor with a local
block, what `%load_ext livedag` gives a notebook.

Outside a kernel the widget's comm is ipywidgets' dummy comm: the fold, the layout, the
diffs and their JSON state are all computed, only the bytes are not sent.

Fairness: every mode starts its clock after a full garbage collection. Without it, each
measurement paid for collecting the run before it (a kernel's tasks and futures are freed
by the collector, not by reference counting), and the modes run in a fixed order, so
"none" always paid for the widget run before it. The no-op subscriber reads every event
(the kernel's events are built when read, livedag.events.Batch). The cost is given from
the medians too, with each mode's spread.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any


def _read_all(batch: Sequence[Any]) -> None:
    for _event in batch:
        pass


def _run(n: int, mode: str, executor: str = "threads") -> tuple[float, float]:
    """(tasks/s until every future is done, seconds until the view has caught up)."""
    import livedag
    from bench._common import livedag_executor
    from livedag import Config

    with tempfile.TemporaryDirectory() as run_dir:
        chosen = livedag_executor(executor)
        dfk = livedag.DataFlowKernel(Config(executors=[chosen], run_dir=run_dir,
                                            initialize_logging=False))
        widget: Any = None
        sub: Any = None
        try:
            if mode == "widget":
                from livedag.jupyter.widget import DagWidget

                widget = DagWidget(dfk)
            elif mode == "subscriber":
                sub = dfk.bus.subscribe(_read_all, name="noop")

            @livedag.python_app(data_flow_kernel=dfk)
            def noop() -> None:
                return None

            noop().result()  # the executor is up (a ZMQ block has joined), before the clock
            gc.collect()  # not the previous run's garbage (see the module docstring)
            t0 = time.perf_counter()
            futures = [noop() for _ in range(n)]
            for f in futures:
                f.result()
            elapsed = time.perf_counter() - t0
            catch_up = 0.0
            if widget is not None:
                widget.flush(60)
                catch_up = time.perf_counter() - t0 - elapsed
                assert widget.graph.legend().get("done") == n + 1, widget.graph.legend()
            return n / elapsed, catch_up
        finally:
            if widget is not None:
                widget.close()
            if sub is not None:
                sub.close()
            dfk.cleanup()


def main(argv: list[str] | None = None) -> None:
    from bench._common import paired_cost

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--executor", choices=("threads", "htex"), default="threads")
    args = parser.parse_args(argv)
    modes = ("none", "subscriber", "widget")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    lags: list[float] = []
    _run(200, "widget", args.executor)  # warm up imports (anywidget, networkx)
    for _ in range(args.repeat):
        for mode in modes:  # alternate, so that drift hits every mode alike
            rate, lag = _run(args.tasks, mode, args.executor)
            rates[mode].append(rate)
            if mode == "widget":
                lags.append(lag)
    name = "thread executor" if args.executor == "threads" else "ZMQ executor, one local block"
    print(f"{args.tasks} no-op tasks, {name}, best (median) of {args.repeat}")
    for mode in modes:
        r = rates[mode]
        print(f"  {mode:<11} {max(r):9.0f} tasks/s  ({statistics.median(r):.0f}; "
              f"all {min(r):.0f}-{max(r):.0f})")
    for label, pick in (("best", max), ("median", statistics.median)):
        base, with_widget = pick(rates["none"]), pick(rates["widget"])
        cost = 100 * (1 - with_widget / base)
        sub_cost = 100 * (1 - pick(rates["subscriber"]) / base)
        print(f"  {label:<6} widget / none: {with_widget / base:.3f}  (cost {cost:.1f}%); "
              f"subscriber / none: cost {sub_cost:.1f}%")
    # Each repeat runs the three modes back to back: the ratio within a repeat cancels
    # the drift of a shared machine, and its median is the steadiest figure here.
    for mode in ("subscriber", "widget"):
        print(f"  paired {mode} / none, median of {len(rates[mode])}: "
              f"{paired_cost(rates[mode], rates['none'])}")
    print(f"  view caught up {statistics.median(lags) * 1000:.0f} ms after the last task "
          "(median)")


if __name__ == "__main__":
    main()
