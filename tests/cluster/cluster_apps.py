"""App functions the htex-on-cluster tests run in batch jobs. Workers import this module
by name: the tests' worker_init puts this directory on PYTHONPATH, as a site config
would for a user's own package."""

from __future__ import annotations

import os
import sys
import time


def add(a: int, b: int) -> int:
    print(f"adding {a} and {b}")
    return a + b


def where(value: int) -> dict[str, object]:
    """Where the task ran: the interpreter, worker_init's mark, the batch job id."""
    return {
        "value": value,
        "python": sys.executable,
        "init": os.environ.get("LIVEDAG_TEST_INIT"),
        "job": os.environ.get("SLURM_JOB_ID") or os.environ.get("JOB_ID"),
    }


def sleep_then(seconds: float, value: object) -> object:
    time.sleep(seconds)
    return value


def shout(word: str, stdout: str | None = None, stderr: str | None = None) -> str:
    return f"echo {word} $((2 * 21)); echo {word} to stderr >&2"
