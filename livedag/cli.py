"""The `livedag` command: `livedag run NOTEBOOK...` (see livedag.jupyter.headless).

Exit codes: 0 every notebook ran to its end; 1 a notebook failed (a cell raised, timed
out, or its kernel died); 2 the command line was wrong.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livedag", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="execute notebooks headlessly and report their tasks",
        description="Execute notebooks with nbclient, one fresh kernel each, and report what "
        "their cells and tasks did. The executed notebook is written as NAME.out.ipynb beside "
        "the input (or DIR/NAME.ipynb with --output), with the DAG picture in a last cell.")
    run.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", type=Path)
    run.add_argument("--output", "-o", metavar="DIR", type=Path,
                     help="write executed notebooks here (default: NAME.out.ipynb beside each)")
    run.add_argument("--timeout", metavar="S", type=float,
                     help="seconds a cell may run before it is interrupted (default: no limit)")
    run.add_argument("--parameter", "-p", metavar="NAME=VALUE", action="append", default=[],
                     help="inject NAME = VALUE after the cell tagged 'parameters' (the value is "
                     "a Python literal if it parses as one, else a string); repeatable")
    run.add_argument("--junit-xml", metavar="FILE", type=Path,
                     help="also write a JUnit XML report: one testcase per notebook")
    run.add_argument("--kernel", metavar="NAME", default="",
                     help="kernel to use (default: the notebook's kernelspec)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from livedag.jupyter import headless

    parameters = {}
    for text in args.parameter:
        try:
            name, value = headless.parse_parameter(text)
        except ValueError as exc:
            parser.error(str(exc))
        parameters[name] = value
    results = []
    for path in args.notebooks:
        if path.name.endswith(".out.ipynb"):
            print(f"livedag run: skipping {path} (an output of livedag run)", flush=True)
            continue
        if not path.is_file():
            parser.error(f"no such notebook: {path}")
        print(f"livedag run: {path}", flush=True)
        output = headless.default_output_path(path, args.output)
        try:
            result = headless.run_notebook(
                path, output=output, timeout=args.timeout, parameters=parameters,
                kernel_name=args.kernel, progress=lambda line: print(line, flush=True))
        except ValueError as exc:  # not a notebook (nbformat's NotJSONError, ...)
            print(f"FAILED {path}\n  cannot read it as a notebook: {exc}", flush=True)
            results.append(headless.NotebookResult(path, None, [], {}, [], error=str(exc)))
            continue
        if not result.ok:
            print(result.report(), flush=True)
        print(f"  written to {result.output_path}", flush=True)
        results.append(result)
    if results:
        print("\n" + headless.format_summary(results), flush=True)
    if args.junit_xml is not None:
        headless.write_junit(results, args.junit_xml)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
