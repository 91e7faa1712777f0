"""CondorProvider: blocks as HTCondor jobs (Parsl: parsl.providers.CondorProvider).

    submit ──> <name>.sh (worker_init + launcher(command)) and <name>.submit (the submit
               description: universe, files, environment, requirements)
           ──condor_submit <name>.submit──> "1 job(s) submitted to cluster 118907." ──> "118907.0"
    status ──> condor_q 118907.0 ... -af:jt JobStatus ExitCode HoldReason RemoveReason
               (one call; leave_in_queue keeps finished jobs there), then condor_history
               for jobs that left the queue anyway
    cancel ──> condor_rm 118907.0 ...

No HTCondor pool runs in the test environment: the parsers are tested against output
written from the documented formats (condor_submit, condor_q -autoformat, JobStatus
codes in the HTCondor manual), not against a live pool.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from livedag.errors import SchedulerCommandError
from livedag.providers.base import JobState, JobStatus
from livedag.providers.batch import BatchProvider, Job, Observation, render, run_command

# The JobStatus ClassAd attribute.
CONDOR_STATES: dict[str, tuple[JobState, str]] = {
    "1": (JobState.PENDING, "idle"),
    "2": (JobState.RUNNING, "running"),
    "3": (JobState.CANCELLED, "removed"),
    "4": (JobState.COMPLETED, "completed"),
    # A held job waits for a person to act on its HoldReason: as a block it has failed.
    "5": (JobState.FAILED, "held"),
    "6": (JobState.RUNNING, "transferring output"),
    "7": (JobState.HELD, "suspended"),
}

SUBMIT_TEMPLATE = """universe                = vanilla
should_transfer_files   = YES
when_to_transfer_output = ON_EXIT_OR_EVICT
transfer_executable     = false
transfer_input_files    = ${input_files}
machine_count           = ${nodes}
output                  = ${stdout_path}
error                   = ${stderr_path}
log                     = ${log_path}
executable              = /bin/bash
arguments               = ${job_script}
requirements            = ${requirements}
+projectname            = ${project}
leave_in_queue          = TRUE
environment             = "${environment}"
${scheduler_options}
queue
"""


def parse_condor_submit(stdout: str) -> str | None:
    """ "1 job(s) submitted to cluster 118907." -> "118907.0" (the first process)."""
    match = re.search(r"(\d+) job\(s\) submitted to cluster (\d+)", stdout)
    return f"{match.group(2)}.0" if match else None


def parse_autoformat(stdout: str) -> dict[str, Observation]:
    """`-af:jt JobStatus ExitCode HoldReason RemoveReason` (tab-separated, job id first;
    "undefined" for an attribute the job lacks) -> observations."""
    found: dict[str, Observation] = {}
    for line in stdout.splitlines():
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 2 or not re.fullmatch(r"\d+\.\d+", parts[0].strip()):
            continue
        fields = [p.strip() for p in parts[1:]] + ["undefined"] * 3
        code, exit_text, hold, remove = fields[:4]
        state, _ = CONDOR_STATES.get(code, (JobState.UNKNOWN, "unknown"))
        exit_code = int(exit_text) if exit_text.lstrip("-").isdigit() else None
        reason = next((r for r in (hold, remove) if r and r != "undefined"), "")
        if state is JobState.COMPLETED and exit_code not in (None, 0):
            state = JobState.FAILED
        found[parts[0].strip()] = Observation(code, state, reason, exit_code)
    return found


def condor_quote(value: str) -> str:
    """A value for the new-syntax `environment = "..."` line: single-quoted, with ' and "
    doubled (HTCondor manual, condor_submit, environment)."""
    return "'" + value.replace("'", "''").replace('"', '""') + "'"


class CondorProvider(BatchProvider):
    """Blocks as HTCondor vanilla-universe jobs."""

    scheduler = "HTCondor"

    def __init__(
        self,
        nodes_per_block: int = 1,
        cores_per_slot: int | None = None,
        mem_per_slot: float | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        environment: dict[str, str] | None = None,
        project: str = "",
        scheduler_options: str = "",
        transfer_input_files: Sequence[str] = (),
        walltime: str = "00:10:00",
        worker_init: str = "",
        launcher: Any = None,
        requirements: str = "",
        cmd_timeout: int = 60,
        cmd_chunk_size: int = 100,
    ) -> None:
        super().__init__(
            label="condor", nodes_per_block=nodes_per_block, init_blocks=init_blocks,
            min_blocks=min_blocks, max_blocks=max_blocks, parallelism=parallelism,
            walltime=walltime, scheduler_options=scheduler_options, worker_init=worker_init,
            launcher=launcher, cmd_timeout=cmd_timeout,
        )
        self.cores_per_slot = cores_per_slot
        self.mem_per_slot = mem_per_slot
        # To the executor a slot is a node.
        self.cores_per_node = cores_per_slot
        self.mem_per_node = mem_per_slot
        self.environment = dict(environment or {})
        self.project = project
        self.transfer_input_files = list(transfer_input_files)
        self.requirements = requirements
        self.cmd_chunk_size = max(1, cmd_chunk_size)

    # The job script needs no directives: the submit description carries them.
    def header(self, job: Job, tasks_per_node: int) -> str:
        return "# HTCondor job: see the .submit file beside this script"

    def extra_environment(self, job: Job, tasks_per_node: int) -> str:
        text = ""
        if self.mem_per_slot is not None:
            text += f"export PARSL_MEMORY_GB={self.mem_per_slot}\n"
        if self.cores_per_slot is not None:
            text += f"export PARSL_CORES={self.cores_per_slot}\n"
        return text

    def submit_description(self, job: Job) -> str:
        options = self.scheduler_options.strip("\n")
        if self.mem_per_slot is not None:
            options += f"\nRequestMemory = {int(self.mem_per_slot * 1024)}"
        if self.cores_per_slot is not None:
            options += f"\nRequestCpus = {self.cores_per_slot}"
        env = {**self.environment, "JOBNAME": job.name}
        return render(
            SUBMIT_TEMPLATE,
            input_files=",".join([job.script_path, *self.transfer_input_files]),
            nodes=self.nodes_per_block,
            stdout_path=job.stdout_path,
            stderr_path=job.stderr_path,
            log_path=os.path.splitext(job.script_path)[0] + ".log",
            job_script=os.path.basename(job.script_path),
            requirements=self.requirements,
            project=self.project,
            environment=" ".join(f"{k}={condor_quote(str(v))}" for k, v in env.items()),
            scheduler_options=options.strip("\n"),
        )

    def submit_command(self, job: Job) -> tuple[list[str], str | None]:
        submit_path = os.path.splitext(job.script_path)[0] + ".submit"
        with open(submit_path, "w") as f:
            f.write(self.submit_description(job))
        return ["condor_submit", submit_path], None

    def parse_submit(self, stdout: str) -> str | None:
        return parse_condor_submit(stdout)

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["condor_rm", *job_ids]

    def poll(self, jobs: Sequence[Job]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        for start in range(0, len(jobs), self.cmd_chunk_size):
            out.update(self._poll_chunk(jobs[start:start + self.cmd_chunk_size]))
        return out

    def _poll_chunk(self, jobs: Sequence[Job]) -> dict[str, JobStatus]:
        ids = [job.job_id for job in jobs]
        attrs = ["-af:jt", "JobStatus", "ExitCode", "HoldReason", "RemoveReason"]
        result = run_command(["condor_q", *ids, *attrs], timeout=self.cmd_timeout)
        if result.returncode != 0:
            raise SchedulerCommandError(
                f"{result.shown} failed (rc {result.returncode}): {result.stderr.strip()}",
                command=result.argv, returncode=result.returncode, stderr=result.stderr,
            )
        found = parse_autoformat(result.stdout)
        gone = [job_id for job_id in ids if job_id not in found]
        if gone:
            history = run_command(["condor_history", *gone, *attrs], timeout=self.cmd_timeout)
            if history.returncode == 0:
                found.update(parse_autoformat(history.stdout))
        out: dict[str, JobStatus] = {}
        for job in jobs:
            obs = found.get(job.job_id)
            status = self.explain(job, obs) if obs is not None else self.missing(job)
            if status is not None:
                out[job.job_id] = status
        return out

    def explain(self, job: Job, obs: Observation) -> JobStatus:
        jid = job.job_id
        _, word = CONDOR_STATES.get(obs.raw_state, (JobState.UNKNOWN, "unknown"))
        if not obs.state.terminal:
            return job.status(obs.state, f"HTCondor job {jid} is {word}")
        if obs.state is JobState.COMPLETED:
            return job.status(obs.state, f"HTCondor job {jid} completed", obs.exit_code)
        if obs.state is JobState.CANCELLED:
            who = "by livedag (scale-in or shutdown)" if job.cancelled else "(condor_rm)"
            text = f"HTCondor job {jid} was removed {who}"
        elif obs.raw_state == "5":
            text = f"HTCondor job {jid} is held: {obs.reason or 'no HoldReason given'}"
        else:
            text = f"HTCondor job {jid} failed: its block script exited with code {obs.exit_code}"
        if obs.reason and obs.raw_state != "5":
            text += f" [{obs.reason}]"
        text += f"; {job.output_note()}"
        if obs.state is JobState.FAILED:
            text += self.stderr_evidence(job)
        return job.status(obs.state, text, obs.exit_code)
