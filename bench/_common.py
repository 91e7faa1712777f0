"""Shared harness for the livedag-vs-Parsl benchmarks (bench/engine.py, bench/htex.py, ...).

What lives here, so that every benchmark file only has to describe its workloads:

* the description of a workload (:class:`Workload`) and of the figures it reports
  (:class:`Metric`, with the direction that counts as "better");
* the child side: :func:`child_main` runs ONE workload function on ONE engine in a fresh
  interpreter and prints its figures as a JSON line on stdout;
* the parent side: :func:`run_child` starts such a child and reads that line back,
  :func:`run_suite` runs every (workload, engine) pair ``--repeat`` times, alternating the
  engines, and :func:`print_table` / :func:`write_json` report best and median of each;
* :func:`loaded`: load an engine's ``Config`` with a run_dir in a temp dir, clean up after.

Each measurement runs in its own fresh subprocess so that the two engines never share a
process, imported modules, thread pools, caches or a half-cleaned-up DataFlowKernel, and so
that a crash or a hang in one engine costs one table cell, not the run.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import importlib
import importlib.metadata
import json
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# The repository root: children run with it as their working directory so that
# `import bench` and `import livedag` resolve exactly as they do in the parent.
ROOT = Path(__file__).resolve().parent.parent

# Prefix of the one stdout line a child uses to report; anything else an engine prints
# to stdout is ignored.
RESULT_MARKER = "@@BENCH_RESULT@@ "

# Engines are compared as livedag vs parsl; the ratio is always oriented that way.
CANDIDATE = "livedag"
BASELINE = "parsl"
KNOWN_ENGINES = (CANDIDATE, BASELINE)

# Package versions worth knowing when reading a result (read from metadata, not imported).
CONTEXT_PACKAGES = ("parsl", "livedag", "typeguard", "dill", "cloudpickle", "pyzmq", "tblib")

# Environment variable that tells a child when to dump its threads' stacks (seconds).
DUMP_AFTER_ENV = "BENCH_DUMP_STACKS_AFTER_S"

# How long a child may take to exit after it has reported, before it is killed
# (a hang at exit is noted but does not void the figures it already gave).
EXIT_GRACE_S = 30.0
ORPHAN_GRACE_S = 3.0  # seconds an engine's processes may outlive its child before they are killed


# ---------------------------------------------------------------------------------------
# Describing workloads
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One figure a workload reports, e.g. tasks/s or seconds."""

    key: str  # key in the dict the workload function returns
    label: str  # str.format template, filled from the workload's parameters
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class Workload:
    """A named measurement: ``func(lib, **params)`` in module ``module`` returns its metrics."""

    name: str  # what --only selects
    module: str  # importable module that defines func, e.g. "bench.engine"
    func: str
    params: dict[str, Any]
    quick_params: dict[str, Any]
    metrics: tuple[Metric, ...]

    def params_for(self, quick: bool) -> dict[str, Any]:
        return dict(self.quick_params if quick else self.params)


# ---------------------------------------------------------------------------------------
# Child side (runs inside the fresh interpreter)
# ---------------------------------------------------------------------------------------


def executors_module(lib: ModuleType) -> ModuleType:
    """`parsl.executors` or `livedag.executors`, so workloads name executors the same way."""
    return importlib.import_module(lib.__name__ + ".executors")


ConfigFactory = Callable[[ModuleType, str], Any]


def livedag_executor(name: str, threads: int = 2) -> Any:
    """The executor a subscriber benchmark (widget, run record) runs on: "threads" (the
    engine's cheapest path, where a subscriber's share is largest) or "htex" (the ZMQ
    executor with one local block, what `%load_ext livedag` gives a notebook)."""
    if name == "htex":
        from livedag.executors import HighThroughputExecutor
        from livedag.providers import LocalProvider

        return HighThroughputExecutor(label="htex", provider=LocalProvider())
    from livedag.executors.threads import ThreadPoolExecutor

    return ThreadPoolExecutor(label="threads", max_threads=threads)


def paired_cost(rates: Sequence[float], bases: Sequence[float]) -> str:
    """The median of rate / base over repeats whose variants ran back to back (drift on
    a shared machine cancels within a pair), as "0.950  (cost 5.0%; quartiles ...)"."""
    paired = [r / b for r, b in zip(rates, bases, strict=True)]
    mid = statistics.median(paired)
    spread = ""
    if len(paired) >= 4:
        q = statistics.quantiles(paired, n=4)
        spread = f"; quartiles {q[0]:.3f}-{q[2]:.3f}"
    return f"{mid:.3f}  (cost {100 * (1 - mid):.1f}%{spread})"


@contextlib.contextmanager
def loaded(lib: ModuleType, make_config: ConfigFactory) -> Iterator[Any]:
    """Load ``make_config(lib, run_dir)`` with run_dir in a temp dir; cleanup and clear after.

    Cleanup is outside every timed region: it is measured by nothing here.
    """
    with tempfile.TemporaryDirectory(prefix=f"bench-{lib.__name__}-") as run_dir:
        dfk = lib.load(make_config(lib, run_dir))
        try:
            yield dfk
        finally:
            lib.dfk().cleanup()
            lib.clear()


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write("\n" + RESULT_MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


def child_main() -> None:
    """Entry point of a child: argv = [module, func, engine, params-as-JSON]."""
    module_name, func_name, engine, params_json = sys.argv[1:5]
    dump_after = os.environ.get(DUMP_AFTER_ENV)
    if dump_after:
        # Shortly before the parent's timeout, print every thread's stack to stderr, whose
        # tail the parent reports: a hang then says where it hangs.
        faulthandler.dump_traceback_later(float(dump_after), exit=False)
    try:
        lib = importlib.import_module(engine)
        func = getattr(importlib.import_module(module_name), func_name)
        metrics = func(lib, **json.loads(params_json))
        _emit({"metrics": {k: float(v) for k, v in metrics.items()}})
    except BaseException as exc:  # report anything, even SystemExit from an engine
        _emit({"error": _one_line(exc), "traceback": traceback.format_exc()})
        sys.exit(1)


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------
# Parent side: one child
# ---------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """What one child run gave: metrics, or an error; plus notes (e.g. hung at exit)."""

    metrics: dict[str, float] | None = None
    error: str | None = None
    detail: str = ""  # traceback or stderr tail, for the JSON and the error list
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)


STDERR_TAIL_LINES = 40
CHILD_BOOTSTRAP = "from bench._common import child_main; child_main()"


def child_argv(module: str, func: str, engine: str, params: dict[str, Any]) -> list[str]:
    return [sys.executable, "-c", CHILD_BOOTSTRAP, module, func, engine, json.dumps(params)]


def run_child(argv: Sequence[str], timeout_s: float) -> RunOutcome:
    """Run one child to completion (or timeout) and parse its RESULT_MARKER line."""
    start = time.perf_counter()
    # The child's TMPDIR (hence its run_dir) is a directory the parent removes: a killed
    # child leaves nothing behind.
    with (
        tempfile.TemporaryDirectory(prefix="bench-child-", ignore_cleanup_errors=True) as tmp,
        tempfile.TemporaryFile(mode="w+") as err,
    ):
        # A session of its own so that a timeout can kill the child's own children too
        # (an engine's interchange or workers), by the child's process-group id.
        env = dict(os.environ, TMPDIR=tmp, **{DUMP_AFTER_ENV: str(max(1.0, timeout_s - 2.0))})
        proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        _LIVE_GROUPS.add(proc.pid)
        try:
            lines = _pump_lines(proc)
            outcome = _read_outcome(proc, lines, start + timeout_s, timeout_s)
            # An engine may leave processes behind after its child exited (Parsl's
            # interchange and pools do when the child is killed): they would eat CPU in
            # the next measurement. Say so, and end them.
            if _group_outlives(proc.pid, ORPHAN_GRACE_S):
                outcome.notes.append(f"left processes running {ORPHAN_GRACE_S:.0f} s after "
                                     "it exited; killed")
        finally:
            _kill_group(proc.pid)
            _LIVE_GROUPS.discard(proc.pid)
        err.seek(0)
        stderr_tail = "".join(err.readlines()[-STDERR_TAIL_LINES:])
    outcome.wall_s = time.perf_counter() - start
    if outcome.metrics is None and outcome.error is None:
        outcome.error = f"child exited with code {proc.returncode} without a result"
        outcome.detail = stderr_tail
    elif outcome.error is not None and not outcome.detail:
        outcome.detail = stderr_tail
    return outcome


def _pump_lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Read the child's stdout on a thread so that the parent can wait with a deadline."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _read_outcome(
    proc: subprocess.Popen[str],
    lines: queue.Queue[str | None],
    deadline: float,
    timeout_s: float,
) -> RunOutcome:
    outcome = RunOutcome()
    reported = False
    while not reported:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.perf_counter()))
        except queue.Empty:
            _kill(proc)
            return RunOutcome(error=f"timeout after {timeout_s:.0f} s")
        if line is None:
            break  # EOF: the child exited (or closed stdout) without reporting
        if line.startswith(RESULT_MARKER):
            outcome = _parse_report(line[len(RESULT_MARKER) :])
            reported = True
    grace = EXIT_GRACE_S if reported else max(1.0, deadline - time.perf_counter())
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill(proc)
        if reported:
            outcome.notes.append(f"did not exit within {grace:.0f} s after reporting; killed")
        else:
            outcome.error = f"timeout after {timeout_s:.0f} s"
    return outcome


def _parse_report(text: str) -> RunOutcome:
    report = json.loads(text)
    if "error" in report:
        return RunOutcome(error=report["error"], detail=report.get("traceback", ""))
    return RunOutcome(metrics={k: float(v) for k, v in report["metrics"].items()})


# Process groups of children still running: ended if this harness is interrupted.
_LIVE_GROUPS: set[int] = set()


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a child's process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _group_outlives(pgid: int, grace_s: float) -> bool:
    """True if some process of the group is still alive after `grace_s` seconds."""
    deadline = time.perf_counter() + grace_s
    while True:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        if time.perf_counter() >= deadline:
            return True
        time.sleep(0.05)


def end_children_on_signals() -> None:
    """On SIGTERM / SIGINT, kill every running child's process group, then exit: an
    interrupted benchmark leaves no engine processes behind."""

    def handler(signum: int, frame: object) -> None:
        for pgid in list(_LIVE_GROUPS):
            _kill_group(pgid)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _kill(proc: subprocess.Popen[str]) -> None:
    _kill_group(proc.pid)  # the child's own group, see start_new_session
    proc.wait()


# ---------------------------------------------------------------------------------------
# Environment description
# ---------------------------------------------------------------------------------------


PROBE_CODE = (
    "import importlib, json, sys\n"
    "lib = importlib.import_module(sys.argv[1])\n"
    "print(json.dumps({'version': str(getattr(lib, '__version__', '?')),"
    " 'file': str(getattr(lib, '__file__', None))}))\n"
)


def probe_engine(engine: str) -> dict[str, str]:
    """Import an engine in a child (from the repo root, like the runs) and say what it is."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE_CODE, engine],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {proc.returncode}"}
    info: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _git_revision() -> str:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else "no commit"


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def collect_meta(engines: Sequence[str]) -> dict[str, Any]:
    """Python, platform, CPUs, package versions and what each engine resolves to."""
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "repo_revision": _git_revision(),
        "packages": {name: _package_version(name) for name in CONTEXT_PACKAGES},
        "engines": {engine: probe_engine(engine) for engine in engines},
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_average_at_start": _load_average(),
    }


def _load_average() -> list[float] | None:
    # Other work on the machine is the first suspect when figures wobble; say how much.
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def print_meta(meta: dict[str, Any]) -> None:
    print(f"python      {meta['python']} ({meta['executable']})")
    print(f"platform    {meta['platform']}")
    print(f"cpus        {meta['cpu_count']} ({meta['cpus_usable']} usable), {meta['cpu_model']}")
    print(f"repo        {ROOT} @ {meta['repo_revision']}")
    print(f"load avg    {meta['load_average_at_start']} (1, 5, 15 min) at start")
    installed = ", ".join(f"{k} {v}" for k, v in meta["packages"].items() if v != "-")
    print(f"installed   {installed}")
    for engine, info in meta["engines"].items():
        if "error" in info:
            print(f"engine      {engine}: IMPORT FAILED: {info['error']}")
        else:
            print(f"engine      {engine} {info['version']} from {info['file']}")
    print(flush=True)  # before the progress lines, which go to stderr


# ---------------------------------------------------------------------------------------
# Parent side: the suite
# ---------------------------------------------------------------------------------------


@dataclass
class Cell:
    """All runs of one (workload, engine) pair."""

    runs: list[RunOutcome] = field(default_factory=list)
    error: str | None = None  # first error; further repetitions are skipped after it

    def values(self, key: str) -> list[float]:
        return [r.metrics[key] for r in self.runs if r.metrics and key in r.metrics]


@dataclass
class SuiteResult:
    workloads: list[Workload]
    engines: list[str]
    params: dict[str, dict[str, Any]]  # workload name -> parameters actually used
    cells: dict[tuple[str, str], Cell]  # (workload name, engine) -> runs


def best(values: Sequence[float], higher_is_better: bool) -> float:
    return max(values) if higher_is_better else min(values)


def ratio(candidate: float, baseline: float, higher_is_better: bool) -> float | None:
    """> 1 means the candidate (livedag) is better, whichever way the metric points."""
    num, den = (candidate, baseline) if higher_is_better else (baseline, candidate)
    return num / den if den > 0 else None


def run_suite(
    workloads: Sequence[Workload],
    engines: Sequence[str],
    *,
    repeat: int,
    quick: bool,
    timeout_s: float,
    unavailable: dict[str, str] | None = None,
) -> SuiteResult:
    """Run each workload `repeat` times per engine, a fresh child per run.

    The engines alternate and their order flips on every repetition (A B, B A, A B, ...)
    so that a slow drift of the machine (thermal, another process) does not favour one.
    """
    unavailable = unavailable or {}
    cells = {(w.name, e): Cell() for w in workloads for e in engines}
    params = {w.name: w.params_for(quick) for w in workloads}
    for w in workloads:
        for rep in range(repeat):
            order = list(engines) if rep % 2 == 0 else list(reversed(engines))
            for engine in order:
                cell = cells[(w.name, engine)]
                if engine in unavailable and cell.error is None:
                    cell.error = f"import failed: {unavailable[engine]}"
                if cell.error is not None:
                    continue  # an engine that failed once is not retried for this workload
                argv = child_argv(w.module, w.func, engine, params[w.name])
                outcome = run_child(argv, timeout_s)
                cell.runs.append(outcome)
                if outcome.error is not None:
                    cell.error = outcome.error
                _progress(w, engine, rep, repeat, outcome)
    return SuiteResult(list(workloads), list(engines), params, cells)


def _progress(w: Workload, engine: str, rep: int, repeat: int, outcome: RunOutcome) -> None:
    if outcome.error is not None:
        shown = f"ERROR {outcome.error}"
    else:
        assert outcome.metrics is not None
        shown = ", ".join(
            f"{fmt(outcome.metrics[m.key])} {m.unit}" for m in w.metrics if m.key in outcome.metrics
        )
    notes = f" [{'; '.join(outcome.notes)}]" if outcome.notes else ""
    print(
        f"  {w.name:<10} {engine:<8} run {rep + 1}/{repeat}: {shown}"
        f"  ({outcome.wall_s:.1f} s wall){notes}",
        file=sys.stderr,
        flush=True,
    )


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    """Short, readable number: thousands separators when large, 3 significant digits else."""
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:#.3g}"  # "#" keeps trailing zeros: 0.120, not 0.12


def metric_label(m: Metric, params: dict[str, Any]) -> str:
    return f"{m.label.format(**params)} [{m.unit}]"


def _cell_text(cell: Cell, m: Metric, width: int) -> str:
    if cell.error is not None:
        text = f"ERROR: {cell.error}"
        return text if len(text) <= width else text[: width - 3] + "..."
    values = cell.values(m.key)
    if not values:
        return "-"
    return f"{fmt(best(values, m.higher_is_better))} ({fmt(statistics.median(values))})"


def ratio_of(result: SuiteResult, w: Workload, m: Metric, pick: str = "best") -> float | None:
    """livedag vs parsl on one metric, comparing best with best (or median with median)."""
    if CANDIDATE not in result.engines or BASELINE not in result.engines:
        return None
    ours, theirs = result.cells[(w.name, CANDIDATE)], result.cells[(w.name, BASELINE)]
    if ours.error or theirs.error or not ours.values(m.key) or not theirs.values(m.key):
        return None  # no ratio from a partial cell: an engine that failed once is not rated

    def summary(cell: Cell) -> float:
        values = cell.values(m.key)
        return best(values, m.higher_is_better) if pick == "best" else statistics.median(values)

    return ratio(summary(ours), summary(theirs), m.higher_is_better)


def _ratio_text(result: SuiteResult, w: Workload, m: Metric) -> str:
    r = ratio_of(result, w, m)
    return "-" if r is None else f"{r:.2f}x"


def table_rows(result: SuiteResult, cell_width: int = 38) -> list[list[str]]:
    rows = [["workload", *result.engines, f"ratio ({CANDIDATE} vs {BASELINE})"]]
    for w in result.workloads:
        for m in w.metrics:
            rows.append(
                [
                    metric_label(m, result.params[w.name]),
                    *(_cell_text(result.cells[(w.name, e)], m, cell_width) for e in result.engines),
                    _ratio_text(result, w, m),
                ]
            )
    return rows


def print_table(result: SuiteResult, repeat: int) -> None:
    rows = table_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    aligned = ["<"] + [">"] * (len(widths) - 1)  # text left, numbers right

    def line(row: list[str]) -> str:
        cells = (f"{c:{a}{wd}}" for c, a, wd in zip(row, aligned, widths, strict=True))
        return "| " + " | ".join(cells) + " |"

    print(line(rows[0]))
    print("|" + "|".join("-" * (wd + 2) for wd in widths) + "|")
    for row in rows[1:]:
        print(line(row))
    print()
    print(f"cells: best (median) of {repeat} run(s), each in a fresh process.")
    print(
        f"ratio: best vs best; > 1 means {CANDIDATE} is better "
        f"({CANDIDATE}/{BASELINE} for rates, {BASELINE}/{CANDIDATE} for times)."
    )
    print(f"load average at the end: {_load_average()} (1, 5, 15 min), on {os.cpu_count()} CPUs.")
    _print_errors_and_notes(result)


def _print_errors_and_notes(result: SuiteResult) -> None:
    # The same failure in many workloads (typically: the engine does not import) is
    # printed once, with the workloads it hit.
    errors: dict[tuple[str, str, str], list[str]] = {}
    for (name, engine), cell in result.cells.items():
        for run in cell.runs:
            for note in run.notes:
                print(f"note: {name} / {engine}: {note}")
        if cell.error is not None:
            detail = next((r.detail for r in cell.runs if r.error), "")
            errors.setdefault((engine, cell.error, detail), []).append(name)
    for (engine, error, detail), names in errors.items():
        print(f"\nerror: {engine} in {', '.join(names)}: {error}")
        for text in detail.strip().splitlines()[-6:]:
            print(f"    {text}")


def result_json(result: SuiteResult, meta: dict[str, Any], options: dict[str, Any]) -> Any:
    rows = []
    for w in result.workloads:
        for m in w.metrics:
            per_engine: dict[str, Any] = {}
            for e in result.engines:
                cell = result.cells[(w.name, e)]
                values = cell.values(m.key)
                per_engine[e] = {
                    "values": values,
                    "best": best(values, m.higher_is_better) if values else None,
                    "median": statistics.median(values) if values else None,
                    "error": cell.error,
                    "detail": next((r.detail for r in cell.runs if r.error), None),
                    "notes": [n for r in cell.runs for n in r.notes],
                }
            rows.append(
                {
                    "workload": w.name,
                    "metric": m.key,
                    "label": metric_label(m, result.params[w.name]),
                    "unit": m.unit,
                    "higher_is_better": m.higher_is_better,
                    "params": result.params[w.name],
                    "engines": per_engine,
                    "ratio": ratio_of(result, w, m, "best"),
                    "ratio_of_medians": ratio_of(result, w, m, "median"),
                }
            )
    return {"meta": meta, "options": options, "results": rows}


def write_json(path: str, data: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)  # e.g. the git-ignored bench/results/
    target.write_text(json.dumps(data, indent=2) + "\n")
    print(f"results written to {path}")


# ---------------------------------------------------------------------------------------
# Command line shared by the engine benchmarks
# ---------------------------------------------------------------------------------------


def make_parser(description: str, workloads: Sequence[Workload]) -> argparse.ArgumentParser:
    names = ", ".join(w.name for w in workloads)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--only", help=f"comma-separated workloads to run, of: {names}")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per (engine, workload); default 3, or 1 with --quick",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for a smoke run in seconds"
    )
    parser.add_argument(
        "--engines",
        default=f"{CANDIDATE},{BASELINE}",
        help=f"comma-separated engines, of: {', '.join(KNOWN_ENGINES)}",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one run may take before it is killed; default 600, or 120 with --quick",
    )
    return parser


def split_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise SystemExit(
            f"unknown {what}: {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}"
        )
    return items


def main_for(title: str, workloads: Sequence[Workload], argv: Sequence[str] | None = None) -> int:
    """The whole command: parse options, describe the machine, run, print, write JSON."""
    args = make_parser(title, workloads).parse_args(argv)
    end_children_on_signals()
    engines = split_list(args.engines, KNOWN_ENGINES, "engine")
    selected = list(workloads)
    if args.only:
        names = split_list(args.only, [w.name for w in workloads], "workload")
        selected = [w for w in workloads if w.name in names]
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    timeout_s = args.timeout if args.timeout is not None else (120.0 if args.quick else 600.0)

    print(title)
    meta = collect_meta(engines)
    print_meta(meta)
    unavailable = {e: info["error"] for e, info in meta["engines"].items() if "error" in info}
    result = run_suite(
        selected,
        engines,
        repeat=max(1, repeat),
        quick=args.quick,
        timeout_s=timeout_s,
        unavailable=unavailable,
    )
    print()
    print_table(result, max(1, repeat))
    if args.json:
        options = {
            "engines": engines,
            "repeat": repeat,
            "quick": args.quick,
            "timeout_s": timeout_s,
            "workloads": [w.name for w in selected],
        }
        write_json(args.json, result_json(result, meta, options))
    return 0
