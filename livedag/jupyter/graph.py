"""The DAG view model: engine events folded into nodes, edges, cell groups and a layout.

    EventBus ──batch──> Graph.apply(events) ──> nodes / groups / cascades / layout
                                  │ marks what changed
                                  v
            widget (every ~150 ms) Graph.diff() ──> bounded dict ──> synced traitlet
            page (re)load          Graph.snapshot() ──> the whole view, once
            render.py              Graph.nodes / Graph.groups ──> matplotlib

Pure: no Jupyter, no widgets, no threads (the widget holds a lock around it). What it is
made of (Node, Try, Group, the view's state names, cell tags) is in nodes.py. The layout is
layered (column = topological generation, found with networkx per batch of new tasks) and
incremental: a node keeps its (layer, row) forever, so a picture never jumps while cells
add tasks. Each cell run gets a band of rows of its own.

Two things keep the view readable at scale:
- a dependency-failure cascade is folded into its root-cause node ("42 tasks blocked by
  task 7 'load': KeyError: 'x'"); the blocked nodes keep their place and come back when
  the root is resubmitted;
- past `aggregate_above` tasks the view switches to one box per (cell, app) with counts
  per state; failed tasks are still sent one by one (failures are the product). A box can
  be drilled into (`focus_on`): then the newest `aggregate_above` of its tasks are sent one
  by one too, and kept up to date, until the focus goes back to the overview.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import networkx as nx

from livedag import events as ev
from livedag.errors import exception_message
from livedag.jupyter.nodes import (
    FINAL,
    NO_CELL,
    STATES,
    TAIL_CHARS,
    TRACEBACK_CHARS,
    VIEW_STATE,
    Group,
    Node,
    Try,
    make_origin,
    parse_origin,
)
from livedag.task import StateMembers

_S = StateMembers  # TaskState's members, read per event (see StateMembers)

__all__ = ["STATES", "Graph", "Group", "Node", "Try", "make_origin", "parse_origin",
           "seed_events"]


def _tail(text: str, add: str, limit: int) -> str:
    text += add
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


class Graph:
    """Folds engine events into the view; `diff()` says what changed since the last call.

    Folding is the hot path (it shares the GIL with the engine): an event only updates its
    node and marks it; counts per state and per group are settled once per diff.
    """

    def __init__(self, *, aggregate_above: int = 2000, diff_nodes: int = 500) -> None:
        self.nodes: dict[int, Node] = {}
        self.groups: dict[str, Group] = {}
        self.aggregate_above = aggregate_above
        self.diff_nodes = diff_nodes
        self.aggregated = False
        self.counts: dict[str, int] = dict.fromkeys(STATES, 0)
        self.rev = 0  # of the last diff sent
        self.version = 0  # batches folded so far (a cheap "has anything changed")
        self._runs: dict[str, int] = {}  # cell key -> newest run seen
        self._origins: dict[str | None, Group] = {}  # origin tag -> its group
        self._occupied: set[tuple[int, int]] = set()  # (layer, row)
        self._bottom = 0  # first row below every band
        self._dirty: dict[int, None] = {}  # node ids to send, in order
        self._recount: dict[int, None] = {}  # node ids whose counted state may be stale
        self._dirty_groups: dict[str, None] = {}
        self._agg: dict[tuple[str, str], Group] = {}  # (cell-run key, app) -> group
        self._agg_dirty: dict[tuple[str, str], None] = {}
        self._agg_laid: set[str] = set()  # aggregated boxes that have a place
        self._reset_pending = False
        self.cascades_dirty = False
        self.focus: str | None = None  # the aggregated box drilled into (its key)
        self._focus_ids: set[int] = set()
        self._focus_changed = False
        self._pinned: dict[int, None] = {}  # tasks the page selected in the aggregated view
        self._handlers: dict[type[ev.Event], Callable[[Any], None]] = {
            ev.TaskCreated: self._create, ev.TaskStateChanged: self._state_changed,
            ev.TaskOutput: self._output, ev.TaskFailed: self._failed,
            ev.TaskCancelled: self._cancelled, ev.TaskResubmitted: self._resubmitted,
            ev.TaskResources: self._resources,
        }

    # ------------------------------------------------------------ folding events
    def apply(self, events: Iterable[ev.Event]) -> None:
        """Fold a batch of events (in the order the engine published them)."""
        handlers = self._handlers
        self.version += 1
        for e in events:
            handler = handlers.get(type(e))
            if handler is not None:
                handler(e)
        if not self.aggregated and len(self.nodes) > self.aggregate_above:
            self._start_aggregating()

    def _create(self, e: ev.TaskCreated) -> None:
        if e.task_id in self.nodes:
            return
        group = self._origins.get(e.origin)
        if group is None or group.superseded:
            self.cell_started(e.origin)
            cell, run, _label = parse_origin(e.origin)
            group = self._origins[e.origin] = self._group(e.origin or NO_CELL, cell, run)
        nodes = self.nodes
        node = Node(e.task_id, e.app_name, e.kind, e.executor, e.origin, group.key,
                    e.depends_on, e.args_summary, e.time)
        node.superseded = group.superseded
        nodes[node.id] = node
        # Inputs are made before the tasks that use them: arrival order is topological,
        # so layer = 1 + deepest input is the node's topological generation (as
        # networkx.topological_generations would number it; tested).
        self._place(node)
        self._dirty[node.id] = None
        self._recount[node.id] = None

    def _group(self, key: str, cell: str, run: int) -> Group:
        group = self.groups.get(key)
        if group is None:
            label = parse_origin(key)[2] if key != NO_CELL else NO_CELL
            group = Group(key, label, cell, run, row0=self._bottom + (1 if self.groups else 0),
                          order=len(self.groups))
            group.superseded = run < self._runs.get(cell, run)
            self.groups[key] = group
            self._bottom = group.row0
            self._dirty_groups[key] = None
        return group

    def cell_started(self, origin: str | None) -> None:
        """A cell runs (again): tasks from its earlier runs are superseded (drawn dimmed)."""
        cell, run, _ = parse_origin(origin)
        if cell == NO_CELL or run <= self._runs.get(cell, -1):
            return
        self._runs[cell] = run
        for group in self.groups.values():
            if group.cell == cell and group.run < run and not group.superseded:
                group.superseded = True
                self._dirty_groups[group.key] = None
                for node in self.nodes.values():
                    if node.group == group.key and not node.superseded:
                        node.superseded = True
                        self._dirty[node.id] = None
                        self._recount[node.id] = None

    def _state_changed(self, e: ev.TaskStateChanged) -> None:
        node = self.nodes.get(e.task_id)
        if node is None:
            return
        st = e.state
        state = VIEW_STATE[st]
        if st is _S.LAUNCHED:
            node.tries.append(Try(e.try_number, launched=e.time))
            if node.stdout or node.stderr:  # a new try starts with empty captures
                node.stdout = node.stderr = ""
        elif st is _S.RUNNING:
            attempt = node.try_for(e.try_number)
            attempt.started = attempt.started or e.time
            if e.host or e.pid is not None:
                node.host, node.pid = attempt.host, attempt.pid = e.host, e.pid
                node.block_id, node.job_id = e.block_id, e.job_id
        elif st is _S.PENDING:
            # Tries numbered above the event's never ran: a try launched ahead of its
            # inputs and given back (forwarding.py). A retry's pending keeps its tries.
            while node.tries and node.tries[-1].number > e.try_number:
                node.tries.pop()
        elif st is _S.MEMO_DONE:
            node.tries.append(Try(e.try_number, launched=e.time, ended=e.time,
                                  outcome="cached"))
        elif state in FINAL and node.tries and node.tries[-1].ended is None:
            node.tries[-1].ended = e.time
            node.tries[-1].outcome = state
        if state in ("done", "cached") and node.exc_type:
            node.exc_type = node.message = node.traceback = ""
        self._set_state(node, state)

    def _output(self, e: ev.TaskOutput) -> None:
        node = self.nodes.get(e.task_id)
        if node is None:
            return
        if e.stream == "stderr":
            node.stderr = _tail(node.stderr, e.text, TAIL_CHARS)
        else:
            node.stdout = _tail(node.stdout, e.text, TAIL_CHARS)
        self._dirty[node.id] = None

    def _failed(self, e: ev.TaskFailed) -> None:
        node = self.nodes.get(e.task_id)
        if node is None:
            return
        node.exc_type, node.message = e.exc_type, e.message
        tb = e.traceback
        node.traceback = tb if len(tb) <= TRACEBACK_CHARS else "[...]\n" + tb[-TRACEBACK_CHARS:]
        node.root_cause_ids = tuple(e.root_cause_ids)
        if node.tries and node.tries[-1].number == e.try_number:
            node.tries[-1].exc_type = e.exc_type
            node.tries[-1].outcome = "failed (retrying)" if e.will_retry else node.tries[-1].outcome
            node.tries[-1].ended = node.tries[-1].ended or e.time
        if e.state is _S.DEP_FAIL:
            root = next((self.nodes[r] for r in e.root_cause_ids if r in self.nodes), None)
            if root is not None and root.id != node.id:
                self._unfold(node)
                node.folded_into = root.id
                if root.blocked:
                    root.blocked.add(node.id)  # type: ignore[union-attr]
                else:
                    root.blocked = {node.id}
                self._dirty[root.id] = None
                self.cascades_dirty = True
        self._dirty[node.id] = None

    def _resources(self, e: ev.TaskResources) -> None:
        node = self.nodes.get(e.task_id)
        if node is None:
            return
        for attempt in reversed(node.tries):  # the newest, unless a report came late
            if attempt.number == e.try_number:
                attempt.cpu_time = e.cpu_time
                attempt.peak_rss = e.peak_rss or None  # 0: the executor cannot tell
                self._dirty[node.id] = None
                return

    def _cancelled(self, e: ev.TaskCancelled) -> None:
        node = self.nodes.get(e.task_id)
        if node is not None:
            node.message = node.message or e.reason
            self._set_state(node, "cancelled")

    def _resubmitted(self, e: ev.TaskResubmitted) -> None:
        for tid in (e.task_id, *e.rearmed):
            node = self.nodes.get(tid)
            if node is not None:
                self._unfold(node)
                node.exc_type = node.message = node.traceback = ""
                node.root_cause_ids = ()
                self._set_state(node, "pending")

    def _unfold(self, node: Node) -> None:
        if node.folded_into is None:
            return
        root = self.nodes.get(node.folded_into)
        if root is not None:
            if root.blocked:
                root.blocked.discard(node.id)  # type: ignore[union-attr]
            self._dirty[root.id] = None
        node.folded_into = None
        self.cascades_dirty = True

    def _set_state(self, node: Node, state: str) -> None:
        if node.folded_into is not None and state != "dep_fail":
            self._unfold(node)
        node.state = state
        self._dirty[node.id] = None
        self._recount[node.id] = None

    def _settle(self) -> None:
        """Bring the counts per state (overall, per group, per aggregated box) up to date
        for the nodes that moved since the last call: once per node, not per event."""
        if not self._recount:
            return
        counts, groups, nodes = self.counts, self.groups, self.nodes
        aggregated = self.aggregated
        for tid in self._recount:
            node = nodes[tid]
            old, new = node.counted, node.view_state
            if old == new:
                continue
            node.counted = new
            group = groups[node.group]
            gc = group.counts
            if old is not None:
                counts[old] -= 1
                gc[old] -= 1
            counts[new] += 1
            gc[new] = gc.get(new, 0) + 1
            self._dirty_groups[group.key] = None
            if aggregated:
                agg = self._agg_group(node)
                ac = agg.counts
                if old is not None:
                    ac[old] -= 1
                ac[new] = ac.get(new, 0) + 1
                if new == "failed":
                    agg.failed.append(node.id)
                elif old == "failed" and node.id in agg.failed:
                    agg.failed.remove(node.id)
                self._agg_dirty[(node.group, node.app)] = None
        self._recount.clear()

    # ------------------------------------------------------------ layout
    def _place(self, node: Node) -> None:
        """A new node's (layer, row); nodes placed before never move."""
        nodes = self.nodes
        preds = [nodes[d] for d in node.deps if d in nodes]
        node.layer = 1 + max((p.layer for p in preds), default=-1)
        group = self.groups[node.group]
        # Prefer the row of the first input from the same cell: chains stay straight.
        same = [p.row for p in preds if p.group == node.group]
        layer, occupied = node.layer, self._occupied
        row = max(same[0] if same else group.cursor.get(layer, group.row0), group.row0)
        while (layer, row) in occupied:
            row += 1
        if not same:
            group.cursor[layer] = row + 1
        node.row = row
        occupied.add((layer, row))
        if row >= self._bottom:
            self._bottom = row + 1
        if self.aggregated:
            agg = self._agg_group(node)
            agg.members.append(node.id)
            agg.deps.update(f"{p.group}\x00{p.app}" for p in preds
                            if (p.group, p.app) != (node.group, node.app))
            if agg.key == self.focus and len(self._focus_ids) < self.aggregate_above:
                self._focus_ids.add(node.id)

    @property
    def dag(self) -> nx.DiGraph:
        """The task graph as networkx sees it (built on demand; not kept up to date)."""
        g: nx.DiGraph = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.edges)
        return g

    def relayout(self) -> dict[int, tuple[int, int]]:
        """A fresh compact layout of the whole DAG (for a static picture), not stored:
        layer = topological generation, rows in task order within each layer."""
        pos: dict[int, tuple[int, int]] = {}
        for layer, generation in enumerate(nx.topological_generations(self.dag)):
            for row, tid in enumerate(sorted(generation)):
                pos[tid] = (layer, row)
        return pos

    @property
    def edges(self) -> list[tuple[int, int]]:
        nodes = self.nodes
        return [(d, n.id) for n in nodes.values() for d in n.deps if d in nodes]

    # ------------------------------------------------------------ cascades
    def cascades(self, limit: int = 20) -> list[dict[str, Any]]:
        """Dependency-failure cascades, largest first, each folded into its root cause."""
        roots = [n for n in self.nodes.values() if n.blocked]
        roots.sort(key=lambda n: (-len(n.blocked), n.id))
        out = []
        for root in roots[:limit]:
            count = len(root.blocked)
            what = f"{root.exc_type}: {root.message}" if root.exc_type else root.state
            noun = "task" if count == 1 else "tasks"
            out.append({"root": root.id, "count": count,
                        "text": f"{count} {noun} blocked by task {root.id} '{root.app}': {what}"})
        return out

    # ------------------------------------------------------------ aggregated view
    def _agg_group(self, node: Node) -> Group:
        key = (node.group, node.app)
        agg = self._agg.get(key)
        if agg is None:
            base = self.groups[node.group]
            agg = Group(f"{node.group}\x00{node.app}", base.label, base.cell, base.run,
                        row0=0, order=len(self._agg), superseded=base.superseded,
                        app=node.app)
            self._agg[key] = agg
        return agg

    def _start_aggregating(self) -> None:
        self._settle()
        self.aggregated = True
        self._reset_pending = True
        for node in self.nodes.values():
            agg = self._agg_group(node)
            agg.members.append(node.id)
            vs = node.counted
            if vs is not None:
                agg.counts[vs] = agg.counts.get(vs, 0) + 1
            if vs == "failed":
                agg.failed.append(node.id)
            for p in node.deps:
                parent = self.nodes.get(p)
                if parent is not None and (parent.group, parent.app) != (node.group, node.app):
                    agg.deps.add(f"{parent.group}\x00{parent.app}")
        self._layout_groups()
        self._dirty.clear()

    def _layout_groups(self) -> None:
        """Boxes of the aggregated view, layered with networkx (cycles between apps of one
        cell are possible, so layer the condensation)."""
        g: nx.DiGraph = nx.DiGraph()
        g.add_nodes_from(a.key for a in self._agg.values())
        g.add_edges_from((d, a.key) for a in self._agg.values() for d in a.deps if d in g)
        cond = nx.condensation(g)
        members = cond.graph["mapping"]
        layer_of = {}
        for layer, generation in enumerate(nx.topological_generations(cond)):
            for c in generation:
                layer_of[c] = layer
        rows: dict[int, int] = {}
        for agg in sorted(self._agg.values(), key=lambda a: a.order):
            agg.layer = layer_of[members[agg.key]]
            agg.row = rows.get(agg.layer, 0)
            rows[agg.layer] = agg.row + 1
            self._agg_dirty[(agg.key.split("\x00")[0], agg.app)] = None

    def _agg_diff(self) -> list[dict[str, Any]]:
        if any(a.key not in self._agg_laid for a in self._agg.values()):
            self._layout_groups()
            self._agg_laid = {a.key for a in self._agg.values()}
        keys = list(self._agg_dirty)
        self._agg_dirty.clear()
        return [self._agg[k].to_json() for k in keys if k in self._agg]

    def focus_on(self, key: str | None) -> None:
        """Drill into an aggregated box (its key; None: back to the overview). Its newest
        `aggregate_above` tasks are sent one by one from the next diff on (that diff may
        carry all of them: the user asked for this many)."""
        agg = self._agg_by_key(key) if key is not None else None
        if key is not None and agg is None:
            raise KeyError(f"no group {key!r} in the aggregated view")
        self.focus = agg.key if agg is not None else None
        self._focus_ids = set(agg.members[-self.aggregate_above:]) if agg is not None else set()
        self._focus_changed = True
        for tid in sorted(self._focus_ids):
            self._dirty[tid] = None

    def pin(self, task_id: int, *, keep: int = 20) -> None:
        """The page selected a task it has no details of (aggregated view, e.g. from the
        timeline): send it one by one from now on, as a failure is (the last `keep`)."""
        if task_id not in self.nodes:
            raise KeyError(f"task {task_id} is not in the view")
        self._pinned.pop(task_id, None)
        self._pinned[task_id] = None
        while len(self._pinned) > keep:
            del self._pinned[next(iter(self._pinned))]
        self._dirty[task_id] = None

    def _agg_by_key(self, key: str) -> Group | None:
        group, _, app = key.partition("\x00")
        return self._agg.get((group, app))

    def focus_json(self) -> dict[str, Any] | None:
        agg = self._agg_by_key(self.focus) if self.focus is not None else None
        if agg is None:
            return None
        return {"key": agg.key, "app": agg.app, "label": agg.label,
                "shown": len(self._focus_ids), "total": len(agg.members)}

    def _notable(self, limit: int = 200) -> list[Node]:
        """In the aggregated view, the nodes still sent one by one: the failures."""
        failed = [n for n in self.nodes.values() if n.state == "failed" and not n.superseded]
        return failed[-limit:]

    # ------------------------------------------------------------ sync
    @property
    def dirty(self) -> bool:
        return bool(self._dirty or self._dirty_groups or self._agg_dirty or self.cascades_dirty
                    or self._reset_pending or self._focus_changed)

    def diff(self) -> dict[str, Any]:
        """What changed since the last diff, bounded to `diff_nodes` nodes (the rest waits
        for the next call: `more` says so)."""
        self._settle()
        self.rev += 1
        out: dict[str, Any] = {"rev": self.rev, "mode": self.mode, "legend": self.legend()}
        if self._reset_pending:
            # Entering the aggregated view: the browser drops its nodes and takes this.
            self._reset_pending = False
            self._focus_changed = False
            out.update(self._whole())
            out["reset"] = True
            self._dirty.clear()
            self._dirty_groups.clear()
            self.cascades_dirty = False
            return out
        if self.aggregated:
            # Only failures (and the tasks of a box drilled into) travel one by one in the
            # aggregated view; the rest are counts.
            focus, pinned = self._focus_ids, self._pinned
            shown, failed = [], []
            for n in map(self.nodes.__getitem__, self._dirty):
                if n.id in focus or n.id in pinned:
                    shown.append(n)
                elif n.state == "failed" and not n.superseded:
                    failed.append(n)
            nodes = failed[-200:] + shown
            self._dirty.clear()
            out["agg"] = self._agg_diff()
            if self._focus_changed:
                self._focus_changed = False
                out["focus"] = self.focus_json()
        else:
            ids = list(itertools.islice(self._dirty, self.diff_nodes))
            for tid in ids:
                del self._dirty[tid]
            nodes = [self.nodes[t] for t in ids]
        out["nodes"] = [n.detail_json() for n in nodes]
        out["groups"] = [self.groups[k].to_json() for k in self._dirty_groups]
        self._dirty_groups.clear()
        if self.cascades_dirty:
            out["cascades"] = self.cascades()
            self.cascades_dirty = False
        out["more"] = bool(self._dirty)
        return out

    def snapshot(self) -> dict[str, Any]:
        """The whole view (for a page that (re)loads): it replaces whatever the page had.
        Diffs after it are applied on top; their `rev` is larger."""
        self._settle()
        out: dict[str, Any] = {"rev": self.rev, "mode": self.mode, "legend": self.legend()}
        out.update(self._whole())
        return out

    def _whole(self) -> dict[str, Any]:
        if self.aggregated:
            if any(a.key not in self._agg_laid for a in self._agg.values()):
                self._layout_groups()
                self._agg_laid = {a.key for a in self._agg.values()}
            self._agg_dirty.clear()
            notable = self._notable()
            seen = {n.id for n in notable}
            extra = sorted(self._focus_ids.union(self._pinned).difference(seen))
            nodes = notable + [self.nodes[t] for t in extra]
            agg = [a.to_json() for a in self._agg.values()]
        else:
            nodes = list(self.nodes.values())
            agg = []
        return {
            "nodes": [n.detail_json() for n in nodes],
            "groups": [g.to_json() for g in self.groups.values()],
            "agg": agg,
            "cascades": self.cascades(),
            "focus": self.focus_json(),
        }

    @property
    def mode(self) -> str:
        return "aggregate" if self.aggregated else "nodes"

    def legend(self) -> dict[str, int]:
        self._settle()
        return {s: c for s, c in self.counts.items() if c}

    def failed_ids(self) -> list[int]:
        """Tasks whose own code failed and that no newer cell run replaced."""
        return [n.id for n in self.nodes.values() if n.state == "failed" and not n.superseded]

    def summary(self) -> str:
        """One line per state and per cascade, for text/plain output and logs."""
        total = len(self.nodes)
        parts = [f"{c} {s}" for s, c in self.legend().items()]
        lines = [f"livedag: {total} task{'s' if total != 1 else ''}"
                 + (f" ({', '.join(parts)})" if parts else "")]
        for node in self.nodes.values():
            if node.state == "failed" and not node.superseded:
                lines.append(f"  task {node.id} '{node.app}' failed: {node.exc_type}: "
                             f"{node.message}"[:200])
                if sum(1 for line in lines if line.startswith("  task")) >= 10:
                    break
        lines += [f"  {c['text']}" for c in self.cascades(5)]
        return "\n".join(lines)


def seed_events(records: Iterable[Any], *, time: float = 0.0) -> list[ev.Event]:
    """Events that describe tasks made before the view subscribed (from `dfk.tasks`).

    Each record gives a TaskCreated and, past pending, its current state (and failure).
    """
    out: list[ev.Event] = []
    for r in sorted(records, key=lambda r: r.id):
        deps = tuple(t for t in (getattr(d, "tid", None) for d in r.depends_on)
                     if isinstance(t, int))
        summary = r.args_summary
        if summary is None:
            summary = ev.summarize_args(r.args, r.kwargs)
        out.append(ev.TaskCreated(time, r.id, r.app_name, r.kind, r.executor, deps, r.origin,
                                  summary))
        if r.state is not _S.PENDING:
            attempt = r.tries[-1] if r.tries else None
            out.append(ev.TaskStateChanged(
                time, r.id, r.state, r.try_number, attempt.host if attempt else "",
                attempt.pid if attempt else None))
        if r.state.is_failure and r.exception is not None:
            import traceback

            exc = r.exception
            out.append(ev.TaskFailed(
                time, r.id, r.try_number, r.state, type(exc).__name__,
                exception_message(exc),  # (safe when the exception's __str__ raises)
                "".join(traceback.format_exception(exc)), tuple(r.root_cause_ids)))
    return out
