"""Real schedulers for the cluster tests: one single-node Slurm and one Grid Engine per
test session, started by scripts/cluster/*-start.sh and stopped by *-stop.sh at the end,
whatever the tests did.

    slurm_cluster ──slurm-start.sh (state in /tmp/livedag-slurm-pytest, ports 6827/6828)──>
        SLURM_CONF in os.environ for the session ──> slurm-stop.sh --purge; SLURM_CONF restored
    sge_cluster ──sge-start.sh──> SGE_ROOT/SGE_CELL in os.environ ──> sge-stop.sh

A cluster that was already up before the session (started by hand) is used and left up.
When a cluster cannot be started the test FAILS under CI (CI=true), so a broken cluster
never turns into a green run, and skips with the reason elsewhere.

The first test that needs a cluster pays for its start (seconds; minutes if apt-get has to
install it), hence the generous per-test timeout of the cluster tests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "cluster"
START_TIMEOUT = 900   # includes an apt-get install on a fresh machine
STOP_TIMEOUT = 120
SLURM_DIR = "/tmp/livedag-slurm-pytest"   # short: slurmd's socket paths must stay < 108 bytes
SLURM_PORTS = "6827 6828"                 # not the defaults, so a hand-started cluster is safe


@dataclass(frozen=True)
class Cluster:
    name: str
    env: dict[str, str]
    started_here: bool


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the test cluster is not available: {reason}", pytrace=False)
    pytest.skip(reason)


def _parse_exports(stdout: str) -> dict[str, str]:
    """`export A=1 B=2` lines -> {"A": "1", "B": "2"}."""
    env: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("export "):
            for pair in line[len("export "):].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def _start(name: str, script: str, env: dict[str, str]) -> Cluster:
    if os.geteuid() != 0:
        _unavailable(f"{name}: the test cluster needs root (slurmd/sge_execd run jobs as root)")
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPTS / script)], env={**os.environ, **env}, capture_output=True,
            text=True, timeout=START_TIMEOUT, stdin=subprocess.DEVNULL, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        _stop(name, env)
        _unavailable(f"{name}: {script} did not finish within {START_TIMEOUT} s: {exc.stderr!r}")
        raise   # not reached
    if proc.returncode != 0:
        _unavailable(f"{name}: {script} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return Cluster(name, _parse_exports(proc.stdout), "already up" not in proc.stderr)


def _stop(name: str, env: dict[str, str]) -> None:
    script = "slurm-stop.sh" if name == "slurm" else "sge-stop.sh"
    args = ["--purge"] if name == "slurm" else []
    subprocess.run(
        ["bash", str(SCRIPTS / script), *args], env={**os.environ, **env},
        timeout=STOP_TIMEOUT, stdin=subprocess.DEVNULL, check=False, capture_output=True,
    )


def _session_cluster(name: str, script: str, env: dict[str, str]) -> Iterator[Cluster]:
    cluster = _start(name, script, env)
    saved = {key: os.environ.get(key) for key in cluster.env}
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        try:
            if cluster.started_here:
                _stop(name, env)
        finally:
            # A SLURM_CONF naming a config whose daemons are gone makes every Slurm
            # command wait 60 s: put the environment back as it was.
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    yield from _session_cluster(
        "slurm", "slurm-start.sh",
        {"LIVEDAG_SLURM_DIR": SLURM_DIR, "LIVEDAG_SLURM_PORTS": SLURM_PORTS},
    )


@pytest.fixture(scope="session")
def sge_cluster() -> Iterator[Cluster]:
    yield from _session_cluster("sge", "sge-start.sh", {})


@pytest.fixture
def run_dir(tmp_path: Path) -> str:
    """The provider's script_dir. tmp_path is 0700, which is fine: jobs run as root here."""
    path = tmp_path / "submit_scripts"
    path.mkdir()
    return str(path)
