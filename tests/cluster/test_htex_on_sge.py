"""The ZMQ executor on a real single-node Son of Grid Engine (see conftest.py), through
the user API: a DAG end to end, qdel of a block mid-task, and h_rt running out (Grid
Engine takes seconds for h_rt, so that one is quick here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cluster_apps
import pytest
from htex_cluster import WORKER_INIT, loaded, qstat

from livedag import bash_app, python_app
from livedag.errors import ManagerLost
from livedag.events import TaskOutput
from livedag.providers.sge import GridEngineProvider

pytestmark = [pytest.mark.sge, pytest.mark.timeout(120), pytest.mark.usefixtures("sge_cluster")]

add = python_app(cluster_apps.add)
where = python_app(cluster_apps.where)
sleep_then = python_app(cluster_apps.sleep_then)
shout = bash_app(cluster_apps.shout)


def sge(**kwargs: Any) -> GridEngineProvider:
    kwargs.setdefault("walltime", "00:05:00")
    return GridEngineProvider(cmd_timeout=20, worker_init=WORKER_INIT, **kwargs)


def test_a_dag_of_python_and_bash_apps_runs_in_a_grid_engine_job(tmp_path: Path) -> None:
    with loaded(tmp_path, sge(), queued=qstat) as run:
        total = add(add(1, 2), add(3, 4))
        info = where(total)
        said = shout("total", stdout=str(tmp_path / "shout.out"))

        assert total.result(timeout=60) == 10
        ran = info.result(timeout=30)
        assert said.result(timeout=30) == 0

        assert ran["value"] == 10 and ran["init"] == "ran"
        assert os.path.realpath(str(ran["python"])) == os.path.realpath(sys.executable)
        (job,) = run.job_ids()
        assert ran["job"] == job
        event = run.running(info.tid)
        assert (event.block_id, event.job_id) == ("0", job)
        output = "".join(e.text for e in run.of(TaskOutput, task_id=total.tid))
        assert output == "adding 3 and 7\n"
        assert (tmp_path / "shout.out").read_text() == "total 42\n"


def test_qdel_mid_task_names_the_reason_and_the_retry_succeeds(tmp_path: Path) -> None:
    with loaded(tmp_path, sge(), queued=qstat, retries=1) as run:
        early = add(1, 2)
        assert early.result(timeout=60) == 3
        long = sleep_then(5, "survived")
        first = run.running(long.tid)

        subprocess.run(["qdel", str(first.job_id)], check=True, timeout=20,
                       capture_output=True)

        assert long.result(timeout=90) == "survived"
        (failure,) = run.failures(long.tid)
        assert failure.will_retry and failure.exc_type == "ManagerLost"
        text = failure.traceback
        assert f"Grid Engine job {first.job_id} was killed by signal" in text
        assert "deleted with qdel" in text
        job = run.provider.resources[str(first.job_id)]
        assert job.stdout_path in text and job.stderr_path in text and "pool.log" in text
        assert run.running(long.tid, try_number=2).job_id != first.job_id
        assert add(early, 1).result(timeout=30) == 4


def test_h_rt_ends_the_block_and_the_task_says_so(tmp_path: Path) -> None:
    with loaded(tmp_path, sge(walltime="00:00:08"), queued=qstat) as run:
        long = sleep_then(120, "never")
        event = run.running(long.tid)
        with pytest.raises(ManagerLost) as info:
            long.result(timeout=60)
        err = info.value
        assert (f"Grid Engine job {event.job_id} reached its time limit (h_rt 00:00:08)"
                in str(err))
        assert err.job_state == "TIMEOUT"
