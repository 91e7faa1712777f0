"""The provider contract: how an executor gets blocks (batch jobs, local processes).

    executor ──script_for(command)──> provider: worker_init + launcher(command) = job script
    executor ──submit(script, job_name)──> provider ──> job id
    executor ──status([job ids])──> provider ──> [JobStatus]   (one call for all blocks)
    executor ──cancel([job ids])──> provider

A provider knows nothing about executors: it runs a script somewhere and reports on it.
State names and fields are Parsl's (`parsl.jobs.states`), so Parsl configs and custom
status checks read the same.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Sequence
from typing import Any


class JobState(enum.IntEnum):
    UNKNOWN = 0
    PENDING = 1
    RUNNING = 2
    CANCELLED = 3
    COMPLETED = 4
    FAILED = 5
    TIMEOUT = 6
    HELD = 7
    MISSING = 8
    SCALED_IN = 9

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.CANCELLED, JobState.COMPLETED, JobState.FAILED,
                             JobState.TIMEOUT, JobState.MISSING, JobState.SCALED_IN})


@dataclasses.dataclass(frozen=True)
class JobStatus:
    state: JobState
    message: str | None = None
    exit_code: int | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state.terminal


class ExecutionProvider(abc.ABC):
    """Base class of providers (Parsl: ExecutionProvider)."""

    label: str = "provider"
    nodes_per_block: int = 1
    init_blocks: int = 1
    min_blocks: int = 0
    max_blocks: int = 1
    parallelism: float = 1
    worker_init: str = ""
    launcher: Any = None
    # Set by the executor before the first submit: where job scripts and their output go.
    script_dir: str = "."
    # Blocks of this provider run on the machine of the kernel: the executor may bind to
    # loopback only.
    is_local: bool = False

    def script_for(self, command: str, tasks_per_node: int = 1) -> str:
        """The job script: worker_init, then the launcher's wrapping of `command`."""
        body = command
        if self.launcher is not None:
            body = self.launcher(command, tasks_per_node, self.nodes_per_block)
        return f"{self.worker_init}\n{body}\n" if self.worker_init else f"{body}\n"

    @abc.abstractmethod
    def submit(self, script: str, job_name: str) -> str:
        """Start a job running `script`; its job id."""

    @abc.abstractmethod
    def status(self, job_ids: Sequence[str]) -> list[JobStatus]:
        """The status of each job, in order, in one call."""

    @abc.abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> list[bool]:
        """Stop these jobs; for each, whether the cancel was delivered."""

    @property
    def status_polling_interval(self) -> float:
        return 5.0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"
