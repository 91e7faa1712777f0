"""The timeline view model: every try of a task that ran, as a bar in its worker's lane.

    EventBus ──batch──> Timeline.apply(events) ──> lanes (host:pid) of bars (task, try,
                                  │ marks what changed       start, end, state, slot)
                                  v
            widget (with each DAG diff) Timeline.diff(now) ──> bounded dict ──> diff["timeline"]
            page (re)load                Timeline.snapshot(now) ──> the whole timeline

A bar opens when a try starts running (its RUNNING event names the host and process) and
closes with the try's end (done, failed, a failure that will be retried, cancelled). Those
are the times the kernel heard of it: a worker reports starts and results in batches, so
when the worker measured the call (TaskResources.wall_time), the bar is made that long,
ending where it ended. A lane is one worker process (the kernel itself for the thread
executor); bars that overlap in a lane (threads) go to sub-rows ("slots"): a running bar
holds one; when it ends it moves to the first slot free over its whole span.

Bounded: a lane keeps its newest `bars_per_lane` bars (a running bar is never dropped) and
counts all it has had, so the page can say "the newest 100 of 5,000 runs"; a diff carries
at most `diff_bars` bars and the keys of kept bars that were dropped since the last one.
Pure: no clock of its own (`now` comes from the caller), no Jupyter, no threads.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from livedag import events as ev
from livedag.task import TaskState

# How a try ended, in the DAG's state names (and colours).
_ENDS = {
    TaskState.EXEC_DONE: "done",
    TaskState.FAILED: "failed",
    TaskState.DEP_FAIL: "dep_fail",
    TaskState.CANCELLED: "cancelled",
    TaskState.PENDING: "failed",  # sent back to pending after running: a retry follows
    TaskState.LAUNCHED: "failed",
}


MAX_SLOTS = 16  # sub-rows of a lane (bars running at once in one process, e.g. threads)


@dataclasses.dataclass(slots=True)
class Bar:
    key: str  # "task.try"
    task: int
    try_number: int
    app: str
    lane: str
    slot: int
    start: float
    end: float | None = None
    state: str = "running"
    free_from: float = float("-inf")  # when its slot was free before it (not sent)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "task": self.task, "try": self.try_number, "app": self.app,
                "lane": self.lane, "slot": self.slot, "start": self.start, "end": self.end,
                "state": self.state}


@dataclasses.dataclass(slots=True)
class Lane:
    """One worker process: its kept bars (oldest first) and how many it has run."""

    key: str
    host: str
    pid: int | None
    block: str | None
    order: int
    # Oldest first. An OrderedDict: a plain dict that is emptied from the front leaves
    # holes that every later scan from the front walks over again.
    bars: collections.OrderedDict[str, Bar] = dataclasses.field(
        default_factory=collections.OrderedDict)
    runs: int = 0
    slot_ends: list[float | None] = dataclasses.field(default_factory=list)  # None: busy

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "host": self.host, "pid": self.pid, "block": self.block,
                "order": self.order, "runs": self.runs, "kept": len(self.bars),
                "slots": len(self.slot_ends)}

    def take_slot(self, bar: Bar) -> None:
        """Hold the first sub-row free at the bar's start; past MAX_SLOTS, the one that
        freed first (bars then overlap)."""
        ends = self.slot_ends
        for i, end in enumerate(ends):
            if end is not None and end <= bar.start:
                bar.slot, bar.free_from, ends[i] = i, end, None
                return
        if len(ends) < MAX_SLOTS:
            bar.slot = len(ends)
            ends.append(None)
            return
        done = [(end, i) for i, end in enumerate(ends) if end is not None]
        end, bar.slot = min(done) if done else (float("-inf"), self.runs % MAX_SLOTS)
        bar.free_from, ends[bar.slot] = end, None

    def settle(self, bar: Bar) -> None:
        """The bar has ended: give its slot back, and take the first one free over its
        whole span (its own is, so it can only move up)."""
        ends = self.slot_ends
        if bar.slot >= len(ends) or ends[bar.slot] is not None:
            return  # its slot was taken over (past MAX_SLOTS): stay
        ends[bar.slot] = bar.free_from
        assert bar.end is not None
        for i, end in enumerate(ends):
            if end is not None and end <= bar.start:
                bar.slot, ends[i] = i, max(end, bar.end)
                return


def lane_key(host: str, pid: int | None, executor: str = "") -> str:
    """A worker's lane: host:pid, or what is known of it."""
    if pid is not None:
        return f"{host or '?'}:{pid}"
    return host or executor or "?"


class Timeline:
    def __init__(self, *, bars_per_lane: int = 100, diff_bars: int = 1000) -> None:
        self.bars_per_lane = bars_per_lane
        self.diff_bars = diff_bars
        self.lanes: dict[str, Lane] = {}
        self._apps: dict[int, str] = {}
        self._open: dict[int, Bar] = {}  # task id -> its running bar
        self._wall: dict[int, tuple[int, float]] = {}  # task id -> (try, seconds it ran)
        self._dirty: dict[str, Bar] = {}  # bar key -> bar, to send
        self._sent: set[str] = set()  # kept bars the page has
        self._gone: list[str] = []  # sent bars dropped since the last diff
        self._handlers: dict[type[ev.Event], Callable[[Any], None]] = {
            ev.TaskCreated: self._created, ev.TaskStateChanged: self._state_changed,
            ev.TaskFailed: self._failed, ev.TaskResources: self._resources,
        }

    # ------------------------------------------------------------ folding events
    def apply(self, events: Iterable[ev.Event]) -> None:
        handlers = self._handlers
        for e in events:
            handler = handlers.get(type(e))
            if handler is not None:
                handler(e)

    def _created(self, e: ev.TaskCreated) -> None:
        self._apps[e.task_id] = e.app_name

    def _state_changed(self, e: ev.TaskStateChanged) -> None:
        st = e.state
        if st is TaskState.RUNNING:
            self.start(e.task_id, e.try_number, e.time, host=e.host, pid=e.pid,
                       block=e.block_id)
        elif st is not TaskState.JOINING:
            end = _ENDS.get(st)
            if end is not None:
                self.end(e.task_id, e.try_number, e.time, end)

    def _failed(self, e: ev.TaskFailed) -> None:
        self.end(e.task_id, e.try_number, e.time, "failed")

    def _resources(self, e: ev.TaskResources) -> None:
        if e.task_id in self._open and e.wall_time > 0:
            self._wall[e.task_id] = (e.try_number, e.wall_time)

    def start(self, task: int, try_number: int, time: float, *, host: str = "",
              pid: int | None = None, block: str | None = None, executor: str = "") -> None:
        """A try starts running (from an event, or from a task record when seeding)."""
        bar = self._open.get(task)
        if bar is not None:
            if bar.try_number == try_number:
                return  # the same start, told twice (seed, then the event)
            self.end(task, bar.try_number, time, "failed")
        key = lane_key(host, pid, executor)
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane(key, host, pid, block, order=len(self.lanes))
        bkey = f"{task}.{try_number}"
        bar = Bar(bkey, task, try_number, self._apps.get(task, "?"), key, 0, time)
        lane.take_slot(bar)
        lane.bars[bkey] = bar
        lane.runs += 1
        self._open[task] = bar
        self._dirty[bkey] = bar
        if len(lane.bars) > self.bars_per_lane:
            self._drop_oldest(lane)

    def end(self, task: int, try_number: int, time: float, state: str) -> None:
        bar = self._open.get(task)
        if bar is None or bar.try_number != try_number:
            return
        del self._open[task]
        bar.end, bar.state = max(time, bar.start), state
        wall = self._wall.pop(task, None)
        if wall is not None and wall[0] == try_number:
            bar.start = max(bar.start, bar.end - wall[1])
        lane = self.lanes[bar.lane]
        lane.settle(bar)
        if bar.key in lane.bars:
            self._dirty[bar.key] = bar

    def _drop_oldest(self, lane: Lane) -> None:
        for key, bar in lane.bars.items():
            if bar.end is not None:
                del lane.bars[key]
                self._dirty.pop(key, None)
                if key in self._sent:
                    self._sent.discard(key)
                    self._gone.append(key)
                return

    def seed(self, records: Iterable[Any]) -> None:
        """Bars for the tries of tasks made before the view subscribed (`dfk.tasks`)."""
        for r in sorted(records, key=lambda r: r.id):
            self._apps[r.id] = r.app_name
            for t in getattr(r, "tries", ()):
                if t.started is None:
                    continue
                self.start(r.id, t.number, t.started, host=t.host, pid=t.pid,
                           block=t.block_id, executor=t.executor)
                if t.ended is not None:
                    self.end(r.id, t.number, t.ended, _outcome(t.outcome))

    # ------------------------------------------------------------ sync
    @property
    def dirty(self) -> bool:
        return bool(self._dirty or self._gone)

    def diff(self, now: float) -> dict[str, Any]:
        """What changed since the last diff: at most `diff_bars` bars (`more` says whether
        some wait for the next one), the lanes they are in (a lane changes only when one
        of its bars does), the kept bars dropped."""
        keys = list(itertools.islice(self._dirty, self.diff_bars))
        bars = [self._dirty.pop(k) for k in keys]
        self._sent.update(keys)
        lanes = {b.lane for b in bars}
        out = {"now": now, "bars": [b.to_json() for b in bars],
               "lanes": [self.lanes[k].to_json() for k in sorted(lanes)],
               "gone": self._gone, "more": bool(self._dirty),
               "bars_per_lane": self.bars_per_lane}
        self._gone = []
        return out

    def snapshot(self, now: float) -> dict[str, Any]:
        """The whole timeline (it replaces what the page had); later diffs apply on top
        (other pages still wait for them, so nothing is marked sent but the bars)."""
        bars = [b for lane in self.lanes.values() for b in lane.bars.values()]
        self._sent.update(b.key for b in bars)
        return {"now": now, "bars": [b.to_json() for b in bars],
                "lanes": [lane.to_json() for lane in self.lanes.values()],
                "bars_per_lane": self.bars_per_lane, "reset": True}


def _outcome(outcome: str) -> str:
    """A task record's try outcome (a final state's value) in the view's state names."""
    try:
        return _ENDS.get(TaskState(outcome), "done")
    except ValueError:
        return "failed" if outcome else "done"
