"""SlurmProvider: blocks as Slurm batch jobs (Parsl: parsl.providers.SlurmProvider).

    submit ──> <script_dir>/<name>.sh ──sbatch --parsable──> "12"
    status ──> squeue --states=all --jobs=12,13,...      (one call for every live block)
               │ PENDING/RUNNING: done
               └ finished, or gone from squeue (after MinJobAge, 300 s by default)
                 ──> sacct -X (accounting database), else sacct -c (job completion log)
                     for the final state and exit code ──> a reason a user can act on
    cancel ──> scancel 12 13

Parameter names, order and defaults are Parsl's. Every job writes its stdout/stderr
into the run dir next to its script, and runs there (--chdir).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from typing import Any

from livedag.errors import SchedulerCommandError
from livedag.providers.base import JobState, JobStatus
from livedag.providers.batch import BatchProvider, Job, Observation, run_command

logger = logging.getLogger(__name__)

# Slurm's long state names (squeue %T and sacct State), from `man squeue` JOB STATE CODES.
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESIZING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "SUSPENDED": JobState.HELD,
    "STOPPED": JobState.HELD,
    "REQUEUE_HOLD": JobState.HELD,
    "SPECIAL_EXIT": JobState.HELD,
    "RESV_DEL_HOLD": JobState.HELD,
    "COMPLETED": JobState.COMPLETED,
    "CANCELLED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    # A preempted pilot job is not a broken configuration (Parsl treats it the same way).
    "PREEMPTED": JobState.TIMEOUT,
    "FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "REVOKED": JobState.FAILED,
}

_SUBMITTED = r"Submitted batch job (?P<id>\S*)"


def parse_squeue(stdout: str) -> dict[str, tuple[str, str]]:
    """`squeue --noheader --format=%i|%T|%r` -> {job id: (STATE, reason)}.

    Lines that are not rows (the "CLUSTER: name" banner of --clusters) are skipped.
    """
    rows: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0] or " " in parts[0]:
            continue
        rows[parts[0]] = (parts[1].strip().upper(), parts[2].strip() if len(parts) > 2 else "")
    return rows


def parse_sacct(stdout: str) -> dict[str, Observation]:
    """`sacct -X --noheader --parsable2 --format=JobID,State,ExitCode` -> observations.

    State may read "CANCELLED by 1000"; ExitCode is "code:signal". A requeued job has
    several lines: the last one wins.
    """
    found: dict[str, Observation] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        words = parts[1].split()
        raw = words[0].rstrip("+").upper() if words else ""
        code, _, sig = parts[2].partition(":")
        found[parts[0]] = Observation(
            raw_state=raw,
            state=SLURM_STATES.get(raw, JobState.UNKNOWN),
            reason=" ".join(words[1:]),
            exit_code=int(code) if code.isdigit() else None,
            signal=int(sig) if sig.isdigit() else None,
        )
    return found


def parse_sbatch(stdout: str, regex_job_id: str = _SUBMITTED) -> str | None:
    """The job id from `sbatch --parsable` ("12" or "12;cluster") or, failing that,
    from `regex_job_id` (Parsl's parameter; its default reads plain sbatch output)."""
    for line in stdout.splitlines():
        match = re.match(regex_job_id, line.strip())
        if match:
            return match.group("id")
    for line in stdout.splitlines():
        first = line.strip().split(";")[0]
        if re.fullmatch(r"\d+(_\d+)?", first):
            return first
    return None


class SlurmProvider(BatchProvider):
    """Blocks as Slurm jobs, submitted with sbatch, watched with squeue and sacct."""

    scheduler = "Slurm"

    def __init__(
        self,
        partition: str | None = None,
        account: str | None = None,
        qos: str | None = None,
        constraint: str | None = None,
        clusters: str | None = None,
        nodes_per_block: int = 1,
        cores_per_node: int | None = None,
        mem_per_node: int | None = None,
        gpus_per_node: int | None = None,
        gres: str | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        walltime: str = "00:10:00",
        scheduler_options: str = "",
        regex_job_id: str = _SUBMITTED,
        worker_init: str = "",
        cmd_timeout: int = 10,
        status_batch_size: int = 50,
        exclusive: bool = True,
        launcher: Any = None,
    ) -> None:
        super().__init__(
            label="slurm", nodes_per_block=nodes_per_block, init_blocks=init_blocks,
            min_blocks=min_blocks, max_blocks=max_blocks, parallelism=parallelism,
            walltime=walltime, scheduler_options=scheduler_options, worker_init=worker_init,
            launcher=launcher, cmd_timeout=cmd_timeout,
        )
        self.partition = partition
        self.account = account
        self.qos = qos
        self.constraint = constraint
        self.clusters = clusters
        self.cores_per_node = cores_per_node
        self.mem_per_node = mem_per_node
        self.gpus_per_node = gpus_per_node
        self.gres = gres
        self.regex_job_id = regex_job_id
        self.status_batch_size = max(1, status_batch_size)
        self.exclusive = exclusive
        # "db": sacct works; "jobcomp": only `sacct -c`; "none": neither; None: not tried.
        self._sacct_mode: str | None = None

    # --- script -------------------------------------------------------------------------

    def header(self, job: Job, tasks_per_node: int) -> str:
        lines = [
            f"--job-name={job.name}",
            f"--output={job.stdout_path}",
            f"--error={job.stderr_path}",
            f"--chdir={os.path.dirname(job.script_path)}",
            f"--nodes={self.nodes_per_block}",
            f"--time={self.walltime}",
            f"--ntasks-per-node={tasks_per_node}",
        ]
        options = {
            "partition": self.partition, "account": self.account, "qos": self.qos,
            "constraint": self.constraint, "clusters": self.clusters,
            "gpus-per-node": self.gpus_per_node, "gres": self.gres,
        }
        if self.exclusive:
            lines.append("--exclusive")
        lines += [f"--{key}={value}" for key, value in options.items() if value]
        if self.mem_per_node is not None:
            lines.append(f"--mem={self.mem_per_node}g")
        if self.cores_per_node is not None:
            lines.append(f"--cpus-per-task={math.floor(self.cores_per_node / tasks_per_node)}")
        text = "\n".join(f"#SBATCH {line}" for line in lines)
        # The user's own lines come last: sbatch lets a later directive override an
        # earlier one, so scheduler_options can change anything above.
        return text + ("\n" + self.scheduler_options.strip("\n") if self.scheduler_options else "")

    def extra_environment(self, job: Job, tasks_per_node: int) -> str:
        text = ""
        if self.mem_per_node is not None:
            text += f"export PARSL_MEMORY_GB={self.mem_per_node}\n"
        if self.cores_per_node is not None:
            text += f"export PARSL_CORES={math.floor(self.cores_per_node / tasks_per_node)}\n"
        return text

    # --- commands -----------------------------------------------------------------------

    def _clusters(self) -> list[str]:
        return [f"--clusters={self.clusters}"] if self.clusters else []

    def submit_command(self, job: Job) -> tuple[list[str], str | None]:
        return ["sbatch", "--parsable", *self._clusters(), job.script_path], None

    def parse_submit(self, stdout: str) -> str | None:
        return parse_sbatch(stdout, self.regex_job_id)

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["scancel", *self._clusters(), *job_ids]

    def poll(self, jobs: Sequence[Job]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        for start in range(0, len(jobs), self.status_batch_size):
            out.update(self._poll_batch(jobs[start:start + self.status_batch_size]))
        return out

    def _poll_batch(self, jobs: Sequence[Job]) -> dict[str, JobStatus]:
        ids = ",".join(job.job_id for job in jobs)
        result = run_command(
            ["squeue", *self._clusters(), "--noheader", "--states=all",
             "--format=%i|%T|%r", f"--jobs={ids}"],
            timeout=self.cmd_timeout,
        )
        # Every id unknown (all purged after MinJobAge, or a restarted cluster): rc 1 and
        # "Invalid job id specified". That is an answer, not a failed poll.
        if result.returncode != 0 and "invalid job id" not in result.stderr.lower():
            raise SchedulerCommandError(
                f"{result.shown} failed (rc {result.returncode}): {result.stderr.strip()}",
                command=result.argv, returncode=result.returncode, stderr=result.stderr,
            )
        rows = parse_squeue(result.stdout) if result.returncode == 0 else {}
        out: dict[str, JobStatus] = {}
        finished: list[Job] = []
        for job in jobs:
            row = rows.get(job.job_id)
            state = SLURM_STATES.get(row[0], JobState.UNKNOWN) if row else None
            if row is not None and state is not None and not state.terminal:
                out[job.job_id] = job.status(state, self._live_message(job, row[0], row[1]))
            else:
                finished.append(job)
        if not finished:
            return out
        records = self._accounting([job.job_id for job in finished])
        for job in finished:
            obs = records.get(job.job_id)
            row = rows.get(job.job_id)
            if obs is None and row is not None:
                obs = Observation(row[0], SLURM_STATES.get(row[0], JobState.UNKNOWN), row[1])
            status = self.explain(job, obs) if obs is not None else self.missing(job)
            if status is not None:
                out[job.job_id] = status
        return out

    def _accounting(self, ids: Sequence[str]) -> dict[str, Observation]:
        """Final states from sacct: the accounting database if there is one, else the job
        completion log (`sacct -c`); {} when neither is available."""
        fields = ["-X", "--noheader", "--parsable2", "--format=JobID,State,ExitCode",
                  f"--jobs={','.join(ids)}"]
        modes = [self._sacct_mode] if self._sacct_mode else ["db", "jobcomp"]
        for mode in modes:
            if mode == "none":
                return {}
            argv = ["sacct", *self._clusters(), *(["-c"] if mode == "jobcomp" else []), *fields]
            try:
                result = run_command(argv, timeout=self.cmd_timeout)
            except SchedulerCommandError as exc:
                logger.warning("%s: %s", self.label, exc)
                return {}
            if result.returncode == 0:
                self._sacct_mode = mode
                return parse_sacct(result.stdout)
            logger.debug("%s: %s failed: %s", self.label, result.shown, result.stderr.strip())
        if self._sacct_mode is None:
            self._sacct_mode = "none"
        return {}

    # --- messages -----------------------------------------------------------------------

    def _live_message(self, job: Job, raw: str, reason: str) -> str:
        if raw == "PENDING":
            why = f" ({reason})" if reason and reason != "None" else ""
            return f"Slurm job {job.job_id} is waiting in the queue{why}"
        return f"Slurm job {job.job_id} is {raw.lower()}"

    def explain(self, job: Job, obs: Observation) -> JobStatus:
        """A final state as a sentence that names the job, the cause and the evidence."""
        jid, raw = job.job_id, obs.raw_state
        code = obs.exit_code
        note = job.output_note()
        if obs.state is JobState.COMPLETED:
            return job.status(JobState.COMPLETED, f"Slurm job {jid} completed", code or 0)
        if raw == "TIMEOUT":
            text = f"Slurm job {jid} reached its time limit ({self.walltime})"
        elif raw == "DEADLINE":
            text = f"Slurm job {jid} reached its deadline (--deadline) before it could finish"
        elif raw == "PREEMPTED":
            text = f"Slurm job {jid} was preempted by a higher-priority job"
        elif raw == "CANCELLED":
            who = ("by livedag (scale-in or shutdown)" if job.cancelled
                   else "from outside livedag (scancel by a user or an administrator)")
            text = f"Slurm job {jid} was cancelled {who}"
        elif raw == "OUT_OF_MEMORY":
            asked = f" (mem_per_node={self.mem_per_node} GB)" if self.mem_per_node else ""
            text = (f"Slurm job {jid} ran out of memory{asked}: the scheduler killed it; "
                    "ask for more with mem_per_node, or run fewer workers per node")
        elif raw == "NODE_FAIL":
            text = f"Slurm job {jid} was lost because a node it ran on failed (NODE_FAIL)"
        elif raw == "BOOT_FAIL":
            text = f"Slurm job {jid} never started: its node failed to boot (BOOT_FAIL)"
        elif raw == "FAILED" and obs.signal:
            text = f"Slurm job {jid} failed: its block script was killed by signal {obs.signal}"
        elif raw == "FAILED" and code is not None:
            text = f"Slurm job {jid} failed: its block script exited with code {code}"
        else:
            text = f"Slurm job {jid} ended in state {raw or 'UNKNOWN'}"
        text += f"; {note}"
        if obs.state is JobState.FAILED:
            text += self.stderr_evidence(job)
        return job.status(obs.state, text, code)
