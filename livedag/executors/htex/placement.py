"""How many workers a pool starts, and which cores and accelerator each one gets.

Pure functions with Parsl's rules (process_worker_pool.py), so a Parsl config sizes a
node the same way:

    workers = min(max_workers_per_node, mem_available // mem_per_worker,
                  cores // cores_per_worker, len(accelerators) if any)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence


def worker_count(
    *,
    max_workers_per_node: float,
    cores_per_worker: float,
    mem_per_worker: float | None,
    accelerators: Sequence[str],
    cores_on_node: int,
    mem_available_gb: float,
) -> int:
    count: float = max_workers_per_node
    if mem_per_worker and mem_per_worker > 0:
        count = min(count, math.floor(mem_available_gb / mem_per_worker))
    count = min(count, math.floor(cores_on_node / cores_per_worker))
    if accelerators:
        count = min(count, len(accelerators))
    return int(count)


def node_resources() -> tuple[int, float]:
    """(cores, available memory in GB), honouring Parsl's PARSL_CORES / PARSL_MEMORY_GB."""
    cores = int(os.environ.get("PARSL_CORES") or os.cpu_count() or 1)
    if os.environ.get("PARSL_MEMORY_GB"):
        mem = float(os.environ["PARSL_MEMORY_GB"])
    else:
        import psutil

        mem = round(psutil.virtual_memory().available / 2**30, 1)
    return cores, mem


def affinity_cores(strategy: str, rank: int, pool_size: int, available: Sequence[int]) -> list[int]:
    """The cores worker `rank` is pinned to; [] means no pinning ("none")."""
    if strategy == "none":
        return []
    cores = sorted(available)
    if strategy.startswith("list"):
        ranks = strategy.split(":")[1:]
        if len(ranks) != pool_size:
            raise ValueError(
                f"cpu_affinity {strategy!r} lists {len(ranks)} workers, the pool has {pool_size}"
            )
        mine: list[int] = []
        for part in ranks[rank].split(","):
            lo, _, hi = part.partition("-")
            mine += list(range(int(lo), int(hi or lo) + 1))
        return mine
    per = len(cores) // pool_size
    if per < 1:
        raise ValueError(
            f"cpu_affinity {strategy!r} needs at least one core per worker: "
            f"{pool_size} workers, {len(cores)} cores"
        )
    if strategy == "block":
        return cores[per * rank : per * (rank + 1)]
    if strategy == "block-reverse":
        r = pool_size - rank - 1
        return cores[per * r : per * (r + 1)]
    if strategy == "alternating":
        return cores[rank::pool_size]
    raise ValueError(
        f"cpu_affinity {strategy!r} is not one of none, block, block-reverse, alternating, list:..."
    )


def accelerator_env(accelerator: str) -> dict[str, str]:
    """Environment that pins a worker to one accelerator (CUDA, ROCm, Level Zero)."""
    return {
        "CUDA_VISIBLE_DEVICES": accelerator,
        "ROCR_VISIBLE_DEVICES": accelerator,
        "ZE_AFFINITY_MASK": accelerator,
        "ZE_ENABLE_PCI_ID_DEVICE_ORDER": "1",
    }


def omp_env(cores: Sequence[int]) -> dict[str, str]:
    """OpenMP settings matching a worker's pinned cores (as Parsl sets them)."""
    procs = ",".join(map(str, cores))
    return {
        "OMP_NUM_THREADS": str(len(cores)),
        "GOMP_CPU_AFFINITY": procs,
        "KMP_AFFINITY": f"explicit,proclist=[{procs}]",
    }
