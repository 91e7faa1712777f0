"""Providers: where blocks of workers run (Parsl: parsl.providers).

    LocalProvider   blocks as local processes
"""

from livedag.providers.base import ExecutionProvider, JobState, JobStatus
from livedag.providers.local import LocalProvider

__all__ = ["ExecutionProvider", "JobState", "JobStatus", "LocalProvider"]
