"""The process's loaded kernel: the DataFlowKernel that app calls run on.

    livedag.load(config) ─> DataFlowKernel(config) ─> on_load hooks (Jupyter, `livedag run`)
    app(...)             ─> current_dfk().submit(...)
    dfk.cleanup()        ─> forgotten here; livedag.clear() forgets it too

Parsl's `DataFlowKernelLoader` (load, dfk, clear, wait_for_current_tasks) is this module,
so `DataFlowKernelLoader.load(config)` works unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from livedag.errors import ConfigurationError, NoDataFlowKernelError
from livedag.futures import AppFuture

if TYPE_CHECKING:
    from livedag.config import Config
    from livedag.dataflow import DataFlowKernel

logger = logging.getLogger("livedag")

_current: DataFlowKernel | None = None
_load_lock = threading.Lock()
_load_hooks: list[Callable[[DataFlowKernel], None]] = []


def on_load(hook: Callable[[DataFlowKernel], None]) -> Callable[[], None]:
    """Call `hook(dfk)` for every DataFlowKernel made from now on (the Jupyter extension and
    `livedag run` attach their subscribers this way). Returns a function that removes it."""
    _load_hooks.append(hook)

    def remove() -> None:
        if hook in _load_hooks:
            _load_hooks.remove(hook)

    return remove


def run_load_hooks(dfk: DataFlowKernel) -> None:
    """Called by every new DataFlowKernel, loaded or not, once its executors are up."""
    for hook in list(_load_hooks):
        try:
            hook(dfk)
        except Exception:
            logger.exception("a load hook (%r) failed", hook)


def current_or_none() -> DataFlowKernel | None:
    """The loaded kernel, or None (no error)."""
    return _current


def load(config: Config | None = None) -> DataFlowKernel:
    """Load a Config and start its executors; apps run on this kernel from now on."""
    from livedag.dataflow import DataFlowKernel

    global _current
    with _load_lock:
        if _current is not None and _current.replaceable and _current.task_count == 0:
            _current.cleanup()
            _current = None
        if _current is not None:
            raise ConfigurationError(
                "Config has already been loaded: call livedag.dfk().cleanup() and "
                "livedag.clear() before loading another"
            )
        _current = DataFlowKernel(config)
        return _current


# Set in a worker process (by worker.serve): where an app call has no kernel to go to.
in_worker: str | None = None


def current_dfk() -> DataFlowKernel:
    dfk = _current
    if dfk is None:
        if in_worker is not None:
            raise NoDataFlowKernelError(
                f"Must first load config: an app was called inside a task, in {in_worker}, "
                "where no kernel is loaded. Apps are called from the notebook's kernel; to "
                "start tasks from a task, make the calling app a @join_app that returns the "
                "futures of the apps it calls"
            )
        raise NoDataFlowKernelError("Must first load config")
    return dfk


dfk = current_dfk


def clear() -> None:
    """Forget the loaded kernel (after cleanup) so that another Config can be loaded."""
    global _current
    _current = None


def forget(kernel: DataFlowKernel) -> None:
    """A kernel that was cleaned up is no longer the loaded one."""
    global _current
    if _current is kernel:
        _current = None


def wait_for_current_tasks() -> None:
    current_dfk().wait_for_current_tasks()


def resubmit(target: AppFuture | int, *, use_latest_definition: bool = True) -> AppFuture:
    """Run a failed task again (see DataFlowKernel.resubmit)."""
    if isinstance(target, AppFuture):
        return target._dfk.resubmit(target, use_latest_definition=use_latest_definition)
    return current_dfk().resubmit(target, use_latest_definition=use_latest_definition)
