"""CondorProvider without a pool. No HTCondor can run here: the condor_submit/condor_q
texts below are written from HTCondor's documented output formats (condor_submit's
summary line, condor_q -af:jt, the JobStatus codes), not recorded from a live pool."""

from __future__ import annotations

from pathlib import Path

import pytest
from scheduler_fakes import install

from livedag.launchers import SimpleLauncher
from livedag.providers.base import JobState
from livedag.providers.condor import (
    CondorProvider,
    condor_quote,
    parse_autoformat,
    parse_condor_submit,
)


def make(tmp_path: Path, **kwargs: object) -> CondorProvider:
    kwargs.setdefault("launcher", SimpleLauncher())
    p = CondorProvider(**kwargs)  # type: ignore[arg-type]
    p.script_dir = str(tmp_path)
    return p


def test_submit_description(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, cores_per_slot=4, mem_per_slot=2.5, requirements='OpSys == "LINUX"',
             environment={"MODE": "it's \"quoted\""}, project="astro",
             transfer_input_files=["/data/in.txt"], worker_init="source env.sh")
    fake = install(monkeypatch, "condor").reply(
        "condor_submit", "Submitting job(s).\n1 job(s) submitted to cluster 118907.\n")

    assert p.submit(p.script_for("run-pool"), "htex-block-0") == "118907.0"

    job = p.resources["118907.0"]
    (argv,) = fake.calls
    assert argv[0] == "condor_submit" and argv[1].endswith(".submit")
    desc = Path(argv[1]).read_text()
    assert f"transfer_input_files    = {job.script_path},/data/in.txt" in desc
    assert f"arguments               = {Path(job.script_path).name}" in desc
    assert f"output                  = {job.stdout_path}" in desc
    assert 'requirements            = OpSys == "LINUX"' in desc
    assert "RequestMemory = 2560" in desc and "RequestCpus = 4" in desc
    assert f"""environment             = "MODE='it''s ""quoted""' JOBNAME='{job.name}'\"""" in desc
    script = Path(job.script_path).read_text()
    assert script.index("PARSL_CORES=4") < script.index("source env.sh") < script.index("run-pool")


def test_parsers() -> None:
    assert parse_condor_submit("Submitting job(s).\n1 job(s) submitted to cluster 42.\n") == "42.0"
    assert parse_condor_submit("ERROR: Failed to parse command file\n") is None
    assert condor_quote("a'b") == "'a''b'"
    found = parse_autoformat(
        "42.0\t1\tundefined\tundefined\tundefined\n"
        "43.0\t4\t0\tundefined\tundefined\n"
        "44.0\t4\t2\tundefined\tundefined\n"
        "45.0\t5\tundefined\tError from slot1@node7: Failed to execute '/bin/bash'\tundefined\n"
        "46.0\t3\tundefined\tundefined\tvia condor_rm (by user alice)\n"
        "47.0\t6\tundefined\tundefined\tundefined\n"
    )
    assert {k: v.state for k, v in found.items()} == {
        "42.0": JobState.PENDING, "43.0": JobState.COMPLETED, "44.0": JobState.FAILED,
        "45.0": JobState.FAILED, "46.0": JobState.CANCELLED, "47.0": JobState.RUNNING}
    assert found["45.0"].reason.startswith("Error from slot1@node7")


def test_held_job_reason_and_history_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(tmp_path)
    fake = install(monkeypatch, "condor")
    fake.reply("condor_submit", "1 job(s) submitted to cluster 45.\n")
    fake.reply("condor_submit", "1 job(s) submitted to cluster 46.\n")
    p.submit("pool", "a")
    p.submit("pool", "b")
    fake = install(monkeypatch, "condor")
    fake.reply("condor_q", "45.0\t5\tundefined\tError from slot1@node7: no such file\tundefined\n")
    fake.reply("condor_history", "46.0\t4\t0\tundefined\tundefined\n")

    held, done = p.status(["45.0", "46.0"])

    assert fake.tools() == ["condor_q", "condor_history"]
    assert held.state is JobState.FAILED
    assert held.message is not None
    assert held.message.startswith("HTCondor job 45.0 is held: Error from slot1@node7")
    assert done.state is JobState.COMPLETED
