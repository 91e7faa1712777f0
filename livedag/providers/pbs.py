"""PBSProProvider: blocks as PBS Pro jobs (Parsl: parsl.providers.PBSProProvider).

    submit ──> <script_dir>/<name>.sh ──qsub──> "1234.server"
    status ──> qstat -x -f -F json 1234.server 1235.server    (one call; -x keeps
               finished jobs, with job_state F and Exit_status)
    cancel ──> qdel 1234.server 1235.server

No PBS server runs in the test environment: the parsers are tested against output written
from the documented formats (PBS Professional Reference Guide: qstat -F json, job exit
codes), not against a live server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Sequence
from typing import Any

from livedag.errors import SchedulerCommandError
from livedag.providers.base import JobState, JobStatus
from livedag.providers.batch import BatchProvider, Job, Observation, run_command

# qstat job_state letters (PBS Pro and Torque).
PBS_STATES: dict[str, JobState] = {
    "Q": JobState.PENDING, "W": JobState.PENDING, "T": JobState.PENDING,
    "R": JobState.RUNNING, "B": JobState.RUNNING, "E": JobState.RUNNING,
    "H": JobState.HELD, "S": JobState.HELD, "U": JobState.HELD,
    "F": JobState.COMPLETED, "X": JobState.COMPLETED, "C": JobState.COMPLETED,
}

# Negative Exit_status values are set by PBS itself (Reference Guide, "Job Exit Codes").
PBS_EXIT_CODES: dict[int, tuple[JobState, str]] = {
    -1: (JobState.FAILED, "the job could not be started on its execution host"),
    -2: (JobState.FAILED, "the job could not be started after its files were staged"),
    -4: (JobState.FAILED, "the job was aborted while it was being set up"),
    -10: (JobState.FAILED, "the job's user or group is not valid on the execution host"),
    -11: (JobState.FAILED, "the job was requeued and not rerun"),
    -24: (JobState.FAILED, "it used more CPUs than it asked for (ncpus burst)"),
    -25: (JobState.FAILED, "it used more CPU than it asked for (ncpus sum)"),
    -26: (JobState.FAILED, "it used more virtual memory than it asked for (vmem)"),
    -27: (JobState.FAILED, "it used more memory than it asked for (mem)"),
    -28: (JobState.FAILED, "it used more CPU time than it asked for (cput)"),
    -29: (JobState.TIMEOUT, "it reached its time limit"),
}


def parse_qsub(stdout: str) -> str | None:
    """PBS qsub prints the full job id, e.g. "1234.pbs01"."""
    for line in stdout.splitlines():
        match = re.match(r"^(\d+(\[\d*\])?(\.\S+)?)$", line.strip())
        if match:
            return match.group(1)
    return None


def parse_qstat_json(stdout: str) -> dict[str, dict[str, Any]]:
    """`qstat -x -f -F json` -> {job id: its attributes}; {} for no jobs or bad JSON."""
    try:
        data = json.loads(stdout) if stdout.strip() else {}
    except ValueError:
        return {}
    jobs = data.get("Jobs", {}) if isinstance(data, dict) else {}
    return {str(k): v for k, v in jobs.items() if isinstance(v, dict)}


def observe_pbs(attrs: dict[str, Any]) -> Observation:
    raw = str(attrs.get("job_state", ""))
    state = PBS_STATES.get(raw, JobState.UNKNOWN)
    comment = str(attrs.get("comment", ""))
    if state is not JobState.COMPLETED:
        return Observation(raw, state, comment)
    code = attrs.get("Exit_status")
    if not isinstance(code, int):
        return Observation(raw, JobState.COMPLETED, comment)
    if code == 0:
        return Observation(raw, JobState.COMPLETED, comment, 0)
    if code in PBS_EXIT_CODES:
        known, text = PBS_EXIT_CODES[code]
        return Observation(raw, known, text, code)
    if code > 256:   # "killed by signal (Exit_status - 256)", e.g. 271 = SIGTERM from qdel
        return Observation(raw, JobState.FAILED, comment, code, signal=code - 256)
    return Observation(raw, JobState.FAILED, comment, code)


def _match_id(short: str, ours: Sequence[str]) -> str:
    """qstat may print "1234.pbs01.cluster.org" for our "1234.pbs01" (or the reverse)."""
    for job_id in ours:
        if short == job_id or short.startswith(job_id + ".") or job_id.startswith(short + "."):
            return job_id
    return short


class PBSProProvider(BatchProvider):
    """Blocks as PBS Pro jobs (select/ncpus resource requests)."""

    scheduler = "PBS"

    def __init__(
        self,
        account: str | None = None,
        queue: str | None = None,
        scheduler_options: str = "",
        select_options: str = "",
        worker_init: str = "",
        nodes_per_block: int = 1,
        cpus_per_node: int = 1,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        launcher: Any = None,
        walltime: str = "00:20:00",
        cmd_timeout: int = 120,
    ) -> None:
        super().__init__(
            label="pbspro", nodes_per_block=nodes_per_block, init_blocks=init_blocks,
            min_blocks=min_blocks, max_blocks=max_blocks, parallelism=parallelism,
            walltime=walltime, scheduler_options=scheduler_options, worker_init=worker_init,
            launcher=launcher, cmd_timeout=cmd_timeout,
        )
        self.account = account
        self.queue = queue
        self.cpus_per_node = cpus_per_node
        self.select_options = select_options

    def header(self, job: Job, tasks_per_node: int) -> str:
        select = self.select_options
        if select and not select.startswith(":"):
            select = ":" + select
        lines = [
            "-S /bin/bash",
            f"-N {job.name}",
            "-m n",
            f"-l walltime={self.walltime}",
            f"-l select={self.nodes_per_block}:ncpus={self.cpus_per_node}{select}",
            f"-o {job.stdout_path}",
            f"-e {job.stderr_path}",
        ]
        text = "\n".join(f"#PBS {line}" for line in lines)
        return text + ("\n" + self.scheduler_options.strip("\n") if self.scheduler_options else "")

    def extra_environment(self, job: Job, tasks_per_node: int) -> str:
        # PBS starts jobs in $HOME: run in the run dir like every other provider.
        return f"cd {shlex.quote(os.path.dirname(job.script_path))}\n"

    def submit_command(self, job: Job) -> tuple[list[str], str | None]:
        options = (["-q", self.queue] if self.queue else []) + (
            ["-A", self.account] if self.account else [])
        return ["qsub", *options, job.script_path], None

    def parse_submit(self, stdout: str) -> str | None:
        return parse_qsub(stdout)

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["qdel", *job_ids]

    def poll(self, jobs: Sequence[Job]) -> dict[str, JobStatus]:
        ids = [job.job_id for job in jobs]
        result = run_command(["qstat", "-x", "-f", "-F", "json", *ids], timeout=self.cmd_timeout)
        found = parse_qstat_json(result.stdout)
        # "qstat: Unknown Job Id 12.pbs01" (rc 153) for ids the server forgot; the others
        # are still in the JSON. Any other failure with no JSON is a failed poll.
        if result.returncode != 0 and not found and "unknown job id" not in result.stderr.lower():
            raise SchedulerCommandError(
                f"{result.shown} failed (rc {result.returncode}): {result.stderr.strip()}",
                command=result.argv, returncode=result.returncode, stderr=result.stderr,
            )
        by_id = {_match_id(k, ids): v for k, v in found.items()}
        out: dict[str, JobStatus] = {}
        for job in jobs:
            attrs = by_id.get(job.job_id)
            status = self.missing(job) if attrs is None else self.explain(job, observe_pbs(attrs))
            if status is not None:
                out[job.job_id] = status
        return out

    def explain(self, job: Job, obs: Observation) -> JobStatus:
        jid = job.job_id
        if not obs.state.terminal:
            words = {JobState.PENDING: "is waiting in the queue", JobState.RUNNING: "is running",
                     JobState.HELD: "is held"}
            why = f" ({obs.reason})" if obs.reason else ""
            return job.status(obs.state, f"PBS job {jid} {words.get(obs.state, 'is')}{why}")
        if obs.state is JobState.COMPLETED:
            return job.status(obs.state, f"PBS job {jid} completed", obs.exit_code)
        state = obs.state
        if state is JobState.TIMEOUT:
            text = f"PBS job {jid} reached its time limit ({self.walltime})"
        elif obs.signal is not None and job.cancelled:
            state = JobState.CANCELLED
            text = f"PBS job {jid} was cancelled by livedag (scale-in or shutdown)"
        elif obs.signal is not None:
            text = (f"PBS job {jid} was killed by signal {obs.signal} (qdel by a user or an "
                    "administrator, or a resource limit)")
        elif obs.exit_code is not None and obs.exit_code < 0:
            text = f"PBS ended job {jid}: {obs.reason} (Exit_status {obs.exit_code})"
        else:
            text = f"PBS job {jid} failed: its block script exited with code {obs.exit_code}"
        text += f"; {job.output_note()}"
        if state is JobState.FAILED:
            text += self.stderr_evidence(job)
        return job.status(state, text, obs.exit_code)
