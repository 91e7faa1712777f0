"""LSFProvider: blocks as IBM Spectrum LSF jobs (Parsl: parsl.providers.LSFProvider).

    submit ──> <script_dir>/<name>.sh ──bsub [< script]──> "Job <1234> is submitted ..."
    status ──> bjobs -noheader -o "jobid stat exit_code exit_reason delimiter='|'" 1234 1235
               (one call; finished jobs stay visible for CLEAN_PERIOD, 1 h by default)
    cancel ──> bkill 1234 1235

No LSF cluster runs in the test environment: the parsers are tested against output written
from the documented formats (LSF command reference: bsub, bjobs -o, exit reasons), not
against a live cluster.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

from livedag.errors import ConfigurationError, SchedulerCommandError
from livedag.providers.base import JobState, JobStatus
from livedag.providers.batch import (
    BatchProvider,
    Job,
    Observation,
    run_command,
    walltime_minutes,
)

LSF_STATES: dict[str, JobState] = {
    "PEND": JobState.PENDING, "WAIT": JobState.PENDING, "PROV": JobState.PENDING,
    "RUN": JobState.RUNNING,
    "PSUSP": JobState.HELD, "USUSP": JobState.HELD, "SSUSP": JobState.HELD,
    "DONE": JobState.COMPLETED,
    "EXIT": JobState.FAILED,
    "ZOMBI": JobState.FAILED,
    "UNKWN": JobState.UNKNOWN,
}

# bjobs exit_reason prefixes that are not the block script's own failure.
LSF_EXIT_REASONS: dict[str, tuple[JobState, str]] = {
    "TERM_RUNLIMIT": (JobState.TIMEOUT, "reached its time limit"),
    "TERM_OWNER": (JobState.CANCELLED, "was killed by its owner (bkill)"),
    "TERM_ADMIN": (JobState.CANCELLED, "was killed by an LSF administrator"),
    "TERM_MEMLIMIT": (JobState.FAILED, "ran out of memory (LSF memory limit)"),
    "TERM_CPULIMIT": (JobState.FAILED, "reached its CPU time limit"),
    "TERM_REQUEUE_OWNER": (JobState.CANCELLED, "was requeued by its owner"),
    "TERM_PREEMPT": (JobState.TIMEOUT, "was preempted by a higher-priority job"),
    "TERM_HOST": (JobState.FAILED, "was lost because its host failed"),
}


def parse_bsub(stdout: str) -> str | None:
    """ "Job <1234> is submitted to default queue <normal>." -> "1234"."""
    match = re.search(r"Job <(\d+)> is submitted", stdout)
    return match.group(1) if match else None


def parse_bjobs(stdout: str, stderr: str = "") -> tuple[dict[str, Observation], set[str]]:
    """bjobs -o "jobid stat exit_code exit_reason delimiter='|'" -> (observations, ids
    bjobs says it does not know: "Job <1236> is not found")."""
    found: dict[str, Observation] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        raw = parts[1].strip()
        code_text = parts[2].strip() if len(parts) > 2 else "-"
        reason = parts[3].strip() if len(parts) > 3 else "-"
        found[parts[0]] = Observation(
            raw_state=raw,
            state=LSF_STATES.get(raw, JobState.UNKNOWN),
            reason="" if reason == "-" else reason,
            exit_code=int(code_text) if code_text.isdigit() else None,
        )
    unknown = set(re.findall(r"Job <(\d+)> is not found", stdout + "\n" + stderr))
    return found, unknown


class LSFProvider(BatchProvider):
    """Blocks as LSF jobs, requested by nodes (-nnodes) or by cores (-n, span[ptile])."""

    scheduler = "LSF"

    def __init__(
        self,
        nodes_per_block: int = 1,
        cores_per_block: int | None = None,
        cores_per_node: int | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        walltime: str = "00:10:00",
        scheduler_options: str = "",
        worker_init: str = "",
        project: str | None = None,
        queue: str | None = None,
        cmd_timeout: int = 120,
        bsub_redirection: bool = False,
        request_by_nodes: bool = True,
        launcher: Any = None,
    ) -> None:
        if not request_by_nodes:
            if not cores_per_block or not cores_per_node:
                raise ConfigurationError(
                    "LSFProvider: request_by_nodes=False needs cores_per_block and "
                    f"cores_per_node (> 0), got {cores_per_block!r} and {cores_per_node!r}"
                )
            nodes_per_block = math.ceil(cores_per_block / cores_per_node)
        super().__init__(
            label="LSF", nodes_per_block=nodes_per_block, init_blocks=init_blocks,
            min_blocks=min_blocks, max_blocks=max_blocks, parallelism=parallelism,
            walltime=walltime, scheduler_options=scheduler_options, worker_init=worker_init,
            launcher=launcher, cmd_timeout=cmd_timeout,
        )
        self.cores_per_block = cores_per_block
        self.cores_per_node = cores_per_node
        self.project = project
        self.queue = queue
        self.bsub_redirection = bsub_redirection
        self.request_by_nodes = request_by_nodes

    def header(self, job: Job, tasks_per_node: int) -> str:
        lines = [
            f"-W {walltime_minutes(self.walltime)}",
            f"-J {job.name}",
            f"-o {job.stdout_path}",
            f"-e {job.stderr_path}",
            f"-cwd {os.path.dirname(job.script_path)}",
        ]
        if self.project:
            lines.append(f"-P {self.project}")
        if self.queue:
            lines.append(f"-q {self.queue}")
        if self.request_by_nodes:
            lines.append(f"-nnodes {self.nodes_per_block}")
        else:
            lines.append(f"-n {self.cores_per_block}")
            lines.append(f'-R "span[ptile={self.cores_per_node}]"')
        text = "\n".join(f"#BSUB {line}" for line in lines)
        return text + ("\n" + self.scheduler_options.strip("\n") if self.scheduler_options else "")

    def submit_command(self, job: Job) -> tuple[list[str], str | None]:
        # `bsub < script` makes LSF read the #BSUB lines; Parsl's default passes the file.
        if self.bsub_redirection:
            return ["bsub"], job.script_path
        return ["bsub", job.script_path], None

    def parse_submit(self, stdout: str) -> str | None:
        return parse_bsub(stdout)

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["bkill", *job_ids]

    def poll(self, jobs: Sequence[Job]) -> dict[str, JobStatus]:
        ids = [job.job_id for job in jobs]
        result = run_command(
            ["bjobs", "-noheader", "-o", "jobid stat exit_code exit_reason delimiter='|'", *ids],
            timeout=self.cmd_timeout,
        )
        found, unknown = parse_bjobs(result.stdout, result.stderr)
        if result.returncode != 0 and not found and not unknown:
            raise SchedulerCommandError(
                f"{result.shown} failed (rc {result.returncode}): {result.stderr.strip()}",
                command=result.argv, returncode=result.returncode, stderr=result.stderr,
            )
        out: dict[str, JobStatus] = {}
        for job in jobs:
            obs = found.get(job.job_id)
            status = self.explain(job, obs) if obs is not None else self.missing(job)
            if status is not None:
                out[job.job_id] = status
        return out

    def explain(self, job: Job, obs: Observation) -> JobStatus:
        jid = job.job_id
        if not obs.state.terminal:
            doing = {JobState.PENDING: "is waiting in the queue", JobState.RUNNING: "is running",
                     JobState.HELD: "is suspended"}
            return job.status(obs.state,
                              f"LSF job {jid} {doing.get(obs.state, 'is')} ({obs.raw_state})")
        if obs.state is JobState.COMPLETED:
            return job.status(obs.state, f"LSF job {jid} completed", 0)
        state: JobState = obs.state
        code = obs.exit_code
        prefix = obs.reason.split(":")[0].strip()
        if prefix in LSF_EXIT_REASONS:
            state, words = LSF_EXIT_REASONS[prefix]
            text = f"LSF job {jid} {words}"
            if state is JobState.TIMEOUT and prefix == "TERM_RUNLIMIT":
                text += f" ({self.walltime})"
            if state is JobState.CANCELLED and job.cancelled:
                text = f"LSF job {jid} was cancelled by livedag (scale-in or shutdown)"
        elif code is not None:
            text = f"LSF job {jid} failed: its block script exited with code {code}"
        else:
            text = f"LSF job {jid} ended in state {obs.raw_state}"
        if obs.reason:
            text += f" [{obs.reason}]"
        text += f"; {job.output_note()}"
        if state is JobState.FAILED:
            text += self.stderr_evidence(job)
        return job.status(state, text, code)
