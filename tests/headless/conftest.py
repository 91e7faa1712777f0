"""`livedag run` as users run it: the console script, in a subprocess, on copies of notebooks."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "notebooks"
FIXTURES = Path(__file__).resolve().parent / "notebooks"


@dataclasses.dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    def notebook(self, name: str) -> nbformat.NotebookNode:
        """The executed notebook written to the `out` folder of the run."""
        return nbformat.read(self.cwd / "out" / name, as_version=4)


def livedag_command() -> list[str]:
    """The `livedag` console script of this Python (pip install -e . puts it beside it)."""
    script = Path(sys.executable).parent / "livedag"
    if not script.is_file():
        pytest.fail(f"no `livedag` console script beside {sys.executable}: "
                    "run `python -m pip install -e .[test]`")
    return [str(script)]


def run_livedag(cwd: Path, *args: str, timeout: float = 90,
                env: dict[str, str] | None = None) -> Run:
    """`livedag run ARGS... --output out` in `cwd`, bounded by `timeout` seconds."""
    env = {**os.environ, **(env or {})}
    env.pop("MPLBACKEND", None)  # an inline backend would not load outside a kernel
    proc = subprocess.run(
        [*livedag_command(), "run", *args, "--output", "out"], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, cwd)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with copies of the example and fixture notebooks (their runs write there)."""
    for folder in (EXAMPLES, FIXTURES):
        for nb in folder.glob("*.ipynb"):
            if not nb.name.endswith(".out.ipynb"):
                shutil.copy(nb, tmp_path / nb.name)
    return tmp_path


def outputs_text(cell: nbformat.NotebookNode) -> str:
    """Everything a cell printed or displayed as text."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("display_data", "execute_result"):
            parts.append(out["data"].get("text/plain", ""))
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "".join(parts)
