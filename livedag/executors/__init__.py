"""Executors: where tasks run. `ThreadPoolExecutor` (threads of this process) and
`HighThroughputExecutor` (worker pools over ZMQ, locally or as cluster jobs)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ThreadPoolExecutor": "livedag.executors.threads",
    "HighThroughputExecutor": "livedag.executors.htex",
    "Executor": "livedag.executors.base",
    "ParslExecutor": "livedag.executors.base",
}
__all__ = [
    "Executor",
    "HighThroughputExecutor",
    "ParslExecutor",
    "ThreadPoolExecutor",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'livedag.executors' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
