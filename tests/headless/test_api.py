"""`livedag.jupyter.headless` from Python, as a user's own pytest test would call it."""

from __future__ import annotations

from pathlib import Path

import pytest

from livedag.jupyter import headless
from tests.headless.conftest import nbformat

pytestmark = pytest.mark.timeout(90)


def test_run_notebook_returns_the_failure_as_data(workdir: Path) -> None:
    lines: list[str] = []
    result = headless.run_notebook(workdir / "failing.ipynb", output=False,
                                   progress=lines.append)
    assert not result.ok
    assert result.output_path is None and not (workdir / "failing.out.ipynb").exists()
    assert [c.status for c in result.cells] == ["ok", "ok", "ok", "failed"]
    assert len(lines) == 4 and "failed" in lines[-1]
    failure = result.failure
    assert failure is not None
    assert (failure.index, failure.execution_count, failure.ename) == (4, 4, "DependencyError")
    [root] = failure.root_causes
    assert (root.task_id, root.app, root.exc_type, root.message) == (
        1, "fit", "ValueError", "bad row 17")
    assert root.stderr_tail == "fitting 3 rows\nrow 17 looks odd"
    assert root.executor == "threads" and root.try_number == 1
    assert result.counts == {"exec_done": 1, "failed": 1, "dep_fail": 1}
    assert [t.task_id for t in result.task_failures] == [1]
    assert "root cause: task 1 'fit'" in result.report()


def test_run_notebook_writes_beside_the_input_by_default(workdir: Path) -> None:
    result = headless.run_notebook(workdir / "04-from-parsl.ipynb")
    assert result.ok, result.report()
    assert result.report() == ""
    assert result.output_path == workdir / "04-from-parsl.out.ipynb"
    nb = nbformat.read(result.output_path, as_version=4)
    assert nb.cells[-1].metadata.tags == ["livedag-summary"]
    # One failed task that the notebook caught on purpose does not fail the notebook.
    assert result.counts == {"exec_done": 3, "failed": 1}


@pytest.mark.parametrize(("text", "value"), [
    ("n=3", 3), ("x=1.5e3", 1500.0), ("flag=True", True), ("xs=[1, 'a']", [1, "a"]),
    ("name=hello", "hello"), ("path=/tmp/a b", "/tmp/a b"), ("empty=", ""),
    ("quoted='3'", "3"), ("expr=1+", "1+"),
])
def test_parameter_values_are_literals_or_strings(text: str, value: object) -> None:
    assert headless.parse_parameter(text)[1] == value


@pytest.mark.parametrize("text", ["novalue", "1x=3", "a b=1", "=3"])
def test_parameter_names_must_be_python_names(text: str) -> None:
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        headless.parse_parameter(text)


def _nb(*sources: str, tags: dict[int, list[str]] | None = None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for i, t in (tags or {}).items():
        nb.cells[i].metadata["tags"] = t
    return nb


def test_injection_goes_after_the_parameters_cell_and_replaces_an_earlier_one() -> None:
    nb = _nb("import x", "a = 1", "print(a)", tags={1: ["parameters"]})
    assert headless.inject_parameters(nb, {"a": 2}) == ""
    assert headless.inject_parameters(nb, {"a": 3, "b": "s"}) == (
        "the 'parameters' cell does not set b (injected anyway)")
    assert [c.metadata.get("tags") for c in nb.cells] == [
        None, ["parameters"], ["injected-parameters"], None]
    assert nb.cells[2].source.splitlines()[1:] == ["a = 3", "b = 's'"]


def test_injection_without_a_parameters_cell_goes_first() -> None:
    nb = _nb("print(a)")
    note = headless.inject_parameters(nb, {"a": 1})
    assert "injected at the top" in note
    assert nb.cells[0].metadata.tags == ["injected-parameters"]


def test_output_paths() -> None:
    src = Path("/data/nb/analysis.ipynb")
    assert headless.default_output_path(src) == Path("/data/nb/analysis.out.ipynb")
    assert headless.default_output_path(src, Path("/out")) == Path("/out/analysis.ipynb")
    # An output directory that is the input's own directory never overwrites the input.
    assert headless.default_output_path(src, Path("/data/nb")) == src.with_name(
        "analysis.out.ipynb")


def test_summary_has_a_column_per_state_seen() -> None:
    ok = headless.NotebookResult(Path("a.ipynb"), None, [], {"exec_done": 4}, [])
    bad = headless.NotebookResult(Path("b.ipynb"), None, [], {"running": 1}, [],
                                  error="the kernel could not start")
    header, row_a, row_b = headless.format_summary([ok, bad]).splitlines()
    assert header.split()[4:] == ["exec_done", "memo_done", "failed", "dep_fail",
                                  "cancelled", "running"]
    assert row_a.split()[1] == "ok" and row_a.split()[4] == "4"
    assert row_b.split()[1] == "FAILED" and row_b.split()[-1] == "1"
