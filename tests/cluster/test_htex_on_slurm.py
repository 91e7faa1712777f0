"""The ZMQ executor on a real single-node Slurm (see conftest.py), through the user API:
`livedag.load(Config(executors=[HighThroughputExecutor(provider=SlurmProvider(...))]))`.

    a DAG of python and bash apps        -> results, output, RUNNING on the Slurm job
    more tasks than one block's workers  -> a second block; idle -> both scaled in, gone
    scancel of a block mid-task          -> ManagerLost naming the reason and the files;
                                            retried on a new block; other results stay
    the block's walltime runs out        -> "reached its time limit (00:01:00)"  [slow]
    a partition that does not exist      -> SubmitError from sbatch, at once
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cluster_apps
import pytest
from htex_cluster import WORKER_INIT, children, loaded, squeue, wait_gone

import livedag
from livedag import Config, bash_app, python_app
from livedag.errors import ExecutorError, ManagerLost, SubmitError
from livedag.events import TaskOutput
from livedag.executors.htex import HighThroughputExecutor
from livedag.providers.slurm import SlurmProvider

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(120),
              pytest.mark.usefixtures("slurm_cluster")]

add = python_app(cluster_apps.add)
where = python_app(cluster_apps.where)
sleep_then = python_app(cluster_apps.sleep_then)
shout = bash_app(cluster_apps.shout)


def slurm(**kwargs: Any) -> SlurmProvider:
    # Two blocks must share the one node: not --exclusive.
    kwargs.setdefault("walltime", "00:05:00")
    kwargs.setdefault("partition", "debug")
    return SlurmProvider(exclusive=False, cmd_timeout=20,
                         worker_init=WORKER_INIT, **kwargs)


def test_a_dag_of_python_and_bash_apps_runs_in_a_slurm_job(tmp_path: Path) -> None:
    # --export=NONE: the job gets none of our environment; workers still run this Python.
    provider = slurm(scheduler_options="#SBATCH --export=NONE")
    with loaded(tmp_path, provider, queued=squeue) as run:
        total = add(add(1, 2), add(3, 4))
        info = where(total)
        said = shout("total", stdout=str(tmp_path / "shout.out"),
                     stderr=str(tmp_path / "shout.err"))

        assert total.result(timeout=60) == 10
        ran = info.result(timeout=30)
        assert said.result(timeout=30) == 0

        assert ran["value"] == 10 and ran["init"] == "ran"
        assert os.path.realpath(str(ran["python"])) == os.path.realpath(sys.executable)
        (job,) = run.job_ids()
        assert ran["job"] == job
        event = run.running(info.tid)
        assert (event.block_id, event.job_id) == ("0", job) and event.host
        assert ("0", "running", job) in run.blocks()
        output = "".join(e.text for e in run.of(TaskOutput, task_id=total.tid))
        assert output == "adding 3 and 7\n"
        assert (tmp_path / "shout.out").read_text() == "total 42\n"
        assert (tmp_path / "shout.err").read_text() == "total to stderr\n"


def test_scales_out_to_two_blocks_and_back_in_when_idle(tmp_path: Path) -> None:
    provider = slurm(init_blocks=1, min_blocks=0, max_blocks=2)
    with loaded(tmp_path, provider, queued=squeue, max_workers_per_node=1,
                max_idletime=3) as run:
        futs = [sleep_then(2, i) for i in range(6)]
        assert [f.result(timeout=60) for f in futs] == list(range(6))

        jobs = run.job_ids()
        assert len(jobs) == 2, run.blocks()   # max_blocks=2
        used = {run.running(f.tid).job_id for f in futs}
        assert used == set(jobs)              # both blocks ran tasks
        run.wait_for(lambda: sum(s == "scaled_in" for _, s, _ in run.blocks()) == 2,
                     timeout=30, what="both blocks scaled in")
        deadline = time.monotonic() + 20
        while squeue(jobs) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert squeue(jobs) == []             # the Slurm jobs are gone


def test_scancel_mid_task_names_the_reason_and_the_retry_succeeds(tmp_path: Path) -> None:
    with loaded(tmp_path, slurm(max_blocks=1), queued=squeue, retries=1) as run:
        early = add(1, 2)
        assert early.result(timeout=60) == 3
        long = sleep_then(6, "survived")
        first = run.running(long.tid)

        subprocess.run(["scancel", str(first.job_id)], check=True, timeout=20)

        assert long.result(timeout=60) == "survived"
        (failure,) = run.failures(long.tid)
        assert failure.will_retry and failure.exc_type == "ManagerLost"
        text = failure.traceback
        job = first.job_id
        assert f"Slurm job {job} was cancelled from outside livedag" in text
        assert f"task {long.tid} 'sleep_then' (try 1)" in text and "block 0" in text
        stdout, stderr = run.provider.resources[str(job)].stdout_path, \
            run.provider.resources[str(job)].stderr_path
        assert stdout in text and stderr in text and "pool.log" in text
        second = run.running(long.tid, try_number=2)
        assert second.block_id == "1" and second.job_id != job
        assert ("0", "cancelled", job) in run.blocks()
        # What was computed stays; the DAG goes on.
        assert early.result() == 3
        assert add(early, 1).result(timeout=30) == 4


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_walltime_ends_the_block_and_the_task_says_so(tmp_path: Path) -> None:
    with loaded(tmp_path, slurm(walltime="00:01:00"), queued=squeue) as run:
        long = sleep_then(300, "never")
        event = run.running(long.tid)
        with pytest.raises(ManagerLost) as info:
            long.result(timeout=150)
        err = info.value
        assert f"Slurm job {event.job_id} reached its time limit (00:01:00)" in str(err)
        assert err.job_state == "TIMEOUT" and err.job_id == event.job_id
        assert "pool.log" in str(err)


def test_bad_partition_fails_the_start_at_once_with_sbatch_message(tmp_path: Path) -> None:
    before = children()
    ex = HighThroughputExecutor(label="cluster", provider=SlurmProvider(
        partition="no-such-partition", exclusive=False, cmd_timeout=20))
    started = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        livedag.load(Config(executors=[ex], run_dir=str(tmp_path)))
    assert time.monotonic() - started < 20
    cause = info.value.__cause__
    assert isinstance(cause, SubmitError) and "invalid partition" in cause.stderr.lower()
    assert "invalid partition" in str(info.value).lower()
    assert wait_gone(children() - before, timeout=10) == []   # no interchange left behind
    livedag.clear()


def test_bad_partition_fails_tasks_at_once_when_no_block_started_yet(tmp_path: Path) -> None:
    provider = slurm(partition="no-such-partition", init_blocks=0)
    with loaded(tmp_path, provider, queued=squeue) as run:
        started = time.monotonic()
        fut = add(1, 2)
        with pytest.raises(SubmitError) as info:
            fut.result(timeout=30)
        assert time.monotonic() - started < 10
        assert "invalid partition" in str(info.value).lower()
        assert f"task {fut.tid} 'add'" in str(info.value)
        livedag.resubmit(fut)  # its arguments came back from the interchange: it tries again
        with pytest.raises(SubmitError):
            fut.result(timeout=30)
        assert len(fut.tries) == 2
        assert run.job_ids() == []
