"""PBSProProvider without a server. No PBS server can run here: the qsub/qstat texts below
are written from PBS Professional's documented output formats (qstat -f -F json, job
exit codes), not recorded from a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scheduler_fakes import install

from livedag.launchers import SimpleLauncher
from livedag.providers.base import JobState
from livedag.providers.pbs import PBSProProvider, observe_pbs, parse_qstat_json, parse_qsub


def qstat_json(**jobs: dict[str, object]) -> str:
    return json.dumps({"timestamp": 1700000000, "pbs_version": "2022.1.1",
                       "pbs_server": "pbs01", "Jobs": jobs}, indent=4)


def make(tmp_path: Path, **kwargs: object) -> PBSProProvider:
    kwargs.setdefault("launcher", SimpleLauncher())
    p = PBSProProvider(**kwargs)  # type: ignore[arg-type]
    p.script_dir = str(tmp_path)
    return p


def test_defaults_are_parsls() -> None:
    p = PBSProProvider()
    assert (p.walltime, p.cmd_timeout, p.cpus_per_node, p.label) == ("00:20:00", 120, 1, "pbspro")


def test_block_script_and_qsub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, account="proj", queue="debug", cpus_per_node=32, nodes_per_block=2,
             select_options="ngpus=4", walltime="01:00:00")
    fake = install(monkeypatch, "pbs").reply("qsub", "1234.pbs01\n")

    assert p.submit(p.script_for("run-pool"), "htex-block-0") == "1234.pbs01"

    job = p.resources["1234.pbs01"]
    assert fake.calls == [("qsub", "-q", "debug", "-A", "proj", job.script_path)]
    lines = Path(job.script_path).read_text().splitlines()
    for directive in ["#PBS -S /bin/bash", f"#PBS -N {job.name}", "#PBS -m n",
                      "#PBS -l walltime=01:00:00", "#PBS -l select=2:ncpus=32:ngpus=4",
                      f"#PBS -o {job.stdout_path}", f"#PBS -e {job.stderr_path}"]:
        assert directive in lines, directive
    assert f"cd {tmp_path}" in lines        # PBS starts jobs in $HOME


def test_parse_qsub() -> None:
    assert parse_qsub("1234.pbs01\n") == "1234.pbs01"
    assert parse_qsub("1235[].pbs01\n") == "1235[].pbs01"
    assert parse_qsub("qsub: Unknown queue\n") is None


@pytest.mark.parametrize(
    ("attrs", "state", "text"),
    [
        ({"job_state": "Q", "comment": "Not Running: Insufficient amount of resource: ncpus"},
         JobState.PENDING, "PBS job 1234.pbs01 is waiting in the queue (Not Running: "),
        ({"job_state": "R"}, JobState.RUNNING, "PBS job 1234.pbs01 is running"),
        ({"job_state": "F", "Exit_status": 0}, JobState.COMPLETED, "PBS job 1234.pbs01 completed"),
        ({"job_state": "F", "Exit_status": -29, "comment": "Job run at ... and failed"},
         JobState.TIMEOUT, "PBS job 1234.pbs01 reached its time limit (00:20:00)"),
        ({"job_state": "F", "Exit_status": 271}, JobState.FAILED,
         "PBS job 1234.pbs01 was killed by signal 15"),
        ({"job_state": "F", "Exit_status": 3}, JobState.FAILED,
         "PBS job 1234.pbs01 failed: its block script exited with code 3"),
        ({"job_state": "F", "Exit_status": -27}, JobState.FAILED,
         "PBS ended job 1234.pbs01: it used more memory than it asked for (mem)"),
    ],
    ids=["queued", "running", "done", "walltime", "signal", "exit-3", "mem"],
)
def test_qstat_json_becomes_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attrs: dict[str, object], state: JobState,
    text: str,
) -> None:
    p = make(tmp_path)
    install(monkeypatch, "pbs").reply("qsub", "1234.pbs01\n")
    p.submit("pool", "b")
    # qstat prints the server's full name: the provider matches it to the id qsub gave
    fake = install(monkeypatch, "pbs").reply(
        "qstat", qstat_json(**{"1234.pbs01.cluster.org": {"Job_Name": "b", **attrs}}))

    (status,) = p.status(["1234.pbs01"])

    assert fake.calls[0][:5] == ("qstat", "-x", "-f", "-F", "json")
    assert status.state is state
    assert status.message is not None and status.message.startswith(text), status.message


def test_unknown_job_id_with_others_still_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(tmp_path)
    install(monkeypatch, "pbs").reply("qsub", "1.pbs01\n").reply("qsub", "2.pbs01\n")
    p.submit("pool", "a")
    p.submit("pool", "b")
    install(monkeypatch, "pbs").reply(
        "qstat", qstat_json(**{"2.pbs01": {"job_state": "R"}}),
        "qstat: Unknown Job Id 1.pbs01\n", rc=153)
    first, second = p.status(["1.pbs01", "2.pbs01"])
    assert second.state is JobState.RUNNING
    assert first.state is JobState.PENDING   # forgotten by the server: waits out the grace


def test_parse_qstat_json_tolerates_garbage() -> None:
    assert parse_qstat_json("") == {} and parse_qstat_json("not json") == {}
    assert observe_pbs({"job_state": "H"}).state is JobState.HELD
