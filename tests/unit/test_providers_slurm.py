"""SlurmProvider without a cluster: the script it writes and how it reads squeue/sacct.

squeue/sacct/sbatch texts marked "recorded" come from the real test cluster; the OOM and
NODE_FAIL lines (which a single node without cgroups cannot produce) follow sacct's
documented --parsable2 format.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scheduler_fakes import install

from livedag.errors import SubmitError
from livedag.launchers import SimpleLauncher
from livedag.providers.base import JobState
from livedag.providers.slurm import SlurmProvider, parse_sacct, parse_sbatch, parse_squeue


def make(tmp_path: Path, **kwargs: object) -> SlurmProvider:
    kwargs.setdefault("launcher", SimpleLauncher())
    p = SlurmProvider(**kwargs)  # type: ignore[arg-type]
    p.script_dir = str(tmp_path)
    return p


def submitted(p: SlurmProvider, monkeypatch: pytest.MonkeyPatch, *ids: str) -> None:
    fake = install(monkeypatch, "slurm")
    for job_id in ids:
        fake.reply("sbatch", f"{job_id}\n")
    assert [p.submit(p.script_for("run-pool"), f"block-{i}") for i in ids] == list(ids)
    monkeypatch.undo()


def test_defaults_are_parsls() -> None:
    p = SlurmProvider()
    assert (p.walltime, p.cmd_timeout, p.exclusive, p.init_blocks, p.min_blocks, p.max_blocks,
            p.nodes_per_block, p.status_batch_size) == ("00:10:00", 10, True, 1, 0, 1, 1, 50)
    assert type(p.launcher).__name__ == "SingleNodeLauncher"
    assert p.label == "slurm"


def test_block_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, partition="debug", account="proj", qos="high", constraint="haswell",
             mem_per_node=4, cores_per_node=8, walltime="01:30:00", nodes_per_block=2,
             worker_init="module load python", scheduler_options="#SBATCH --exclusive=user")
    fake = install(monkeypatch, "slurm").reply("sbatch", "12\n")

    job_id = p.submit(p.script_for("run-pool --port 1", tasks_per_node=2), "htex-block-0")

    assert job_id == "12"
    (argv,) = fake.calls
    job = p.resources["12"]
    assert argv == ("sbatch", "--parsable", job.script_path)
    text = Path(job.script_path).read_text()
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for directive in [
        f"#SBATCH --job-name={job.name}", f"#SBATCH --output={job.stdout_path}",
        f"#SBATCH --error={job.stderr_path}", f"#SBATCH --chdir={tmp_path}",
        "#SBATCH --nodes=2", "#SBATCH --time=01:30:00", "#SBATCH --ntasks-per-node=2",
        "#SBATCH --exclusive", "#SBATCH --partition=debug", "#SBATCH --account=proj",
        "#SBATCH --qos=high", "#SBATCH --constraint=haswell", "#SBATCH --mem=4g",
        "#SBATCH --cpus-per-task=4",
    ]:
        assert directive in lines, directive
    # the user's own directives come after ours (a later #SBATCH wins), before any command
    directives = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    assert lines[directives[-1]] == "#SBATCH --exclusive=user"
    assert directives == list(range(1, len(directives) + 1))
    assert text.index("LIVEDAG_PYTHON=") < text.index("module load python") < text.index("run-pool")
    assert "export PARSL_CORES=4" in text and "export PARSL_MEMORY_GB=4" in text
    assert job.stdout_path.startswith(str(tmp_path)) and job.script_path.endswith(".sh")


def test_no_optional_directives_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, exclusive=False)
    install(monkeypatch, "slurm").reply("sbatch", "3\n")
    text = Path(p.resources[p.submit("pool", "b")].script_path).read_text()
    for option in ("--exclusive", "--partition", "--account", "--mem", "--cpus-per-task"):
        assert option not in text
    assert "#SBATCH --ntasks-per-node=1" in text


def test_parse_sbatch() -> None:
    assert parse_sbatch("12\n") == "12"                              # recorded (--parsable)
    assert parse_sbatch("77;cluster2\n") == "77"
    assert parse_sbatch("Submitted batch job 42\n") == "42"          # Parsl's regex_job_id
    assert parse_sbatch("JOB=9 queued", r"JOB=(?P<id>\d+)") == "9"
    assert parse_sbatch("sbatch: warning: something\n") is None


def test_sbatch_without_an_id_is_a_submit_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(tmp_path)
    install(monkeypatch, "slurm").reply("sbatch", "nothing useful\n")
    with pytest.raises(SubmitError, match="printed no job id"):
        p.submit("pool", "b")


def test_rejected_sbatch_carries_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(tmp_path, partition="nope")
    said = ("sbatch: error: invalid partition specified: nope\n"          # recorded
            "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    install(monkeypatch, "slurm").reply("sbatch", "", said, rc=1)
    with pytest.raises(SubmitError) as info:
        p.submit("pool", "b")
    assert "invalid partition specified: nope" in str(info.value)
    assert info.value.returncode == 1 and info.value.stderr == said


def test_parse_squeue_skips_cluster_banner() -> None:
    out = "CLUSTER: c2\n1|PENDING|Resources\n2|RUNNING|None\n3|CANCELLED|None\n"
    assert parse_squeue(out) == {"1": ("PENDING", "Resources"), "2": ("RUNNING", "None"),
                                 "3": ("CANCELLED", "None")}


def test_parse_sacct() -> None:
    found = parse_sacct("1|COMPLETED|0:0\n3|FAILED|3:0\n4|CANCELLED by 0|0:15\n"
                        "5|REQUEUED|0:0\n5|RUNNING|0:0\n")
    assert (found["3"].state, found["3"].exit_code) == (JobState.FAILED, 3)
    assert (found["4"].raw_state, found["4"].signal, found["4"].reason) == ("CANCELLED", 15, "by 0")
    assert found["5"].state is JobState.RUNNING         # the last line of a requeued job wins


def test_one_squeue_call_for_all_live_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(tmp_path)
    submitted(p, monkeypatch, "1", "2", "3")
    fake = install(monkeypatch, "slurm").reply(
        "squeue", "1|PENDING|Priority\n2|RUNNING|None\n3|PENDING|None\n")

    statuses = p.status(["1", "2", "3"])

    assert fake.calls == [("squeue", "--noheader", "--states=all", "--format=%i|%T|%r",
                           "--jobs=1,2,3")]
    assert [s.state for s in statuses] == [JobState.PENDING, JobState.RUNNING, JobState.PENDING]
    assert statuses[0].message == "Slurm job 1 is waiting in the queue (Priority)"


@pytest.mark.parametrize(
    ("sacct", "state", "text", "code"),
    [
        ("7|TIMEOUT|0:0", JobState.TIMEOUT, "Slurm job 7 reached its time limit (00:01:00)", 0),
        ("7|OUT_OF_MEMORY|0:125", JobState.FAILED,
         "Slurm job 7 ran out of memory (mem_per_node=2 GB)", 0),
        ("7|NODE_FAIL|0:0", JobState.FAILED,
         "Slurm job 7 was lost because a node it ran on failed", 0),
        ("7|CANCELLED by 1000|0:15", JobState.CANCELLED,
         "Slurm job 7 was cancelled from outside livedag", 0),
        ("7|FAILED|3:0", JobState.FAILED,
         "Slurm job 7 failed: its block script exited with code 3", 3),
        ("7|FAILED|0:9", JobState.FAILED,
         "Slurm job 7 failed: its block script was killed by signal 9", 0),
        ("7|COMPLETED|0:0", JobState.COMPLETED, "Slurm job 7 completed", 0),
    ],
    ids=["timeout", "oom", "node-fail", "cancelled", "exit-3", "signal", "completed"],
)
def test_final_states_become_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sacct: str, state: JobState, text: str,
    code: int,
) -> None:
    p = make(tmp_path, walltime="00:01:00", mem_per_node=2)
    submitted(p, monkeypatch, "7")
    Path(p.resources["7"].stderr_path).write_text("Traceback ...\nImportError: no zmq\n")
    raw = sacct.split("|")[1].split(maxsplit=1)[0]
    install(monkeypatch, "slurm").reply("squeue", f"7|{raw}|None\n").reply("sacct", sacct + "\n")

    (status,) = p.status(["7"])

    assert status.state is state
    assert status.message is not None and status.message.startswith(text)
    assert status.exit_code == code
    if state is not JobState.COMPLETED:
        assert p.resources["7"].stdout_path in status.message
    if state is JobState.FAILED:
        assert "ImportError: no zmq" in status.message   # the evidence, from the job's stderr


def test_final_state_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path)
    submitted(p, monkeypatch, "7")
    fake = install(monkeypatch, "slurm").reply("squeue", "7|COMPLETED|None\n")
    fake.reply("sacct", "7|COMPLETED|0:0\n")
    p.status(["7"])
    calls = len(fake.calls)
    assert p.status(["7"])[0].state is JobState.COMPLETED
    assert len(fake.calls) == calls


def test_without_accounting_sacct_c_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(tmp_path)
    submitted(p, monkeypatch, "9")
    fake = install(monkeypatch, "slurm")
    # recorded: every id purged from squeue, and no slurmdbd
    fake.reply("squeue", "", "slurm_load_jobs error: Invalid job id specified\n", rc=1)
    fake.reply("sacct", "", "Slurm accounting storage is disabled\n", rc=1)
    fake.reply("sacct", "9|FAILED|2:0\n")

    (status,) = p.status(["9"])

    sacct_calls = [c for c in fake.calls if c[0] == "sacct"]
    assert "-c" not in sacct_calls[0] and "-c" in sacct_calls[1]
    assert status.state is JobState.FAILED and status.exit_code == 2


def test_a_failed_poll_keeps_the_last_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = make(tmp_path)
    submitted(p, monkeypatch, "5")
    install(monkeypatch, "slurm").reply(
        "squeue", "", "slurm_load_jobs error: Unable to contact slurm controller\n", rc=1)
    (status,) = p.status(["5"])
    assert status.state is JobState.PENDING


def test_cancel_is_one_scancel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = make(tmp_path, clusters="c2")
    submitted(p, monkeypatch, "5", "6")
    fake = install(monkeypatch, "slurm").reply("scancel")
    assert p.cancel(["5", "6"]) == [True, True]
    assert fake.calls == [("scancel", "--clusters=c2", "5", "6")]
    assert p.resources["5"].cancelled
