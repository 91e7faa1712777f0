"""livedag.providers.batch: the parts every batch provider shares."""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import pytest

from livedag.errors import ConfigurationError, SchedulerCommandError, SubmitError
from livedag.providers import batch
from livedag.providers.base import JobState
from livedag.providers.slurm import SlurmProvider


def test_walltime_parsing() -> None:
    assert batch.walltime_seconds("00:10:00") == 600
    assert batch.walltime_seconds("1:00:05") == 3605
    assert batch.walltime_seconds("48:00:00") == 48 * 3600
    assert batch.walltime_seconds("05:00") == 300
    assert batch.walltime_minutes("00:00:30") == 1
    assert batch.walltime_minutes("01:00:01") == 61


@pytest.mark.parametrize("bad", ["10 minutes", "", "1:2:3:4", "00:10:xx"])
def test_bad_walltime_names_provider_and_format(bad: str) -> None:
    with pytest.raises(ConfigurationError, match=r"SlurmProvider: walltime must look like"):
        SlurmProvider(walltime=bad)


def test_settings_are_checked_when_the_provider_is_made() -> None:
    with pytest.raises(ConfigurationError, match="min_blocks <= max_blocks"):
        SlurmProvider(min_blocks=3, max_blocks=1)
    with pytest.raises(ConfigurationError, match="parallelism"):
        SlurmProvider(parallelism=2)
    with pytest.raises(ConfigurationError, match="nodes_per_block"):
        SlurmProvider(nodes_per_block=0)


def test_safe_job_name() -> None:
    assert batch.safe_job_name("htex-block-0.171.2") == "htex-block-0.171.2"
    assert batch.safe_job_name("my label/with:odd chars") == "my_label_with_odd_chars"
    assert batch.safe_job_name("7up")[0].isalpha()       # Grid Engine rejects digit-first
    assert len(batch.safe_job_name("x" * 500)) == 64


def test_render_needs_every_field() -> None:
    assert batch.render("a=$a ${b}", a=1, b="x") == "a=1 x"
    with pytest.raises(ConfigurationError, match="'b'"):
        batch.render("$a $b", a=1)


def test_run_command_returns_output_and_code() -> None:
    result = batch.run_command([sys.executable, "-c", "import sys; print('out'); "
                                "sys.stderr.write('err'); sys.exit(3)"], timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err")


def test_run_command_timeout_is_a_clear_error() -> None:
    started = time.monotonic()
    with pytest.raises(SchedulerCommandError, match=r"did not finish within cmd_timeout=0.3 s"):
        batch.run_command([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3)
    assert time.monotonic() - started < 10


def test_missing_tool_is_a_clear_error() -> None:
    with pytest.raises(SchedulerCommandError, match="'no-such-sbatch' was not found on PATH"):
        batch.run_command(["no-such-sbatch"], timeout=5)


def test_errors_pickle_with_their_fields() -> None:
    err = SubmitError("refused", provider="SlurmProvider", command=["sbatch", "x.sh"],
                      returncode=1, stderr="sbatch: error: invalid partition", script_path="x.sh")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, SubmitError) and isinstance(back, ConfigurationError)
    assert (back.stderr, back.command, back.script_path) == (err.stderr, ["sbatch", "x.sh"], "x.sh")
    cmd = pickle.loads(pickle.dumps(SchedulerCommandError("slow", command=["squeue"],
                                                          timed_out=True)))
    assert cmd.timed_out and cmd.command == ["squeue"] and str(cmd) == "slow"


def test_prelude_puts_the_submitting_python_first() -> None:
    text = batch.python_prelude()
    assert f"export LIVEDAG_PYTHON={sys.executable}" in text
    assert text.splitlines()[1].startswith(f"export PATH={Path(sys.executable).parent}")


def test_tail_reads_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "err"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert batch.tail(str(path), 2) == "line 98\nline 99"
    assert batch.tail(str(tmp_path / "absent")) == ""


def test_a_job_missing_everywhere_waits_for_accounting_then_ends(tmp_path: Path) -> None:
    p = SlurmProvider()
    p.script_dir = str(tmp_path)
    job = p.new_job("block")
    job.job_id = "12"
    assert p.missing(job, now=100.0) is None                       # maybe not flushed yet
    assert p.missing(job, now=100.0 + p.accounting_grace - 1) is None
    late = p.missing(job, now=100.0 + p.accounting_grace + 1)
    assert late is not None and late.state is JobState.COMPLETED
    assert late.message is not None and "kept no record" in late.message
    job.cancelled = True
    cancelled = p.missing(job, now=0)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED


def test_status_of_an_id_this_provider_never_submitted() -> None:
    (status,) = SlurmProvider().status(["999"])
    assert status.state is JobState.UNKNOWN
    assert status.message == "Slurm job 999 was not submitted by this provider"
