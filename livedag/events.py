"""The event stream between the engine and everything that watches it.

    DataFlowKernel ──emit(kind, fields)──> EventBus ──> [subscriber queue] ──thread──> callback
    executors ───────publish(event)──────┘        └──> [subscriber queue] ──thread──> callback

Events are frozen dataclasses. `publish` (an Event) and `emit` (its class and fields, built
when a subscriber reads it: see Batch) only append to each subscriber's queue, so the
engine never waits for a subscriber: each subscriber has its own delivery thread, gets
events in the order each publisher made them (a task's events always in order; events
of two threads publishing at once may interleave differently for two subscribers), in
batches when it falls behind, and a subscriber that raises is logged
and keeps receiving. The widget, the run record, the headless summary and the tests all
read this one stream.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, dataclass_transform, overload

from livedag.task import TaskState

logger = logging.getLogger(__name__)
_E = TypeVar("_E")

BATCH_DELAY = 0.002  # seconds a subscriber waits after a wake-up before it drains


@dataclass_transform(frozen_default=True)
def _event(cls: type[_E]) -> type[_E]:
    """A frozen, slotted dataclass whose constructor is cheap.

    A frozen dataclass's generated __init__ sets each field through object.__setattr__,
    about 0.3 µs a field: with four events per task that was a fifth of the engine's no-op
    throughput as soon as anyone listened. This __init__ writes the slots through their
    descriptors instead (measured 2.2 -> 0.9 µs for an 8-field event); the instance stays
    frozen, since only __setattr__ is refused.
    """
    cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    params, body, env = [], [], {}
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: events take plain defaults only")
        default = f.default
        if default is dataclasses.MISSING:
            params.append(f.name)
        else:
            env[f"_d_{f.name}"] = default
            params.append(f"{f.name}=_d_{f.name}")
        env[f"_s_{f.name}"] = getattr(cls, f.name).__set__
        body.append(f"    _s_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(source, env)  # the code is built from this module's own field names only
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@_event
class Event:
    time: float


@_event
class TaskCreated(Event):
    task_id: int
    app_name: str
    kind: str  # python | bash | join | internal
    executor: str
    depends_on: tuple[int, ...]
    origin: str | None
    args_summary: str = ""


@_event
class TaskStateChanged(Event):
    task_id: int
    state: TaskState
    try_number: int
    host: str = ""
    pid: int | None = None
    block_id: str | None = None
    job_id: str | None = None


@_event
class TaskOutput(Event):
    task_id: int
    try_number: int
    stream: str  # "stdout" | "stderr"
    text: str


@_event
class TaskFailed(Event):
    task_id: int
    try_number: int
    state: TaskState  # FAILED or DEP_FAIL
    exc_type: str
    message: str
    traceback: str
    root_cause_ids: tuple[int, ...] = ()
    will_retry: bool = False


@_event
class TaskResources(Event):
    """What one try of a task used, measured where it ran (published before its end).

    cpu_time: seconds of user + system CPU of the task's process and the children it
    waited for; peak_rss: the largest resident set seen while it ran, in bytes (0 when
    unknown); wall_time: seconds from the worker starting the call to its end.
    """

    task_id: int
    try_number: int
    cpu_time: float
    peak_rss: int
    wall_time: float


@_event
class TaskCancelled(Event):
    task_id: int
    reason: str


@_event
class TaskResubmitted(Event):
    task_id: int
    try_number: int
    rearmed: tuple[int, ...]  # dependency-failed descendants sent back to pending
    redefined: bool = False  # the newest definition of the app is used


@_event
class BlockChanged(Event):
    executor: str
    block_id: str
    state: str  # pending | running | completed | failed | cancelled | timeout | ...
    job_id: str | None = None
    reason: str = ""


@_event
class KernelChanged(Event):
    state: str  # loaded | cleanup
    run_dir: str


Callback = Callable[[Sequence[Event]], None]


class Batch(Sequence[Event]):
    """The events one delivery hands a subscriber, in the order they were published.

    The kernel queues its own events as records (the class, the number of fields, the
    fields: values the garbage collector does not track), and each is built into its
    Event here, when the subscriber reads it. An Event object that waited in the queue
    instead would be counted by the collector when made and uncounted when freed, in
    bulk, on this thread, after a collection had already reset the count: queued events
    made the engine's collections come more often, the full ones too (bench/monitoring.py:
    more than half the price of a null subscriber). Read it once with `for`; indexing or
    len() builds and keeps the whole list.
    """

    __slots__ = ("_built", "_items")

    def __init__(self, items: list[Any]) -> None:
        self._items = items
        self._built: list[Event] | None = None

    def __iter__(self) -> Iterator[Event]:
        if self._built is not None:
            return iter(self._built)
        return _build(self._items)

    def _all(self) -> list[Event]:
        if self._built is None:
            self._built = list(_build(self._items))
            self._items = []
        return self._built

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return self._all()[index]

    def __repr__(self) -> str:
        return f"<events.Batch of {len(self._all())} events>"


def _build(items: list[Any]) -> Iterator[Event]:
    """The events of a queue's items: Event objects as they are, records built."""
    i, n = 0, len(items)
    while i < n:
        item = items[i]
        if type(item) is type:  # a record: the class, its number of fields, the fields
            k = items[i + 1]
            yield item(*items[i + 2:i + 2 + k])
            i += 2 + k
        else:
            yield item
            i += 1


class Subscription:
    """One subscriber: its queue and its delivery thread."""

    def __init__(self, bus: EventBus, callback: Callback, name: str, delay: float) -> None:
        self.bus = bus
        self.delay = delay
        self.callback = callback
        self.name = name
        # A list, not a deque: publishers append at the end, the delivery thread takes a
        # whole batch with two C-level slice operations instead of a pop per event.
        # Items are Event objects, flush markers, and records laid end to end (emit()).
        self.queue: list[Any] = []
        self._flushes: list[threading.Event] = []  # markers of flush() calls under way
        self.wakeup = threading.Event()
        # Set with `wakeup` by the first publisher after a drain, cleared by the delivery
        # thread after it clears `wakeup`: publishers read this plain attribute instead of
        # calling wakeup.is_set() (per event, on the engine's hot path).
        self.woken = False
        self.closed = False
        self.errors = 0
        self.thread = threading.Thread(target=self._run, name=f"livedag-events-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        queue, wakeup, flushes = self.queue, self.wakeup, self._flushes
        while True:
            wakeup.wait()
            # Let a burst gather first: while the flag stays set, publishers skip set(),
            # so a busy engine pays one wake-up per batch instead of one per event.
            time.sleep(self.delay)
            # Clear before draining: an event appended after these lines sets it again.
            wakeup.clear()
            self.woken = False
            # Take what is there in one go. Each of these two lines is one C call under
            # the GIL, and publishers only append at the end, so nothing is lost or split.
            n = len(queue)
            batch = queue[:n]
            del queue[:n]
            if flushes:  # someone waits in flush(): deliver up to each marker, then set it
                self._deliver_marked(batch)
            else:
                self._deliver(batch)
            if self.closed and not queue:
                return

    def _deliver_marked(self, batch: list[Any]) -> None:
        start = 0
        for i, item in enumerate(batch):
            if type(item) is threading.Event:
                self._deliver(batch[start:i])
                item.set()
                self._flushes.remove(item)
                start = i + 1
        self._deliver(batch[start:] if start else batch)

    def _deliver(self, batch: list[Any]) -> None:
        if not batch:
            return
        try:
            self.callback(Batch(batch))
        except Exception:
            self.errors += 1
            # Log the first failures in full, then one line per hundred.
            if self.errors <= 3 or self.errors % 100 == 0:
                logger.exception("event subscriber %r failed (%d times)", self.name, self.errors)

    def close(self) -> None:
        """Stop delivering; events already queued are still delivered first."""
        self.bus._remove(self)
        self.closed = True
        self.woken = True
        self.wakeup.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event published before this call has been delivered."""
        if not self.thread.is_alive():
            return not self.queue
        marker = threading.Event()
        # Known as a flush before it is queued: a batch taken without seeing it in
        # _flushes holds no marker.
        self._flushes.append(marker)
        self.queue.append(marker)
        self.woken = True
        self.wakeup.set()
        return marker.wait(timeout)


class EventBus:
    """Fan-out of events to subscribers, never blocking the publisher."""

    def __init__(self) -> None:
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        # True when someone listens: the kernel builds no events otherwise. An attribute,
        # not a property: the kernel reads it a few times per task.
        self.active = False

    def subscribe(
        self, callback: Callback, *, name: str = "", delay: float = BATCH_DELAY
    ) -> Subscription:
        """Deliver every later event to `callback(batch)` on a thread of its own.

        `delay`: seconds to let events gather after a wake-up; a subscriber that is not
        in a hurry (a store on disk) passes more, and costs the engine less.
        """
        label = name or getattr(callback, "__qualname__", "subscriber")
        sub = Subscription(self, callback, label, delay)
        with self._lock:
            self._subs = (*self._subs, sub)
            self.active = True
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)
            self.active = bool(self._subs)

    def publish(self, event: Event) -> None:
        for sub in self._subs:
            sub.queue.append(event)
            if not sub.woken:
                sub.woken = True
                sub.wakeup.set()

    def emit(self, kind: type[Event], *fields: Any) -> None:
        """Publish `kind(*fields)`; subscribers build it when they read it (see Batch).

        For the kernel's own events, on its hot path. The fields wait in the queues until
        delivered, so they should be values not made for this event alone, or ones the
        garbage collector does not track: numbers, strings, None, enum members, tuples
        of numbers.
        """
        record = (kind, len(fields), *fields)
        for sub in self._subs:
            sub.queue.extend(record)  # one C call: a batch never takes half a record
            if not sub.woken:
                sub.woken = True
                sub.wakeup.set()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every subscriber has handled every event published so far."""
        return all(sub.flush(timeout) for sub in self._subs)

    def close(self) -> None:
        for sub in self._subs:
            sub.close()


def summarize_args(args: tuple[Any, ...], kwargs: dict[str, Any], limit: int = 120) -> str:
    """A short, safe text for the arguments of a call (for the widget and the run record)."""
    if not args and not kwargs:
        return ""
    parts = [_short(a) for a in args]
    parts += [f"{k}={_short(v)}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: Any) -> str:
    from concurrent.futures import Future

    if isinstance(value, Future):
        tid = getattr(value, "tid", None)
        return f"<task {tid}>" if tid is not None else "<future>"
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return f"<{type(value).__name__} of {len(value)}>"
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."
