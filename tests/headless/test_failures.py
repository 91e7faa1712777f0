"""`livedag run` on notebooks that fail for real: the report, the exit code, the files."""

from __future__ import annotations

import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.headless.conftest import nbformat, outputs_text, run_livedag

pytestmark = pytest.mark.timeout(90)


def test_failing_cell_reports_its_root_cause_task(workdir: Path) -> None:
    run = run_livedag(workdir, "failing.ipynb")
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    # The cell, by number and by source.
    assert "cell 4 (In [4]) raised DependencyError: task 2 'total' was not run" in out
    assert "    model = total(fit(rows))" in out
    # The root-cause task: app, id, exception type and message, where it ran.
    assert "root cause: task 1 'fit' (try 1, executor 'threads'" in out
    assert "failed with ValueError: bad row 17" in out
    # Its own traceback (from where it ran) and the tail of what it wrote to stderr.
    traceback = out.split("--- traceback of task 1 (where it ran) ---")[1]
    assert 'raise ValueError("bad row 17")' in traceback.split("---")[0]
    stderr_tail = out.split("--- last lines task 1 wrote to stderr ---")[1]
    assert stderr_tail.splitlines()[1:3] == ["    fitting 3 rows", "    row 17 looks odd"]
    assert "livedag.resubmit(1)" in out
    # The run stopped at the failing cell.
    assert "this cell must not run" not in out
    row = next(line for line in out.splitlines() if line.startswith("failing.ipynb"))
    assert row.split()[1] == "FAILED"


def test_failing_notebook_is_written_with_the_error_and_the_report(workdir: Path) -> None:
    run = run_livedag(workdir, "failing.ipynb")
    assert run.returncode == 1
    nb = run.notebook("failing.ipynb")
    failing = nb.cells[3]
    assert [o.ename for o in failing.outputs if o.output_type == "error"] == ["DependencyError"]
    assert nb.cells[4].execution_count is None and not nb.cells[4].outputs
    summary = nb.cells[-1]
    assert summary.metadata.tags == ["livedag-summary"]
    text = outputs_text(summary)
    assert "root cause: task 1 'fit'" in text
    assert any("image/png" in o.get("data", {}) for o in summary.outputs)
    nbformat.validate(nb)


def test_timeout_interrupts_the_cell_and_names_unfinished_tasks(workdir: Path) -> None:
    started = time.monotonic()
    run = run_livedag(workdir, "sleepy.ipynb", "--timeout", "2")
    took = time.monotonic() - started
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    assert "cell 2 (In [2]) raised CellTimeoutError: the cell ran longer than 2 s" in out
    assert "    time.sleep(60)" in out
    assert "tasks not finished when the cell was interrupted:\n    task 0 'nap' running" in out
    assert "this cell must not run" not in out
    row = next(line for line in out.splitlines() if line.startswith("sleepy.ipynb"))
    assert row.split()[1] == "TIMEOUT"
    assert took < 40, f"a 2 s timeout took {took:.0f} s in all"


def test_kernel_death_is_reported(workdir: Path) -> None:
    run = run_livedag(workdir, "dies.ipynb")
    assert run.returncode == 1, run.stdout + run.stderr
    # (In [2] shows when the kernel announced the cell before it died.)
    assert re.search(r"cell 2 (\(In \[2\]\) )?raised DeadKernelError: the kernel died while "
                     r"running this cell", run.stdout), run.stdout
    assert "this cell must not run" not in run.stdout
    row = next(line for line in run.stdout.splitlines() if line.startswith("dies.ipynb"))
    assert row.split()[1:3] == ["KERNEL", "DIED"]


def test_exit_code_and_junit_xml_over_several_notebooks(workdir: Path) -> None:
    run = run_livedag(workdir, "04-from-parsl.ipynb", "failing.ipynb",
                      "--junit-xml", "reports/junit.xml")
    assert run.returncode == 1, run.stdout + run.stderr
    suite = ET.parse(workdir / "reports" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"04-from-parsl.ipynb", "failing.ipynb"}
    assert cases["04-from-parsl.ipynb"].find("failure") is None
    failure = cases["failing.ipynb"].find("failure")
    assert failure is not None
    assert failure.get("type") == "DependencyError"
    assert failure.get("message", "").startswith("cell 4: DependencyError: task 2 'total'")
    assert "root cause: task 1 'fit'" in (failure.text or "")
    assert "bad row 17" in (failure.text or "")
    # Both notebooks were run and written, the failing one did not stop the other.
    assert (workdir / "out" / "04-from-parsl.ipynb").is_file()
    assert (workdir / "out" / "failing.ipynb").is_file()


def test_parameters_are_injected_after_the_parameters_cell(workdir: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3",
                              "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("n = 1\nname = 'x'\nflag = False"),
                nbformat.v4.new_code_cell("print(repr(n), repr(name), repr(flag))")]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, workdir / "params.ipynb")
    run = run_livedag(workdir, "params.ipynb", "-p", "n=21", "-p", "name=hello world",
                      "--parameter", "flag=True")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.notebook("params.ipynb")
    assert out.cells[1].metadata.tags == ["injected-parameters"]
    assert outputs_text(out.cells[2]) == "21 'hello world' True\n"


def test_a_bad_parameter_is_a_usage_error(workdir: Path) -> None:
    run = run_livedag(workdir, "04-from-parsl.ipynb", "-p", "not a name=3")
    assert run.returncode == 2
    assert "expected NAME=VALUE" in run.stderr


def test_outputs_of_earlier_runs_are_skipped(workdir: Path) -> None:
    (workdir / "failing.out.ipynb").write_text((workdir / "failing.ipynb").read_text())
    run = run_livedag(workdir, "failing.out.ipynb")
    assert run.returncode == 0
    assert "skipping failing.out.ipynb (an output of livedag run)" in run.stdout


def test_a_kernel_without_livedag_is_a_clear_error(workdir: Path, tmp_path: Path) -> None:
    # A kernel (chosen with --kernel) whose Python finds a broken `livedag` first.
    fake = tmp_path / "fake"
    (fake / "livedag").mkdir(parents=True)
    (fake / "livedag" / "__init__.py").write_text("raise ImportError('not this livedag')\n")
    spec = tmp_path / "jupyter" / "kernels" / "no-livedag"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "no livedag", "language": "python",
        "env": {"PYTHONPATH": str(fake)},
    }))
    run = run_livedag(workdir, "04-from-parsl.ipynb", "--kernel", "no-livedag",
                      env={"JUPYTER_PATH": str(tmp_path / "jupyter")})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "livedag run could not set up the kernel (ImportError: not this livedag)" in run.stdout
    assert "does the kernel's Python have livedag installed?" in run.stdout


def test_a_kernel_that_cannot_start_is_reported_with_its_last_words(
    workdir: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "jupyter" / "kernels" / "broken"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", "import sys; sys.stderr.write('missing libfoo.so\\n'); "
                 "sys.exit(3)", "{connection_file}"],
        "display_name": "broken", "language": "python",
    }))
    run = run_livedag(workdir, "04-from-parsl.ipynb", "failing.ipynb", "--kernel", "broken",
                      env={"JUPYTER_PATH": str(tmp_path / "jupyter")})
    assert run.returncode == 1
    assert run.stdout.count("the kernel failed: RuntimeError: Kernel died before replying") == 2
    assert "--- the kernel's last output ---\n    missing libfoo.so" in run.stdout
    assert "Traceback" not in run.stderr, run.stderr  # nothing left to fail at exit


def test_an_unknown_kernel_is_reported(workdir: Path) -> None:
    run = run_livedag(workdir, "04-from-parsl.ipynb", "--kernel", "no-such-kernel")
    assert run.returncode == 1
    assert "the kernel failed: NoSuchKernel: No such kernel named no-such-kernel" in run.stdout


def test_a_file_that_is_not_a_notebook_fails_that_notebook_only(workdir: Path) -> None:
    (workdir / "broken.ipynb").write_text("{ not json")
    run = run_livedag(workdir, "broken.ipynb")
    assert run.returncode == 1
    assert "FAILED broken.ipynb\n  cannot read it as a notebook:" in run.stdout
    assert "Traceback" not in run.stderr, run.stderr
