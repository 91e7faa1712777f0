"""SlurmProvider against a real single-node Slurm (see conftest.py): submit, status
through pending/running to an end, cancel, rejected submissions, failures, time limit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import wait_for

from livedag.errors import SubmitError
from livedag.launchers import SimpleLauncher, SrunLauncher
from livedag.providers import batch
from livedag.providers.base import JobState, JobStatus
from livedag.providers.slurm import SlurmProvider

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600), pytest.mark.usefixtures("slurm_cluster")]


def provider(run_dir: str, **kwargs: Any) -> SlurmProvider:
    kwargs.setdefault("launcher", SimpleLauncher())
    kwargs.setdefault("walltime", "00:05:00")
    p = SlurmProvider(exclusive=False, cmd_timeout=20, **kwargs)
    p.script_dir = run_dir
    return p


def watch(p: SlurmProvider, job_id: str, *, timeout: float) -> list[JobStatus]:
    """Every status until the job ends (polled every 0.3 s)."""
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
    # --export=NONE: the job gets none of our environment, not even PATH; the block
    # script must still find this very interpreter as `python`.
    p = provider(run_dir, scheduler_options="#SBATCH --export=NONE",
                 worker_init="echo worker_init ran > init.txt")
    program = ("import os, sys; open('result.txt', 'w').write(sys.executable + '\\n' + "
               "open('init.txt').read())")
    job_id = p.submit(p.script_for(f'python -c "{program}"; sleep 1'), "block-0")

    seen = watch(p, job_id, timeout=60)

    assert seen[0].state in (JobState.PENDING, JobState.RUNNING)
    assert seen[-1].state is JobState.COMPLETED, seen[-1]
    assert seen[-1].exit_code == 0
    python, init = (Path(run_dir) / "result.txt").read_text().splitlines()
    assert os.path.realpath(python) == os.path.realpath(sys.executable)
    assert init == "worker_init ran"   # worker_init ran first, in the run dir
    assert seen[-1].stdout_path and seen[-1].stdout_path.startswith(run_dir)
    assert seen[-1].stderr_path and os.path.exists(seen[-1].stderr_path)
    script = Path(p.resources[job_id].script_path)
    assert script.parent == Path(run_dir) and "#SBATCH --time=00:05:00" in script.read_text()


def test_status_asks_squeue_once_for_all_blocks(run_dir: str, monkeypatch: Any) -> None:
    p = provider(run_dir)
    ids = [p.submit(p.script_for("sleep 30"), f"block-{i}") for i in range(3)]
    calls: list[tuple[str, ...]] = []
    real = batch.run_command

    def counting(argv: Any, **kwargs: Any) -> batch.CommandResult:
        calls.append(tuple(argv))
        return real(argv, **kwargs)

    monkeypatch.setattr("livedag.providers.slurm.run_command", counting)
    try:
        statuses = p.status(ids)
        assert [c[0] for c in calls] == ["squeue"]
        assert all(s.state in (JobState.PENDING, JobState.RUNNING) for s in statuses)
    finally:
        monkeypatch.undo()
        p.cancel(ids)
    wait_for(lambda: all(s.terminal for s in p.status(ids)), timeout=30, what="cancel")
    assert {s.state for s in p.status(ids)} == {JobState.CANCELLED}


def test_cancel_mid_run_says_who_cancelled(run_dir: str) -> None:
    p = provider(run_dir)
    ours = p.submit(p.script_for("echo started; sleep 120"), "ours")
    theirs = p.submit(p.script_for("echo started; sleep 120"), "theirs")
    wait_for(lambda: all(s.state is JobState.RUNNING for s in p.status([ours, theirs])),
             timeout=30, what="both jobs running")

    assert p.cancel([ours]) == [True]
    subprocess.run(["scancel", theirs], check=True, timeout=20)

    mine, other = watch(p, ours, timeout=30)[-1], watch(p, theirs, timeout=30)[-1]
    assert mine.state is JobState.CANCELLED
    assert mine.message is not None
    assert f"Slurm job {ours} was cancelled by livedag" in mine.message
    assert mine.stdout_path is not None and mine.stdout_path in mine.message
    assert other.state is JobState.CANCELLED
    assert other.message is not None
    assert f"Slurm job {theirs} was cancelled from outside livedag" in other.message


def test_failing_block_script_names_exit_code_and_stderr(run_dir: str) -> None:
    p = provider(run_dir)
    job_id = p.submit(p.script_for("echo 'no such module: numpyy' >&2; exit 3"), "bad")

    final = watch(p, job_id, timeout=60)[-1]

    assert final.state is JobState.FAILED
    assert final.exit_code == 3
    assert final.message is not None
    assert f"Slurm job {job_id} failed: its block script exited with code 3" in final.message
    assert "no such module: numpyy" in final.message
    assert final.stderr_path is not None and final.stderr_path in final.message


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"partition": "no-such-partition"}, "invalid partition"),
        ({"mem_per_node": 100_000}, "memory specification can not be satisfied"),
    ],
    ids=["bad-partition", "impossible-memory"],
)
def test_rejected_submission_raises_at_once_with_sbatch_message(
    run_dir: str, settings: dict[str, Any], said: str
) -> None:
    p = provider(run_dir, **settings)
    started = time.monotonic()
    with pytest.raises(SubmitError) as info:
        p.submit(p.script_for("true"), "rejected")
    assert time.monotonic() - started < 10
    err = info.value
    assert said in str(err).lower() and said in err.stderr.lower()
    assert err.command[0] == "sbatch" and err.returncode != 0
    assert err.script_path.startswith(run_dir) and err.script_path in str(err)
    assert p.resources == {}


def test_srun_launcher_starts_one_copy_per_task(run_dir: str) -> None:
    # --export=NONE again: srun inside the job must still pass PATH on (--export=ALL).
    p = provider(run_dir, launcher=SrunLauncher(), scheduler_options="#SBATCH --export=NONE")
    command = "python -c \"import os; open('copy-' + os.environ['SLURM_PROCID'], 'w').close()\""
    job_id = p.submit(p.script_for(command, tasks_per_node=2), "srun")

    final = watch(p, job_id, timeout=60)[-1]

    assert final.state is JobState.COMPLETED, (final, Path(final.stderr_path or "").read_text())
    assert sorted(f.name for f in Path(run_dir).glob("copy-*")) == ["copy-0", "copy-1"]
    assert "#SBATCH --ntasks-per-node=2" in Path(p.resources[job_id].script_path).read_text()


def test_a_job_left_squeue_still_gets_its_final_state_from_sacct(run_dir: str) -> None:
    """A provider that never saw the job end (its squeue record purged) asks sacct -c."""
    p = provider(run_dir)
    job_id = p.submit(p.script_for("exit 4"), "gone")
    wait_for(lambda: p.status([job_id])[0].terminal, timeout=60, what="job end")
    job = p.resources[job_id]
    job.last = None                      # forget what squeue said

    observed = p._accounting([job_id])   # the accounting path on its own

    assert observed[job_id].raw_state == "FAILED" and observed[job_id].exit_code == 4


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_walltime_timeout_reason(run_dir: str) -> None:
    p = provider(run_dir, walltime="00:01:00")
    job_id = p.submit(p.script_for("echo started; sleep 600"), "long")

    final = watch(p, job_id, timeout=180)[-1]

    assert final.state is JobState.TIMEOUT
    assert final.message is not None
    assert final.message.startswith(f"Slurm job {job_id} reached its time limit (00:01:00)")
