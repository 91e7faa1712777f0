"""The scaling strategy: how many blocks the outstanding tasks want, and when idle blocks
go. A state machine without I/O: the executor feeds it facts and carries out its plan.

    block watcher, every strategy_period (sooner when a task waits and no block lives)
        ──> executor._scale ──Strategy.plan(live blocks, outstanding tasks, ...)──>
            (n, [])      ──> scale_out_one() n times; the scheduler refuses one and none
                             runs ──> what waits fails with the scheduler's words
            (0, blocks)  ──> Blocks.retire ──Retire──> interchange: the pool drains, then
                             its block is cancelled

Parsl's "simple" and "htex_auto_scale" (the executor skips the plan for None/"none"):
enough blocks, between min_blocks and max_blocks, for `parallelism` of the outstanding
tasks to have a worker each; once no task has been outstanding for max_idletime, the
blocks beyond min_blocks go.
"""

from __future__ import annotations

import dataclasses
import math
import time

from livedag.providers.base import ExecutionProvider


@dataclasses.dataclass
class Strategy:
    idle_since: float | None = None  # time.monotonic() at the first plan with no task

    def plan(self, live: list[str], outstanding: int, *, workers_seen: int,
             workers_per_node: float, provider: ExecutionProvider,
             max_idletime: float) -> tuple[int, list[str]]:
        """(how many blocks to start, which blocks to retire). `live` are the blocks that
        run or may run soon; `workers_seen` the most workers a pool has reported, else
        `workers_per_node` (as configured) tells how many tasks one node's pool runs."""
        p = provider
        if outstanding:
            self.idle_since = None
            per_block = max(1, workers_seen or int(min(workers_per_node, 1e6)))
            want = math.ceil(outstanding * p.parallelism / (per_block * p.nodes_per_block))
            want = min(p.max_blocks, max(p.min_blocks, want))
            return want - len(live), []
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        elif now - self.idle_since >= max_idletime:
            return 0, live[p.min_blocks:]
        return p.min_blocks - len(live), []
