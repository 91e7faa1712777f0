"""binder/ builds a working environment: a fresh venv set up the way mybinder (repo2docker)
does it -- binder/requirements.txt, then binder/postBuild from the repository root -- runs a
notebook with that venv's own `livedag run`, with livedag from this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.headless.conftest import EXAMPLES, FIXTURES, REPO, nbformat, outputs_text

BINDER = REPO / "binder"


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_binder_files_say_what_mybinder_needs() -> None:
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    post_build = BINDER / "postBuild"
    assert os.access(post_build, os.X_OK)
    text = post_build.read_text()
    assert text.startswith("#!/bin/bash") and "set -e" in text
    assert 'pip install --no-cache-dir -e ".[jupyter]"' in text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_fresh_venv_built_from_binder_runs_a_notebook(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=dict(os.environ),
         timeout=120)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MPLBACKEND", "PYENV_VERSION")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
          str(BINDER / "requirements.txt")], cwd=REPO, env=env, timeout=600)
    _run(["bash", str(BINDER / "postBuild")], cwd=REPO, env=env, timeout=600)

    for nb in (FIXTURES / "probe.ipynb", EXAMPLES / "01-quickstart.ipynb"):
        shutil.copy(nb, tmp_path / nb.name)
    livedag = venv / "bin" / "livedag"
    assert livedag.is_file(), "postBuild did not install the livedag command"
    out = _run([str(livedag), "run", "probe.ipynb", "01-quickstart.ipynb", "--output", "out",
                "--timeout", "120"], cwd=tmp_path, env=env, timeout=300)
    assert "01-quickstart.ipynb  ok" in out, out
    probe = outputs_text(nbformat.read(tmp_path / "out" / "probe.ipynb", as_version=4).cells[0])
    # The notebook's kernel ran the venv's Python, with livedag from this checkout.
    assert f"python: {venv}" in probe, probe
    assert f"livedag: {REPO / 'livedag' / '__init__.py'}" in probe, probe
