"""Helpers the cluster tests import (a plain module: `conftest` is not unique in tests/)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_for(
    check: Callable[[], bool], *, timeout: float, interval: float = 0.5, what: str = ""
) -> None:
    """Poll `check` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s for {what or check}")
        time.sleep(interval)
