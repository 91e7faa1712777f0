"""The ZMQ executor: worker pools on local processes or cluster nodes.

    executor.py      the kernel side: submit, futures, events
    parameters.py    Parsl's parameters: ignored, checked, where each goes
    pipes.py         the kernel's end of the interchange's pipes (start, send, batching)
    losses.py        the error each lost task gets, and when
    strategy.py      how many blocks to run, and when idle ones go
    blocks.py        the executor's blocks: started, watched, cancelled through the provider
    interchange.py   the broker process between the kernel and the pools
    pool.py          one per node of a block: starts, feeds and watches workers
    worker.py        a worker process: runs one task at a time
    protocol.py      the messages and their framing
    forensics.py     why a worker died, in words
    placement.py     how many workers, on which cores and accelerators
    security.py      the run's secret and CurveZMQ keys

Imports are lazy: the interchange, pool and worker processes import only what they use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["IGNORED_PARAMETERS", "HighThroughputExecutor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from livedag.executors.htex import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'livedag.executors.htex' has no attribute {name!r}")
