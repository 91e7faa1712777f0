"""livedag: Parsl's programming model, a live DAG in Jupyter, failures you can read.

General layout: the names below are the whole public API; each is imported on first use,
so `import livedag` stays cheap. The engine lives in `dataflow` (the kernel), `loader`
(the loaded kernel), `steering` (cancel, resubmit), `apps` (the decorators), `futures`,
`config`, `memo`, `errors`, `events` (the stream every view reads); executors and
providers in their packages; everything Jupyter in `livedag.jupyter`; the
run record in `livedag.monitoring`, its pictures in the `livedag.plot` module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# name -> module that defines it
_EXPORTS = {
    "python_app": "livedag.apps",
    "bash_app": "livedag.apps",
    "join_app": "livedag.apps",
    "AUTO_LOGNAME": "livedag.apps",
    "Config": "livedag.config",
    "DataFlowKernel": "livedag.dataflow",
    "load": "livedag.loader",
    "dfk": "livedag.loader",
    "clear": "livedag.loader",
    "wait_for_current_tasks": "livedag.loader",
    "resubmit": "livedag.loader",
    "AppFuture": "livedag.futures",
    "DataFuture": "livedag.futures",
    "File": "livedag.futures",
    "ThreadPoolExecutor": "livedag.executors.threads",
    "HighThroughputExecutor": "livedag.executors.htex",
    "BasicMemoizer": "livedag.memo",
    "SHALLOW_DEPENDENCY_RESOLVER": "livedag.dependency_resolvers",
    "DEEP_DEPENDENCY_RESOLVER": "livedag.dependency_resolvers",
    "TaskState": "livedag.task",
    "history": "livedag.monitoring",
    "plot": "livedag.plot",  # a module: `import livedag.plot` works too
}

__all__ = [
    "AUTO_LOGNAME",
    "DEEP_DEPENDENCY_RESOLVER",
    "SHALLOW_DEPENDENCY_RESOLVER",
    "AppFuture",
    "BasicMemoizer",
    "Config",
    "DataFlowKernel",
    "DataFuture",
    "File",
    "HighThroughputExecutor",
    "TaskState",
    "ThreadPoolExecutor",
    "bash_app",
    "clear",
    "dfk",
    "history",
    "join_app",
    "load",
    "plot",
    "python_app",
    "resubmit",
    "wait_for_current_tasks",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'livedag' has no attribute {name!r}")
    imported = importlib.import_module(module)
    value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext livedag`: the live DAG widget, cell tagging, readable task errors."""
    from livedag.jupyter import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from livedag.jupyter import unload_ipython_extension as unload

    unload(ipython)


if TYPE_CHECKING:
    from livedag import plot
    from livedag.apps import AUTO_LOGNAME, bash_app, join_app, python_app
    from livedag.config import Config
    from livedag.dataflow import (
        DataFlowKernel,
        clear,
        dfk,
        load,
        resubmit,
        wait_for_current_tasks,
    )
    from livedag.dependency_resolvers import DEEP_DEPENDENCY_RESOLVER, SHALLOW_DEPENDENCY_RESOLVER
    from livedag.executors.htex import HighThroughputExecutor
    from livedag.executors.threads import ThreadPoolExecutor
    from livedag.futures import AppFuture, DataFuture, File
    from livedag.memo import BasicMemoizer
    from livedag.monitoring import history
    from livedag.task import TaskState
