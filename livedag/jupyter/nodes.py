"""What the DAG view is made of: a node per task (with its tries), a group per cell run (or,
aggregated, per app in a cell run), the view's state names and the cell tags tasks carry.
Plain data with their JSON forms; `graph.Graph` folds events into them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from livedag.task import TaskState

# What the view calls each engine state (Parsl's names are for the API, these for people).
VIEW_STATE = {
    TaskState.PENDING: "pending",
    TaskState.LAUNCHED: "launched",
    TaskState.RUNNING: "running",
    TaskState.JOINING: "running",
    TaskState.EXEC_DONE: "done",
    TaskState.MEMO_DONE: "cached",
    TaskState.FAILED: "failed",
    TaskState.DEP_FAIL: "dep_fail",
    TaskState.CANCELLED: "cancelled",
}
# Legend order; "superseded" is a task of a cell that has been run again since.
STATES = (
    "pending", "launched", "running", "done", "failed", "dep_fail", "cached", "cancelled",
    "superseded",
)
FINAL = frozenset({"done", "failed", "dep_fail", "cached", "cancelled"})

TAIL_CHARS = 4000  # stdout/stderr kept per task for the detail panel
TRACEBACK_CHARS = 12000
NO_CELL = "(outside a cell)"

_ORIGIN = re.compile(r"^cell:(?P<cell>[^:]*):(?P<count>\d+)$")


def make_origin(cell_id: str | None, execution_count: int | None) -> str:
    """The `dfk.task_origin` tag of one cell run (the extension sets it per cell)."""
    return f"cell:{cell_id or ''}:{execution_count or 0}"


def parse_origin(origin: str | None) -> tuple[str, int, str]:
    """(cell key, run number, label) of an origin tag; other tags are their own cell."""
    if not origin:
        return NO_CELL, 0, NO_CELL
    m = _ORIGIN.match(origin)
    if m is None:
        return origin, 0, origin
    count = int(m["count"])
    cell = m["cell"] or f"In [{count}]"
    return cell, count, f"In [{count}]"


@dataclasses.dataclass(slots=True)
class Try:
    """One attempt as the view shows it (a timeline row in the detail panel)."""

    number: int
    launched: float | None = None
    started: float | None = None
    ended: float | None = None
    outcome: str = ""
    exc_type: str = ""
    host: str = ""
    pid: int | None = None
    cpu_time: float | None = None  # seconds (TaskResources); None: not reported
    peak_rss: int | None = None  # bytes; None: not reported, or the executor cannot tell

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every field, 10x the price of this.
        return {"number": self.number, "launched": self.launched, "started": self.started,
                "ended": self.ended, "outcome": self.outcome, "exc_type": self.exc_type,
                "host": self.host, "pid": self.pid, "cpu_time": self.cpu_time,
                "peak_rss": self.peak_rss}


@dataclasses.dataclass(slots=True)
class Node:
    id: int
    app: str
    kind: str
    executor: str
    origin: str | None
    group: str  # the key of its cell-run group
    deps: tuple[int, ...]
    args: str = ""
    created: float = 0.0
    state: str = "pending"
    superseded: bool = False
    host: str = ""
    pid: int | None = None
    block_id: str | None = None
    job_id: str | None = None
    tries: list[Try] = dataclasses.field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    exc_type: str = ""
    message: str = ""
    traceback: str = ""
    root_cause_ids: tuple[int, ...] = ()
    folded_into: int | None = None  # the root-cause node this blocked node is drawn in
    # Folded into this node; a set from the first one on (a set per node would be one
    # more object per task for the garbage collector to walk).
    blocked: set[int] | frozenset[int] = frozenset()
    layer: int = 0
    row: int = 0
    counted: str | None = None  # the state the counts hold it under (see Graph._settle)

    @property
    def view_state(self) -> str:
        return "superseded" if self.superseded else self.state

    def try_for(self, number: int) -> Try:
        if not self.tries or self.tries[-1].number != number:
            self.tries.append(Try(max(number, 1)))
        return self.tries[-1]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "app": self.app, "state": self.view_state, "group": self.group,
            "layer": self.layer, "row": self.row, "deps": list(self.deps),
        }
        if self.kind != "python":
            out["kind"] = self.kind
        if self.folded_into is not None:
            out["folded_into"] = self.folded_into
        if self.blocked:
            out["blocked"] = len(self.blocked)
        return out

    def detail_json(self) -> dict[str, Any]:
        """Everything the detail panel shows; read by the browser without a kernel call."""
        out = self.to_json()
        out.update({
            "executor": self.executor, "args": self.args, "origin": self.origin,
            "cell": parse_origin(self.origin)[2], "real_state": self.state,
            "host": self.host, "pid": self.pid, "block_id": self.block_id,
            "job_id": self.job_id, "tries": [t.to_json() for t in self.tries[-20:]],
        })
        for key in ("stdout", "stderr", "exc_type", "message", "traceback"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.root_cause_ids:
            out["root_cause_ids"] = list(self.root_cause_ids)
        return out


@dataclasses.dataclass(slots=True)
class Group:
    """The tasks one cell run made (or, in the aggregated view, one app in one cell)."""

    key: str
    label: str
    cell: str
    run: int
    row0: int
    order: int
    superseded: bool = False
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    app: str = ""
    layer: int = 0
    row: int = 0
    deps: set[str] = dataclasses.field(default_factory=set)
    failed: list[int] = dataclasses.field(default_factory=list)
    members: list[int] = dataclasses.field(default_factory=list)  # aggregated: its tasks
    cursor: dict[int, int] = dataclasses.field(default_factory=dict)  # layer -> next row

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key, "label": self.label, "cell": self.cell, "order": self.order,
            "superseded": self.superseded,
            "counts": {s: c for s, c in self.counts.items() if c},
        }
        if self.app:
            out.update({"app": self.app, "layer": self.layer, "row": self.row,
                        "deps": sorted(self.deps), "failed": self.failed[:20],
                        "n_failed": len(self.failed)})
        return out
