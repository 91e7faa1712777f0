"""Every example in notebooks/ runs to its end through `livedag run` and shows what it says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.headless.conftest import EXAMPLES, REPO, Run, nbformat, outputs_text, run_livedag

pytestmark = pytest.mark.timeout(120)

NAMES = sorted(p.name for p in EXAMPLES.glob("*.ipynb") if not p.name.endswith(".out.ipynb"))
EXPECTED = {"01-quickstart.ipynb", "02-debugging-failures.ipynb", "03-fan-out-fan-in.ipynb",
            "04-from-parsl.ipynb", "05-cluster.ipynb"}
# These need a batch scheduler: tests/cluster runs them against the test cluster.
NEEDS_CLUSTER = {"05-cluster.ipynb"}
RUNNABLE = [name for name in NAMES if name not in NEEDS_CLUSTER]


def test_the_examples_are_all_there_and_match_their_generator() -> None:
    assert set(NAMES) >= EXPECTED
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_notebooks.py"),
                           "--check"], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in NAMES:
        nb = nbformat.read(EXAMPLES / name, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """`example(name)`: the run of notebooks/NAME (each run once per test module)."""
    runs: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in runs:
            where = tmp_path_factory.mktemp(name.split("-", maxsplit=1)[0])
            shutil.copy(EXAMPLES / name, where / name)
            runs[name] = run_livedag(where, name, "--timeout", "60")
        return runs[name]

    return get


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code" and "livedag-summary"
            not in c.metadata.get("tags", [])]


def _summary_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    last = nb.cells[-1]
    assert "livedag-summary" in last.metadata.get("tags", []), "no summary cell at the end"
    return last


@pytest.mark.parametrize("name", RUNNABLE)
def test_example_runs_to_the_end(example: Callable[[str], Run], name: str) -> None:
    run = example(name)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"livedag run: {name}" in run.stdout
    nb = run.notebook(name)
    cells = _code_cells(nb)
    # Every cell ran, in order, and only cells tagged raises-exception show an error.
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert bool(errors) == ("raises-exception" in cell.metadata.get("tags", [])), (
            cell.source, outputs_text(cell))
    # The DAG as a static picture, and the summary row of this notebook.
    summary = _summary_cell(nb)
    pictures = [o for o in summary.outputs if "image/png" in o.get("data", {})]
    assert pictures and pictures[0].data["image/png"].startswith("iVBOR")  # PNG magic
    assert name in outputs_text(summary)


def test_quickstart_shows_results_and_the_widget_picture(example: Callable[[str], Run]) -> None:
    run = example("01-quickstart.ipynb")
    assert run.returncode == 0, run.stdout + run.stderr
    nb = run.notebook("01-quickstart.ipynb")
    text = "".join(outputs_text(c) for c in nb.cells)
    assert "sum of squares: 30" in text
    assert "printed: 'squaring 3\\n'" in text
    assert "4 words" in text
    widget_outputs = [o for c in nb.cells for o in c.get("outputs", [])
                      if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget_outputs and "image/png" in widget_outputs[0].data
    assert "widgets" in nb.metadata  # widget state saved for JupyterLab


def test_error_zoo_shows_each_failure_and_still_exits_0(example: Callable[[str], Run]) -> None:
    run = example("02-debugging-failures.ipynb")
    assert run.returncode == 0, run.stdout + run.stderr
    nb = run.notebook("02-debugging-failures.ipynb")
    raised = [o.ename for c in nb.cells for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert raised == ["ValueError", "DependencyError", "BashExitFailure", "WorkerImportError",
                      "SerializationError", "WorkerLost"]
    text = "".join(outputs_text(c) for c in nb.cells)
    assert "root cause" in text.lower() or "task 2 'parse' failed with ValueError" in text
    assert "cannot import module 'zoo_helpers'" in text
    assert "argument 0 (of type _thread.lock)" in text
    assert "what it printed: 'about to crash\\n'" in text
    # The progress lines say the errors were expected, and the summary counts them.
    assert "(WorkerLost, expected)" in run.stdout
    row = next(line for line in run.stdout.splitlines()
               if line.startswith("02-debugging-failures.ipynb"))
    assert row.split()[1] == "ok"
    header = next(line for line in run.stdout.splitlines() if line.startswith("notebook"))
    counts = dict(zip(header.split()[4:], row.split()[4:], strict=True))
    assert counts["failed"] == "6" and counts["dep_fail"] == "1"


def test_fan_out_reuses_results_and_takes_a_parameter(workdir: Path) -> None:
    run = run_livedag(workdir, "03-fan-out-fan-in.ipynb", "--parameter", "n_runs=3")
    assert run.returncode == 0, run.stdout + run.stderr
    nb = run.notebook("03-fan-out-fan-in.ipynb")
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    at = tags.index(["parameters"])
    assert tags[at + 1] == ["injected-parameters"]
    assert "n_runs = 3" in nb.cells[at + 1].source
    text = "".join(outputs_text(c) for c in nb.cells)
    assert "mean of 3 runs" in text
    assert "states: ['memo_done']" in text  # the same calls again, and after a restart


def test_from_parsl_runs_a_parsl_script(example: Callable[[str], Run]) -> None:
    run = example("04-from-parsl.ipynb")
    assert run.returncode == 0, run.stdout + run.stderr
    text = "".join(outputs_text(c) for c in run.notebook("04-from-parsl.ipynb").cells)
    assert "HELLO, PARSL USER!" in text
    assert "caught: 3" in text
