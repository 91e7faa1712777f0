"""GridEngineProvider: blocks as (Son of) Grid Engine jobs (Parsl: GridEngineProvider).

    submit ──> <script_dir>/<name>.sh ──qsub -terse──> "7"
    status ──> qstat                      (one call: every job of this user)
               │ qw/r/t/h/s: live
               └ gone from qstat ──> qacct -j 7 (once per finished job) ──> failed code +
                 exit_status ──> a reason a user can act on
    cancel ──> qdel 7 8

Grid Engine writes its accounting file every `flush_time` (15 s by default), so a job can
be gone from qstat before qacct knows it: the provider keeps asking for
`accounting_grace` seconds before it calls the ending unknown.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

from livedag.errors import SchedulerCommandError
from livedag.providers.base import JobState, JobStatus
from livedag.providers.batch import BatchProvider, Job, Observation, run_command

logger = logging.getLogger(__name__)

# Codes of qacct's `failed` field that explain a job's end (sge_status(5), execd's
# "failure codes"); 0 means the job script ran and its exit_status is the answer.
FAILED_TIME_LIMIT = 37   # "qmaster enforced h_rt, h_cpu, or h_vmem limit"
FAILED_AFTER_JOB = 100   # "assumedly after job": the job was killed by a signal


def qstat_state(code: str) -> JobState:
    """qstat's state letters (man qstat: d(eletion) E(rror) h(old) r(unning) R(estarted)
    s/S(uspended) t(ransferring) T(hreshold) w(aiting) q(ueued)) -> JobState."""
    if "E" in code:
        return JobState.FAILED
    if "d" in code:      # being deleted: its real end comes from qacct
        return JobState.RUNNING
    if any(c in code for c in "sST"):
        return JobState.HELD
    if "r" in code or "t" in code:
        return JobState.RUNNING
    if "w" in code or "h" in code:
        return JobState.PENDING
    return JobState.UNKNOWN


def parse_qstat(stdout: str) -> dict[str, str]:
    """Plain `qstat` -> {job id: state letters}; the header and dashes are skipped."""
    rows: dict[str, str] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) < 5 or not parts[0].isdigit():
            continue
        rows.setdefault(parts[0], parts[4])
    return rows


def parse_qacct(stdout: str) -> dict[str, str]:
    """`qacct -j ID` -> its fields ({"failed": "37  : qmaster enforced ...", ...}); with
    several records (a re-run job) the last one wins."""
    record: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("====="):
            record = {}
            continue
        key, _, value = line.partition(" ")
        if key:
            record[key] = value.strip()
    return record


def parse_qsub(stdout: str) -> str | None:
    """`qsub -terse` prints "7" (or "7.1-10:1" for an array job)."""
    for line in stdout.splitlines():
        match = re.match(r"^(\d+)", line.strip())
        if match:
            return match.group(1)
    return None


def observe_qacct(record: dict[str, str]) -> Observation:
    """A qacct record -> what ended the job."""
    failed_text = record.get("failed", "0")
    failed = int(failed_text.split()[0]) if failed_text.split()[0].isdigit() else -1
    status_text = record.get("exit_status", "").split()
    exit_code = int(status_text[0]) if status_text and status_text[0].isdigit() else None
    signal = exit_code - 128 if exit_code is not None and exit_code > 128 else None
    reason = failed_text.partition(":")[2].strip()
    if failed == FAILED_TIME_LIMIT:
        return Observation("failed 37", JobState.TIMEOUT, reason, exit_code, signal)
    if failed == 0 and exit_code == 0:
        return Observation("done", JobState.COMPLETED, "", 0)
    return Observation(f"failed {failed}", JobState.FAILED, reason, exit_code, signal)


class GridEngineProvider(BatchProvider):
    """Blocks as Grid Engine jobs, submitted with qsub, watched with qstat and qacct."""

    scheduler = "Grid Engine"

    def __init__(
        self,
        nodes_per_block: int = 1,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        walltime: str = "00:10:00",
        scheduler_options: str = "",
        worker_init: str = "",
        launcher: Any = None,
        cmd_timeout: int = 60,
        queue: str | None = None,
    ) -> None:
        super().__init__(
            label="grid_engine", nodes_per_block=nodes_per_block, init_blocks=init_blocks,
            min_blocks=min_blocks, max_blocks=max_blocks, parallelism=parallelism,
            walltime=walltime, scheduler_options=scheduler_options, worker_init=worker_init,
            launcher=launcher, cmd_timeout=cmd_timeout,
        )
        self.queue = queue

    def header(self, job: Job, tasks_per_node: int) -> str:
        lines = [
            "-S /bin/bash",
            f"-N {job.name}",
            f"-o {job.stdout_path}",
            f"-e {job.stderr_path}",
            f"-wd {os.path.dirname(job.script_path)}",
            f"-l h_rt={self.walltime}",
        ]
        text = "\n".join(f"#$ {line}" for line in lines)
        return text + ("\n" + self.scheduler_options.strip("\n") if self.scheduler_options else "")

    def submit_command(self, job: Job) -> tuple[list[str], str | None]:
        queue = ["-q", self.queue] if self.queue else []
        return ["qsub", "-terse", *queue, job.script_path], None

    def parse_submit(self, stdout: str) -> str | None:
        return parse_qsub(stdout)

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["qdel", *job_ids]

    def poll(self, jobs: Sequence[Job]) -> dict[str, JobStatus]:
        result = run_command(["qstat"], timeout=self.cmd_timeout)
        if result.returncode != 0:
            raise SchedulerCommandError(
                f"qstat failed (rc {result.returncode}): {result.stderr.strip()}",
                command=result.argv, returncode=result.returncode, stderr=result.stderr,
            )
        rows = parse_qstat(result.stdout)
        out: dict[str, JobStatus] = {}
        for job in jobs:
            code = rows.get(job.job_id)
            if code is not None:
                out[job.job_id] = self._live(job, code)
                continue
            status = self._finished(job)
            if status is not None:
                out[job.job_id] = status
        return out

    def _live(self, job: Job, code: str) -> JobStatus:
        state = qstat_state(code)
        jid = job.job_id
        if state is JobState.FAILED:
            return job.status(state, f"Grid Engine job {jid} is in error state {code}: "
                                     f"`qstat -j {jid}` shows why; {job.output_note()}")
        words = {JobState.PENDING: "is waiting in the queue", JobState.RUNNING: "is running",
                 JobState.HELD: "is suspended"}
        text = f"Grid Engine job {jid} {words.get(state, 'is in state')} ({code})"
        return job.status(state, text)

    def _finished(self, job: Job) -> JobStatus | None:
        result = run_command(["qacct", "-j", job.job_id], timeout=self.cmd_timeout)
        record = parse_qacct(result.stdout) if result.returncode == 0 else {}
        if not record:
            # "error: job id 7 not found": not flushed yet, or deleted while queued.
            return self.missing(job)
        return self.explain(job, observe_qacct(record))

    def explain(self, job: Job, obs: Observation) -> JobStatus:
        jid, code = job.job_id, obs.exit_code
        if obs.state is JobState.COMPLETED:
            return job.status(JobState.COMPLETED, f"Grid Engine job {jid} completed", 0)
        state = obs.state
        if state is JobState.TIMEOUT:
            text = (f"Grid Engine job {jid} reached its time limit (h_rt {self.walltime}) "
                    f"or another limit qmaster enforces (h_cpu, h_vmem)")
        elif job.cancelled and obs.signal is not None:
            state = JobState.CANCELLED
            text = f"Grid Engine job {jid} was cancelled by livedag (scale-in or shutdown)"
        elif obs.signal is not None:
            text = (f"Grid Engine job {jid} was killed by signal {obs.signal}: deleted with "
                    "qdel by a user or an administrator, or killed for using too much memory")
        elif obs.raw_state != "failed 0":
            text = f"Grid Engine could not run job {jid} ({obs.raw_state}: {obs.reason})"
        else:
            text = f"Grid Engine job {jid} failed: its block script exited with code {code}"
        text += f"; {job.output_note()}"
        if state is JobState.FAILED:
            text += self.stderr_evidence(job)
        return job.status(state, text, code)
