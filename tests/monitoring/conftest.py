"""Kernels that record their runs in a temp dir, and a child-process runner for the tests
that need a second process (a restart) or a killed one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import livedag
from livedag.executors.threads import ThreadPoolExecutor
from livedag.monitoring import RunRecord

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def run_base(tmp_path: Any) -> str:
    return os.path.join(str(tmp_path), "runinfo")


@pytest.fixture
def load_recorded(run_base: str) -> Iterator[Callable[..., livedag.DataFlowKernel]]:
    """load(**config_fields): a loaded kernel whose run is recorded (cleaned up after)."""
    loaded: list[livedag.DataFlowKernel] = []

    def load(**fields: Any) -> livedag.DataFlowKernel:
        fields.setdefault("executors", [ThreadPoolExecutor(label="threads", max_threads=2)])
        fields.setdefault("run_dir", run_base)
        fields.setdefault("monitoring", RunRecord())
        fields.setdefault("initialize_logging", False)
        dfk = livedag.load(livedag.Config(**fields))
        loaded.append(dfk)
        return dfk

    yield load
    for dfk in loaded:
        dfk.cleanup()
    livedag.clear()


def finish(dfk: livedag.DataFlowKernel) -> str:
    """Wait for every task, clean up (the record is complete then); the run dir."""
    dfk.wait_for_current_tasks()
    dfk.cleanup()
    livedag.clear()
    return dfk.run_dir


def _script(code: str, cwd: str) -> tuple[list[str], dict[str, str]]:
    # A file, not -c: tracebacks then quote the lines of the app that raised.
    path = os.path.join(cwd, f"child_{abs(hash(code))}.py")
    with open(path, "w") as f:
        f.write(textwrap.dedent(code))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return [sys.executable, path], env


def run_child(code: str, *, cwd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter that imports livedag from this tree."""
    argv, env = _script(code, cwd)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return done


def start_child(code: str, *, cwd: str) -> subprocess.Popen[str]:
    argv, env = _script(code, cwd)
    return subprocess.Popen(argv, cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
