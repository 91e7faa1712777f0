"""notebooks/05-cluster.ipynb runs to its end with `livedag run` against the test Slurm
(its config reads LIVEDAG_PARTITION; SLURM_CONF comes from the slurm_cluster fixture),
and leaves no job behind. tests/headless runs every other example notebook."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from htex_cluster import squeue

from tests.headless.conftest import EXAMPLES, outputs_text, run_livedag

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(150),
              pytest.mark.usefixtures("slurm_cluster")]

NAME = "05-cluster.ipynb"


def test_cluster_notebook_runs_on_slurm(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / NAME, tmp_path / NAME)

    run = run_livedag(tmp_path, NAME, "--timeout", "90", timeout=140,
                      env={"LIVEDAG_PARTITION": "debug"})

    assert run.returncode == 0, run.stdout + run.stderr
    nb = run.notebook(NAME)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, [f"{o.ename}: {o.evalue}" for o in errors]
    text = "".join(outputs_text(c) for c in nb.cells)
    assert "sum of squares: 14" in text
    jobs = [line for line in text.splitlines() if line.startswith("block 0: Slurm job ")]
    assert jobs, text
    job = jobs[0].rsplit(" ", 1)[1]
    assert f"Slurm jobs that ran them: ['{job}']" in text
    assert f"sum of squares: 14 from Slurm job {job}" in text
    assert squeue([job]) == []
