"""Import time: ``python -X importtime -c "import livedag"`` vs the same for ``parsl``.

For each engine, a fresh interpreter imports the package with ``-X importtime`` and the
cumulative time of the package's own top-level entry is read from that report (it covers
everything the package pulls in, and nothing the interpreter had already imported at start).
The best of --repeat (default 5) fresh processes is kept, with the median beside it; the
first run of a process may also be writing .pyc files, which is one reason to take the best.
Because a package may import lazily (then `import NAME` alone costs almost nothing), the same
process then reaches the names a user's script touches first (`python_app`, `Config`, `load`,
`executors.ThreadPoolExecutor`) and reports the wall time of import + that, and the number
of modules added to sys.modules by then: what makes a slow import slow. The wall time
includes -X importtime's own small bookkeeping, equally for both engines.
Ratio > 1 means livedag imports faster (or imports fewer modules).

Run from the repository root:  python3 -m bench.imports [--engines livedag,parsl] [--json FILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python3 bench/imports.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    BASELINE,
    CANDIDATE,
    KNOWN_ENGINES,
    ROOT,
    Cell,
    Metric,
    RunOutcome,
    SuiteResult,
    Workload,
    collect_meta,
    print_meta,
    print_table,
    result_json,
    split_list,
    write_json,
)

TIMEOUT_S = 120.0

# Both figures come from the same process; the Workload exists so that the table and the
# JSON are printed by the shared harness, as for the engine benchmarks.
IMPORT = Workload(
    name="import",
    module="bench.imports",
    func="import_once",
    params={},
    quick_params={},
    metrics=(
        Metric("ms", "import (-X importtime, cumulative)", "ms", higher_is_better=False),
        Metric("api_ms", "import + reach the user API (wall)", "ms", higher_is_better=False),
        Metric("modules", "modules added by import + API", "count", higher_is_better=False),
    ),
)


def import_code(engine: str) -> str:
    """A plain `import NAME` (engine is one of KNOWN_ENGINES), then the names a user's script
    touches first. A package may import lazily, making `import NAME` alone cheap; the wall
    time to reach `python_app`, `Config`, `load` and `executors.ThreadPoolExecutor` is what
    a script or a notebook's first cell pays either way."""
    return (
        "import sys, time\n"
        "n = len(sys.modules)\n"
        "start = time.perf_counter()\n"
        f"import {engine}\n"
        f"import {engine}.executors\n"
        f"{engine}.python_app, {engine}.Config, {engine}.load\n"
        f"{engine}.executors.ThreadPoolExecutor\n"
        "print(time.perf_counter() - start, len(sys.modules) - n)\n"
    )


def cumulative_us(report: str, package: str) -> float:
    """The cumulative microseconds of `package` in a -X importtime report on stderr."""
    for line in report.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line.split("|", 2)
        if name.strip() == package:
            return float(cumulative)
    raise RuntimeError(f"{package} not found in the -X importtime report")


def import_once(engine: str) -> RunOutcome:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", import_code(engine)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return RunOutcome(
            error=lines[-1] if lines else f"exit code {proc.returncode}",
            detail="\n".join(lines[-10:]),
        )
    api_s, modules = (float(x) for x in proc.stdout.strip().splitlines()[-1].split())
    metrics = {"ms": cumulative_us(proc.stderr, engine) / 1000, "api_ms": api_s * 1000}
    return RunOutcome(metrics={**metrics, "modules": modules})


def measure(engines: list[str], repeat: int) -> SuiteResult:
    cells = {(IMPORT.name, e): Cell() for e in engines}
    for rep in range(repeat):
        # Alternate which engine goes first, as the engine benchmarks do.
        for engine in engines if rep % 2 == 0 else reversed(engines):
            cell = cells[(IMPORT.name, engine)]
            if cell.error is None:
                outcome = import_once(engine)
                cell.runs.append(outcome)
                cell.error = outcome.error
    return SuiteResult([IMPORT], engines, {IMPORT.name: {}}, cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=f"{CANDIDATE},{BASELINE}")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per engine")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    engines = split_list(args.engines, KNOWN_ENGINES, "engine")
    repeat = max(1, args.repeat)

    print("livedag vs Parsl: import time")
    meta = collect_meta(engines)
    print_meta(meta)
    result = measure(engines, repeat)
    print_table(result, repeat)
    if args.json:
        write_json(args.json, result_json(result, meta, {"engines": engines, "repeat": repeat}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
