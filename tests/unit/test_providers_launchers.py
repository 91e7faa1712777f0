"""livedag.launchers (srun, mpiexec): the text they put in a block script (run for real on Slurm
in tests/cluster/test_slurm.py::test_srun_launcher_starts_one_copy_per_task)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from livedag.launchers import MpiExecLauncher, SrunLauncher


def test_srun_launcher() -> None:
    text = SrunLauncher(overrides="--cpu-bind=none")("run-pool --port 1", 4, 2)
    assert "srun --export=ALL --ntasks 8 -l --cpu-bind=none bash \"$CMD_FILE\"" in text
    assert "run-pool --port 1\nLIVEDAG_SRUN_EOF" in text
    assert text.startswith("set -e\n")


def test_mpiexec_launcher_runs_without_a_nodefile(tmp_path: Path) -> None:
    text = MpiExecLauncher(bind_cmd="--bind-to", overrides="-v")("echo $HOME", 2, 1)
    assert "mpiexec --bind-to none -v -n 2 --hostfile \"$HOSTFILE\" /bin/bash \"$CMD_FILE\"" in text
    # the command file keeps $HOME unexpanded (quoted heredoc): expanded where it runs
    script = text.replace("mpiexec", "echo mpiexec")
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, timeout=30,
                   capture_output=True, env={"PATH": "/usr/bin:/bin", "JOBNAME": "j"})
    assert (tmp_path / "cmd_j.sh").read_text() == "echo $HOME\n"
    assert (tmp_path / "hosts_j.txt").read_text() == "localhost\n"


def test_reprs() -> None:
    assert repr(SrunLauncher(debug=False)) == "SrunLauncher(debug=False, overrides='')"
    assert "bind_cmd='--bind-to'" in repr(MpiExecLauncher())
