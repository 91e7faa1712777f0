"""GridEngineProvider against a real single-node Son of Grid Engine (see conftest.py):
submit, status through pending/running to an end, cancel, a rejected submission, a
failing script, and h_rt (Grid Engine takes seconds, so this one is quick)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import wait_for

from livedag.errors import SubmitError
from livedag.launchers import SimpleLauncher
from livedag.providers.base import JobState, JobStatus
from livedag.providers.sge import GridEngineProvider

pytestmark = [pytest.mark.sge, pytest.mark.timeout(600), pytest.mark.usefixtures("sge_cluster")]


def provider(run_dir: str, **kwargs: Any) -> GridEngineProvider:
    kwargs.setdefault("launcher", SimpleLauncher())
    kwargs.setdefault("walltime", "00:05:00")
    p = GridEngineProvider(cmd_timeout=20, **kwargs)
    p.script_dir = run_dir
    return p


def watch(p: GridEngineProvider, job_id: str, *, timeout: float) -> list[JobStatus]:
    seen: list[JobStatus] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (status,) = p.status([job_id])
        seen.append(status)
        if status.terminal:
            return seen
        time.sleep(0.3)
    pytest.fail(f"job {job_id} did not end within {timeout} s: {seen[-3:]}")


def test_block_runs_the_submitting_python_and_completes(run_dir: str) -> None:
    # Grid Engine gives jobs a minimal environment of its own; PATH comes from the prelude.
    p = provider(run_dir, worker_init="echo worker_init ran > init.txt")
    program = ("import sys; open('result.txt', 'w').write(sys.executable + '\\n' + "
               "open('init.txt').read())")
    job_id = p.submit(p.script_for(f'python -c "{program}"; sleep 1'), "block-0")

    seen = watch(p, job_id, timeout=60)

    assert seen[0].state in (JobState.PENDING, JobState.RUNNING)
    assert seen[-1].state is JobState.COMPLETED, seen[-1]
    assert seen[-1].exit_code == 0
    python, init = (Path(run_dir) / "result.txt").read_text().splitlines()
    assert os.path.realpath(python) == os.path.realpath(sys.executable)
    assert init == "worker_init ran"
    assert seen[-1].stdout_path and os.path.exists(seen[-1].stdout_path)


def test_cancel_mid_run(run_dir: str) -> None:
    p = provider(run_dir)
    job_id = p.submit(p.script_for("echo started; sleep 120"), "cancelled")
    wait_for(lambda: p.status([job_id])[0].state is JobState.RUNNING, timeout=30,
             what="job running")

    assert p.cancel([job_id]) == [True]
    final = watch(p, job_id, timeout=30)[-1]

    assert final.state is JobState.CANCELLED
    assert final.message is not None
    assert f"Grid Engine job {job_id} was cancelled by livedag" in final.message
    assert final.stdout_path is not None and final.stdout_path in final.message


def test_failing_block_script_names_exit_code_and_stderr(run_dir: str) -> None:
    p = provider(run_dir)
    job_id = p.submit(p.script_for("echo 'cannot import livedag' >&2; exit 3"), "bad")

    final = watch(p, job_id, timeout=60)[-1]

    assert final.state is JobState.FAILED
    assert final.exit_code == 3
    assert final.message is not None
    assert "its block script exited with code 3" in final.message
    assert "cannot import livedag" in final.message


def test_unknown_queue_raises_at_once_with_qsub_message(run_dir: str) -> None:
    p = provider(run_dir, queue="no-such-queue")
    started = time.monotonic()
    with pytest.raises(SubmitError) as info:
        p.submit(p.script_for("true"), "rejected")
    assert time.monotonic() - started < 10
    assert 'job requests unknown queue "no-such-queue"' in str(info.value)
    assert info.value.command[0] == "qsub"


def test_h_rt_timeout_reason(run_dir: str) -> None:
    p = provider(run_dir, walltime="00:00:05")
    job_id = p.submit(p.script_for("echo started; sleep 120"), "long")

    final = watch(p, job_id, timeout=60)[-1]

    assert final.state is JobState.TIMEOUT
    assert final.message is not None
    assert final.message.startswith(f"Grid Engine job {job_id} reached its time limit "
                                    "(h_rt 00:00:05)")
