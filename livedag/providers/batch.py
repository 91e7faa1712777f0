"""What every batch-scheduler provider shares: scripts, commands, job ids, final states.

    executor ──script_for(command, tasks_per_node)──> worker_init + launcher(command)
    executor ──submit(script, job_name)──> BatchProvider
        render header (directives, scheduler_options) + prelude + script
        ──> <script_dir>/<job_name>.sh (.stdout, .stderr beside it)
        ──run_command([sbatch|qsub|bsub|condor_submit ...], cmd_timeout)──> parse job id
    executor ──status([ids])──> cached final states + one scheduler poll for the rest
        ──> [JobStatus(state, message, exit_code, stdout_path, stderr_path)]
    executor ──cancel([ids])──> one scancel/qdel/bkill/condor_rm call

A scheduler module (slurm.py, sge.py, pbs.py, lsf.py, condor.py) supplies only what
differs: its header, its submit command and id parsing, its poll, its cancel command, and
the texts that explain a final state to a user. Those parsers are pure functions of the
tools' output, so they are unit-tested against recorded output without a scheduler.

The prelude exports LIVEDAG_PYTHON (the submitting interpreter, `sys.executable`) and puts
its directory first on PATH *before* worker_init runs: jobs often get a bare PATH (an
unactivated venv is not on it), and worker_init may still choose another environment.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shlex
import string
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from livedag.errors import ConfigurationError, SchedulerCommandError, SubmitError
from livedag.providers.base import ExecutionProvider, JobState, JobStatus

logger = logging.getLogger(__name__)

# How long a job that left the queue may lack an accounting record before we stop
# waiting for one (Grid Engine flushes its accounting file every 15 s by default).
ACCOUNTING_GRACE = 60.0
STDERR_TAIL_LINES = 5

_WALLTIME = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2})$")


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """What a scheduler command printed and returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def shown(self) -> str:
        return shlex.join(self.argv)


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    stdin_path: str | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run a scheduler tool (never through a shell); its output, whatever its exit code.

    Raises SchedulerCommandError when the tool is missing or runs past `timeout` seconds.
    """
    argv = tuple(argv)
    stdin: Any = subprocess.DEVNULL
    try:
        if stdin_path is not None:
            stdin = open(stdin_path, "rb")  # noqa: SIM115 (closed in finally)
        proc = subprocess.run(
            argv, stdin=stdin, capture_output=True, text=True, timeout=timeout,
            env=dict(env) if env is not None else None, check=False,
        )
    except FileNotFoundError as exc:
        raise SchedulerCommandError(
            f"{argv[0]!r} was not found on PATH: is the scheduler's client installed and "
            f"is this the machine that submits jobs? (PATH={os.environ.get('PATH', '')})",
            command=argv,
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise SchedulerCommandError(
            f"{shlex.join(argv)} did not finish within cmd_timeout={timeout:g} s: the "
            "scheduler is not answering (raise cmd_timeout if it is only slow)",
            command=argv, stdout=_text(exc.stdout), stderr=_text(exc.stderr), timed_out=True,
        ) from exc
    finally:
        if stdin_path is not None and not isinstance(stdin, int):
            stdin.close()
    logger.debug("%s -> rc %d, stdout %r, stderr %r", shlex.join(argv), proc.returncode,
                 proc.stdout[-500:], proc.stderr[-500:])
    return CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def render(template: str, **fields: Any) -> str:
    """Fill a script template (`string.Template`: $name / ${name}); every field is needed."""
    try:
        return string.Template(template).substitute(fields)
    except KeyError as exc:  # a template and its caller disagree: our bug, said plainly
        raise ConfigurationError(f"script template needs a value for {exc.args[0]!r}") from exc


def walltime_seconds(walltime: str, *, provider: str = "provider") -> int:
    """'HH:MM:SS' (or 'MM:SS') -> seconds; ConfigurationError naming the provider if not."""
    match = _WALLTIME.match(walltime.strip()) if isinstance(walltime, str) else None
    if match is None:
        raise ConfigurationError(
            f"{provider}: walltime must look like 'HH:MM:SS' (e.g. '00:10:00'), got {walltime!r}"
        )
    h, m, s = (int(match.group(k) or 0) for k in "hms")
    return h * 3600 + m * 60 + s


def walltime_minutes(walltime: str) -> int:
    """Whole minutes, rounded up (LSF's -W and the shortest Slurm --time are minutes)."""
    return max(1, -(-walltime_seconds(walltime) // 60))


def safe_job_name(name: str, *, max_length: int = 64) -> str:
    """A job name every scheduler accepts: letters, digits, '.', '_', '-'; not digit-first
    (Grid Engine rejects that); not longer than `max_length`."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "livedag"
    if cleaned[0].isdigit():
        cleaned = "j" + cleaned
    return cleaned[:max_length]


def tail(path: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last `lines` lines of a text file ('' when it is absent or empty)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.rstrip("\n").splitlines()[-lines:])


def python_prelude() -> str:
    """Shell lines that make the submitting Python the job's `python` (see module doc)."""
    exe = sys.executable
    bindir = os.path.dirname(exe)
    return (
        f"export LIVEDAG_PYTHON={shlex.quote(exe)}\n"
        f'export PATH={shlex.quote(bindir)}"${{PATH:+:$PATH}}"\n'
    )


@dataclasses.dataclass
class Job:
    """One submitted block, as the provider remembers it."""

    job_id: str
    name: str
    script_path: str
    stdout_path: str
    stderr_path: str
    submitted_at: float
    cancelled: bool = False
    last: JobStatus | None = None
    # When the job was first missing from both the queue and the accounting records.
    missing_since: float | None = None

    def status(self, state: JobState, message: str | None = None,
               exit_code: int | None = None) -> JobStatus:
        return JobStatus(state, message=message, exit_code=exit_code,
                         stdout_path=self.stdout_path, stderr_path=self.stderr_path)

    def output_note(self) -> str:
        return f"job output: {self.stdout_path}, {self.stderr_path}"


@dataclasses.dataclass(frozen=True)
class Observation:
    """What a poll learned about one job: scheduler state word, state, details."""

    raw_state: str
    state: JobState
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None


class BatchProvider(ExecutionProvider):
    """Shared behaviour of providers that hand blocks to a batch scheduler.

    Subclasses set `scheduler` (a name for messages) and implement `header`,
    `submit_command`, `parse_submit`, `poll` and `cancel_command`.
    """

    scheduler = "batch"
    script_suffix = ".sh"

    def __init__(
        self,
        *,
        label: str,
        nodes_per_block: int,
        init_blocks: int,
        min_blocks: int,
        max_blocks: int,
        parallelism: float,
        walltime: str,
        scheduler_options: str,
        worker_init: str,
        launcher: Any,
        cmd_timeout: float,
    ) -> None:
        name = type(self).__name__
        if nodes_per_block < 1:
            raise ConfigurationError(f"{name}: nodes_per_block must be >= 1, got {nodes_per_block}")
        if not 0 <= min_blocks <= max_blocks:
            raise ConfigurationError(
                f"{name}: need 0 <= min_blocks <= max_blocks, got {min_blocks}, {max_blocks}"
            )
        if not 0 <= parallelism <= 1:
            raise ConfigurationError(f"{name}: parallelism must be in [0, 1], got {parallelism}")
        if cmd_timeout <= 0:
            raise ConfigurationError(f"{name}: cmd_timeout must be > 0 seconds, got {cmd_timeout}")
        if launcher is None:  # Parsl's default for every batch provider
            from livedag.launchers import SingleNodeLauncher

            launcher = SingleNodeLauncher()
        if not callable(launcher):
            raise ConfigurationError(f"{name}: launcher must be a Launcher, got {launcher!r}")
        walltime_seconds(walltime, provider=name)
        self.label = label
        self.nodes_per_block = nodes_per_block
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.parallelism = parallelism
        self.walltime = walltime
        self.scheduler_options = scheduler_options
        self.worker_init = worker_init
        self.launcher = launcher
        self.cmd_timeout = cmd_timeout
        self.accounting_grace = ACCOUNTING_GRACE
        self.resources: dict[str, Job] = {}
        self._tasks_per_node: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def status_polling_interval(self) -> float:
        # Batch schedulers answer slowly and dislike being polled often.
        return 30.0

    # --- what a scheduler module supplies ---------------------------------------------

    def header(self, job: Job, tasks_per_node: int) -> str:
        """Directive lines (#SBATCH, #$, #PBS, #BSUB) after the shebang."""
        raise NotImplementedError

    def submit_command(self, job: Job) -> tuple[list[str], str | None]:
        """argv of the submit command, and a file to feed on stdin (or None)."""
        raise NotImplementedError

    def parse_submit(self, stdout: str) -> str | None:
        """The job id in the submit command's output, or None."""
        raise NotImplementedError

    def poll(self, jobs: Sequence[Job]) -> dict[str, JobStatus]:
        """Statuses of these unfinished jobs, from as few scheduler calls as possible.

        A job left out of the answer keeps its previous status this round.
        """
        raise NotImplementedError

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def extra_environment(self, job: Job, tasks_per_node: int) -> str:
        """Shell lines exported before worker_init (e.g. PARSL_CORES)."""
        return ""

    # --- the contract -------------------------------------------------------------------

    def script_for(self, command: str, tasks_per_node: int = 1) -> str:
        script = super().script_for(command, tasks_per_node)
        # The contract's submit(script, job_name) does not carry tasks_per_node, but the
        # header needs it (--ntasks-per-node): remember it for this exact script.
        with self._lock:
            self._tasks_per_node[script] = tasks_per_node
        return script

    def job_text(self, job: Job, script: str, tasks_per_node: int) -> str:
        """The whole file handed to the scheduler."""
        return render(
            JOB_TEMPLATE,
            header=self.header(job, tasks_per_node).rstrip("\n"),
            prelude=python_prelude() + self.extra_environment(job, tasks_per_node),
            jobname=job.name,
            script=script.rstrip("\n"),
        )

    def new_job(self, job_name: str) -> Job:
        directory = os.path.abspath(self.script_dir or ".")
        os.makedirs(directory, exist_ok=True)
        name = safe_job_name(f"{job_name}.{time.time():.3f}")
        base = os.path.join(directory, name)
        return Job(job_id="", name=name, script_path=base + self.script_suffix,
                   stdout_path=base + ".stdout", stderr_path=base + ".stderr",
                   submitted_at=time.time())

    def submit(self, script: str, job_name: str, tasks_per_node: int | None = None) -> str:
        if tasks_per_node is None:
            with self._lock:
                tasks_per_node = self._tasks_per_node.pop(script, 1)
        job = self.new_job(job_name)
        text = self.job_text(job, script, tasks_per_node)
        with open(job.script_path, "w") as f:
            f.write(text)
        os.chmod(job.script_path, 0o755)
        argv, stdin_path = self.submit_command(job)
        result = run_command(argv, timeout=self.cmd_timeout, stdin_path=stdin_path)
        job_id = self.parse_submit(result.stdout) if result.returncode == 0 else None
        if job_id is None:
            raise self.submit_error(job, result)
        job.job_id = job_id
        job.last = job.status(JobState.PENDING, f"{self.scheduler} job {job_id} was submitted")
        with self._lock:
            self.resources[job_id] = job
        logger.info("%s: submitted %s as job %s", self.label, job.script_path, job_id)
        return job_id

    def submit_error(self, job: Job, result: CommandResult) -> SubmitError:
        said = (result.stderr.strip() or result.stdout.strip() or "(no output)")
        if result.returncode == 0:
            what = f"printed no job id that {type(self).__name__} could read"
        else:
            what = f"refused the job (exit code {result.returncode})"
        return SubmitError(
            f"{self.scheduler}: {result.shown} {what}:\n{said}\n"
            f"The job script is {job.script_path}; check the provider's settings "
            "(partition/queue, account, memory, walltime, scheduler_options).",
            provider=type(self).__name__, command=result.argv, returncode=result.returncode,
            stdout=result.stdout, stderr=result.stderr, script_path=job.script_path,
        )

    def status(self, job_ids: Sequence[str]) -> list[JobStatus]:
        with self._lock:
            known = {j: self.resources[j] for j in job_ids if j in self.resources}
        active = [job for job in known.values() if job.last is None or not job.last.terminal]
        if active:
            try:
                found = self.poll(active)
            except SchedulerCommandError as exc:
                # A slow or restarting scheduler is not a dead block: keep the last state.
                logger.warning("%s: status poll failed, keeping last states: %s", self.label, exc)
                found = {}
            for job in active:
                if job.job_id in found:
                    job.last = found[job.job_id]
        out = []
        for job_id in job_ids:
            mine = known.get(job_id)
            if mine is None:
                out.append(JobStatus(JobState.UNKNOWN,
                                     message=f"{self.scheduler} job {job_id} was not submitted "
                                             f"by this provider"))
            else:
                out.append(mine.last or mine.status(JobState.UNKNOWN))
        return out

    def cancel(self, job_ids: Sequence[str]) -> list[bool]:
        ids = [j for j in job_ids if j]
        if not ids:
            return []
        with self._lock:
            for job_id in ids:
                if job_id in self.resources:
                    self.resources[job_id].cancelled = True
        try:
            result = run_command(self.cancel_command(ids), timeout=self.cmd_timeout)
        except SchedulerCommandError as exc:
            logger.warning("%s: cancel failed: %s", self.label, exc)
            return [False for _ in ids]
        if result.returncode != 0:
            logger.warning("%s: %s failed (rc %d): %s", self.label, result.shown,
                           result.returncode, result.stderr.strip())
        return [result.returncode == 0 for _ in ids]

    # --- helpers for the scheduler modules ------------------------------------------------

    def missing(self, job: Job, *, now: float | None = None) -> JobStatus | None:
        """A job neither the queue nor the accounting knows: cancelled by us, or finished
        with its record not written yet (None: ask again later), or, after
        `accounting_grace` seconds, finished with an unknown result."""
        if job.cancelled:
            return job.status(JobState.CANCELLED,
                              f"{self.scheduler} job {job.job_id} was cancelled by livedag "
                              f"(scale-in or shutdown); {job.output_note()}")
        now = time.time() if now is None else now
        if job.missing_since is None:
            job.missing_since = now
        if now - job.missing_since < self.accounting_grace:
            return None
        return job.status(
            JobState.COMPLETED,
            f"{self.scheduler} job {job.job_id} left the queue and the scheduler kept no "
            f"record of how it ended; {job.output_note()}",
        )

    def stderr_evidence(self, job: Job) -> str:
        text = tail(job.stderr_path)
        if not text:
            return ""
        return f"\n--- last lines of {job.stderr_path} ---\n{text}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r} walltime={self.walltime!r}>"


JOB_TEMPLATE = """#!/bin/bash
${header}

# Written by livedag: the submitting Python first on PATH, then the user's worker_init.
${prelude}
export JOBNAME=${jobname}

${script}
"""
