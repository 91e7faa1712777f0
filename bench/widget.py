"""What the DAG widget costs the engine: N no-op tasks on the thread executor, without a
subscriber, with a no-op subscriber (the cost of building events at all), and with the
widget subscribed (folding + diffs every 150 ms). Figures, not asserts.

    python3 -m bench.widget [--tasks 5000] [--repeat 3]

Outside a kernel the widget's comm is ipywidgets' dummy comm: the fold, the layout, the
diffs and their JSON state are all computed, only the bytes are not sent.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any


def _run(n: int, mode: str) -> tuple[float, float]:
    """(tasks/s until every future is done, seconds until the view has caught up)."""
    import livedag
    from livedag import Config, ThreadPoolExecutor

    with tempfile.TemporaryDirectory() as run_dir:
        dfk = livedag.DataFlowKernel(Config(executors=[ThreadPoolExecutor(label="threads")],
                                            run_dir=run_dir, initialize_logging=False))
        widget: Any = None
        sub: Any = None
        try:
            if mode == "widget":
                from livedag.jupyter.widget import DagWidget

                widget = DagWidget(dfk)
            elif mode == "subscriber":
                sub = dfk.bus.subscribe(lambda batch: None, name="noop")

            @livedag.python_app(data_flow_kernel=dfk)
            def noop() -> None:
                return None

            t0 = time.perf_counter()
            futures = [noop() for _ in range(n)]
            for f in futures:
                f.result()
            elapsed = time.perf_counter() - t0
            catch_up = 0.0
            if widget is not None:
                widget.flush(60)
                catch_up = time.perf_counter() - t0 - elapsed
                assert widget.graph.legend().get("done") == n, widget.graph.legend()
            return n / elapsed, catch_up
        finally:
            if widget is not None:
                widget.close()
            if sub is not None:
                sub.close()
            dfk.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    modes = ("none", "subscriber", "widget")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    lags: list[float] = []
    _run(200, "widget")  # warm up imports (anywidget, networkx) outside the clock
    for _ in range(args.repeat):
        for mode in modes:  # alternate, so that drift hits every mode alike
            rate, lag = _run(args.tasks, mode)
            rates[mode].append(rate)
            if mode == "widget":
                lags.append(lag)
    print(f"{args.tasks} no-op tasks, thread executor, best (median) of {args.repeat}")
    for mode in modes:
        r = rates[mode]
        print(f"  {mode:<11} {max(r):9.0f} tasks/s  ({statistics.median(r):.0f})")
    base, with_widget = max(rates["none"]), max(rates["widget"])
    cost = 100 * (1 - with_widget / base)
    print(f"  widget / none: {with_widget / base:.3f}  (cost {cost:.1f}%)")
    print(f"  widget / subscriber: {with_widget / max(rates['subscriber']):.3f}")
    print(f"  view caught up {statistics.median(lags) * 1000:.0f} ms after the last task "
          "(median)")


if __name__ == "__main__":
    main()
