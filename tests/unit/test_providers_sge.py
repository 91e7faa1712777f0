"""GridEngineProvider without a cluster. qstat/qacct/qsub texts are recorded from the real
test cluster (Son of Grid Engine 8.1.9), trimmed to the fields that matter."""

from __future__ import annotations

from pathlib import Path

import pytest
from scheduler_fakes import install

from livedag.errors import SubmitError
from livedag.launchers import SimpleLauncher
from livedag.providers.base import JobState
from livedag.providers.sge import (
    GridEngineProvider,
    observe_qacct,
    parse_qacct,
    parse_qstat,
    parse_qsub,
    qstat_state,
)

QSTAT = """\
job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID 
-----------------------------------------------------------------------------------------------------------------
      1 0.50000 g.sh       root         r     11/24/2026 14:43:02 all.q@vm                           1        
      2 0.50000 gf.sh      root         t     11/24/2026 14:43:02 all.q@vm                           1        
      3 0.50000 gs.sh      root         qw    11/24/2026 14:43:02                                    1        
      4 0.50000 ge.sh      root         Eqw   11/24/2026 14:43:02                                    1        
"""  # noqa: E501, W291 (recorded as qstat printed it: wide, padded columns)


def qacct(failed: str, exit_status: str) -> str:
    return ("==============================================================\n"
            "qname        all.q               \nhostname     vm                  \n"
            "jobnumber    6                   \n"
            f"failed       {failed}\nexit_status  {exit_status}\nru_wallclock 6s\n")


def make(tmp_path: Path, **kwargs: object) -> GridEngineProvider:
    kwargs.setdefault("launcher", SimpleLauncher())
    p = GridEngineProvider(**kwargs)  # type: ignore[arg-type]
    p.script_dir = str(tmp_path)
    return p


def test_defaults_are_parsls() -> None:
    p = GridEngineProvider()
    assert (p.walltime, p.cmd_timeout, p.queue, p.label) == ("00:10:00", 60, None, "grid_engine")


def test_block_script_and_qsub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, queue="all.q", walltime="00:30:00", worker_init="source env.sh",
             scheduler_options="#$ -pe smp 4")
    fake = install(monkeypatch, "sge").reply("qsub", "7\n")

    assert p.submit(p.script_for("run-pool"), "htex-block-0") == "7"

    job = p.resources["7"]
    assert fake.calls == [("qsub", "-terse", "-q", "all.q", job.script_path)]
    lines = Path(job.script_path).read_text().splitlines()
    for directive in ["#$ -S /bin/bash", f"#$ -N {job.name}", f"#$ -o {job.stdout_path}",
                      f"#$ -e {job.stderr_path}", f"#$ -wd {tmp_path}", "#$ -l h_rt=00:30:00",
                      "#$ -pe smp 4"]:
        assert directive in lines, directive
    assert lines.index("source env.sh") < lines.index("run-pool")


def test_parsers() -> None:
    assert parse_qsub("7\n") == "7" and parse_qsub("8.1-10:1\n") == "8"
    assert parse_qstat(QSTAT) == {"1": "r", "2": "t", "3": "qw", "4": "Eqw"}
    assert [qstat_state(c) for c in ("qw", "hqw", "r", "t", "Rr", "dr", "s", "Eqw")] == [
        JobState.PENDING, JobState.PENDING, JobState.RUNNING, JobState.RUNNING,
        JobState.RUNNING, JobState.RUNNING, JobState.HELD, JobState.FAILED]
    record = parse_qacct(qacct("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit",
                               "137                  (Killed)"))
    assert record["failed"].startswith("37") and record["exit_status"].startswith("137")


@pytest.mark.parametrize(
    ("failed", "exit_status", "state", "text"),
    [
        ("0    ", "0", JobState.COMPLETED, "Grid Engine job 6 completed"),
        ("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "137                  (Killed)",
         JobState.TIMEOUT, "Grid Engine job 6 reached its time limit (h_rt 00:01:00)"),
        ("0    ", "3", JobState.FAILED,
         "Grid Engine job 6 failed: its block script exited with code 3"),
        ("100 : assumedly after job", "137                  (Killed)", JobState.FAILED,
         "Grid Engine job 6 was killed by signal 9"),
        ("26  : opening input/output file", "0", JobState.FAILED,
         "Grid Engine could not run job 6 (failed 26: opening input/output file)"),
    ],
    ids=["done", "h_rt", "exit-3", "killed", "io-error"],
)
def test_qacct_records_become_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failed: str, exit_status: str,
    state: JobState, text: str,
) -> None:
    p = make(tmp_path, walltime="00:01:00")
    install(monkeypatch, "sge").reply("qsub", "6\n")
    p.submit("pool", "b")
    fake = install(monkeypatch, "sge").reply("qstat", QSTAT)
    fake.reply("qacct", qacct(failed, exit_status))

    (status,) = p.status(["6"])

    assert fake.tools() == ["qstat", "qacct"]
    assert status.state is state
    assert status.message is not None and status.message.startswith(text), status.message


def test_killed_after_our_qdel_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    obs = observe_qacct(parse_qacct(qacct("100 : assumedly after job", "137 (Killed)")))
    assert obs.signal == 9
    p = make(tmp_path)
    fake = install(monkeypatch, "sge").reply("qsub", "6\n")
    fake.reply("qdel", "root has registered the job 6 for deletion\n")
    p.submit("pool", "b")
    p.cancel(["6"])
    fake = install(monkeypatch, "sge").reply("qstat", "")
    fake.reply("qacct", qacct("100 : assumedly after job", "137"))
    (status,) = p.status(["6"])
    assert status.state is JobState.CANCELLED
    assert status.message is not None and "cancelled by livedag" in status.message


def test_not_yet_in_qacct_stays_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(tmp_path)
    install(monkeypatch, "sge").reply("qsub", "6\n")
    p.submit("pool", "b")
    fake = install(monkeypatch, "sge").reply("qstat", "")
    fake.reply("qacct", "", "error: job id 6 not found\n", rc=1)
    (status,) = p.status(["6"])
    assert status.state is JobState.PENDING     # accounting not flushed yet: ask again later


def test_error_state_points_at_qstat_j(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(tmp_path)
    install(monkeypatch, "sge").reply("qsub", "4\n")
    p.submit("pool", "b")
    install(monkeypatch, "sge").reply("qstat", QSTAT)
    (status,) = p.status(["4"])
    assert status.state is JobState.FAILED
    assert status.message is not None
    assert "error state Eqw: `qstat -j 4` shows why" in status.message


def test_rejected_qsub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, queue="nope")
    said = ('Unable to run job: Job was rejected because job requests unknown queue "nope"\n'
            "Exiting.\n")
    install(monkeypatch, "sge").reply("qsub", "", said, rc=1)
    with pytest.raises(SubmitError, match='unknown queue "nope"'):
        p.submit("pool", "b")
