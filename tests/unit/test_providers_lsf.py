"""LSFProvider without a cluster. No LSF can run here: the bsub/bjobs texts below are
written from LSF's documented output formats (bsub's confirmation line, bjobs -o with a
delimiter, exit reasons), not recorded from a live cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from scheduler_fakes import install

from livedag.errors import ConfigurationError
from livedag.launchers import SimpleLauncher
from livedag.providers.base import JobState
from livedag.providers.lsf import LSFProvider, parse_bjobs, parse_bsub


def make(tmp_path: Path, **kwargs: object) -> LSFProvider:
    kwargs.setdefault("launcher", SimpleLauncher())
    p = LSFProvider(**kwargs)  # type: ignore[arg-type]
    p.script_dir = str(tmp_path)
    return p


def test_defaults_are_parsls() -> None:
    p = LSFProvider()
    assert (p.walltime, p.cmd_timeout, p.bsub_redirection, p.request_by_nodes, p.label) == (
        "00:10:00", 120, False, True, "LSF")


def test_block_script_by_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, project="BIO123", queue="batch", nodes_per_block=4, walltime="02:00:30")
    fake = install(monkeypatch, "lsf").reply(
        "bsub", "Job <1234> is submitted to queue <batch>.\n")

    assert p.submit(p.script_for("run-pool"), "htex-block-0") == "1234"

    job = p.resources["1234"]
    assert fake.calls == [("bsub", job.script_path)]
    lines = Path(job.script_path).read_text().splitlines()
    for directive in ["#BSUB -W 121", f"#BSUB -J {job.name}", f"#BSUB -o {job.stdout_path}",
                      f"#BSUB -e {job.stderr_path}", "#BSUB -P BIO123", "#BSUB -q batch",
                      "#BSUB -nnodes 4"]:
        assert directive in lines, directive


def test_by_cores_and_redirection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, request_by_nodes=False, cores_per_block=40, cores_per_node=16,
             bsub_redirection=True)
    assert p.nodes_per_block == 3
    argv, stdin = p.submit_command(p.new_job("b"))
    assert argv == ["bsub"] and stdin is not None and stdin.endswith(".sh")
    header = p.header(p.new_job("b"), 1)
    assert "#BSUB -n 40" in header and '#BSUB -R "span[ptile=16]"' in header
    with pytest.raises(ConfigurationError, match="cores_per_block and cores_per_node"):
        LSFProvider(request_by_nodes=False)


def test_parse_bsub() -> None:
    assert parse_bsub("Job <77> is submitted to default queue <normal>.\n") == "77"
    assert parse_bsub("Request aborted by esub. Job not submitted.\n") is None


def test_parse_bjobs() -> None:
    found, unknown = parse_bjobs(
        "1|RUN|-|-\n2|PEND|-|-\n3|DONE|-|-\n",
        "Job <4> is not found\n",
    )
    assert {k: v.state for k, v in found.items()} == {
        "1": JobState.RUNNING, "2": JobState.PENDING, "3": JobState.COMPLETED}
    assert unknown == {"4"}


@pytest.mark.parametrize(
    ("line", "state", "text"),
    [
        ("9|EXIT|140|TERM_RUNLIMIT: job killed after reaching LSF run time limit",
         JobState.TIMEOUT, "LSF job 9 reached its time limit (00:10:00)"),
        ("9|EXIT|130|TERM_OWNER: job killed by owner", JobState.CANCELLED,
         "LSF job 9 was killed by its owner (bkill)"),
        ("9|EXIT|137|TERM_MEMLIMIT: job killed after reaching LSF memory usage limit",
         JobState.FAILED, "LSF job 9 ran out of memory"),
        ("9|EXIT|3|-", JobState.FAILED, "LSF job 9 failed: its block script exited with code 3"),
        ("9|DONE|-|-", JobState.COMPLETED, "LSF job 9 completed"),
    ],
    ids=["runlimit", "owner", "memlimit", "exit-3", "done"],
)
def test_bjobs_becomes_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, state: JobState, text: str
) -> None:
    p = make(tmp_path)
    install(monkeypatch, "lsf").reply("bsub", "Job <9> is submitted to queue <normal>.\n")
    p.submit("pool", "b")
    fake = install(monkeypatch, "lsf").reply("bjobs", line + "\n")

    (status,) = p.status(["9"])

    assert fake.calls[0][:4] == ("bjobs", "-noheader", "-o",
                                 "jobid stat exit_code exit_reason delimiter='|'")
    assert status.state is state
    assert status.message is not None and status.message.startswith(text), status.message
