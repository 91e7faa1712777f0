"""The event stream between the engine and everything that watches it.

    DataFlowKernel ──records (inline)──> EventBus.log ──cursor──> thread ──> callback
    executors ───────publish(event)─────┘           └──cursor──> thread ──> callback

Events are frozen dataclasses. Publishers only append to one log, whatever the number of
subscribers: `publish` an Event, or `emit` its class and fields (built when a subscriber
reads it: see Batch); the kernel writes emit()'s record inline on its hot path. So the
engine never waits for a subscriber: each subscriber reads the log from its own cursor on
its own delivery thread, gets events in the order they were appended (a task's events
always in order), in batches when it falls behind, and a subscriber that raises is logged
and keeps receiving. What every subscriber has read is cut off the log. The widget, the
run record, the headless summary and the tests all read this one stream.
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

    The kernel logs its own events as records (the class, the number of fields, the
    fields: values the garbage collector does not track), and each is built into its
    Event here, when the subscriber reads it. An Event object that waited in the log
    instead would be counted by the collector when made and uncounted when freed, in
    bulk, on this thread, after a collection had already reset the count: logged events
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

    def items(self) -> list[Any]:
        """The log's items as they are (Event objects and records): what a subscriber
        that hands the batch to another process pickles; Batch(items) there reads them."""
        return self._items if self._built is None else list(self._built)

    def take(self) -> list[Any]:
        """items(), handed over: the batch keeps nothing of them (see Subscription._deliver)."""
        items = self.items()
        self._items, self._built = [], None
        return items

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
    """The events of a run of log items: Event objects as they are, records built."""
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
    """One subscriber: where it has read the bus's log up to, and its delivery thread."""

    def __init__(self, bus: EventBus, callback: Callback, name: str, delay: float,
                 settled: Callable[[float | None], bool] | None = None) -> None:
        self.bus = bus
        self.delay = delay
        self.callback = callback
        self.settled = settled
        self.name = name
        self.cursor = bus._first()  # the log's index (counted from its start) to read from
        self.stop = 1 << 62  # ... and to read up to: set by close()
        self._flushes: list[tuple[int, threading.Event]] = []  # (log index, set when read)
        self.wakeup = threading.Event()
        # True while the thread waits for a publisher; read by EventBus.wake.
        self.asleep = False
        self.closed = False
        self.errors = 0
        self.thread = threading.Thread(target=self._run, name=f"livedag-events-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        bus, wakeup = self.bus, self.wakeup
        while True:
            if not self._behind():
                # Asleep first, then one more look: a publisher that appended before the
                # flags were up is seen here; one after them sees the flags and wakes us.
                wakeup.clear()
                self.asleep = True
                bus.asleep = True
                if self._behind() or self.closed or self._flushes:
                    self.asleep = False
                else:
                    wakeup.wait()
            # Let a burst gather first: while this thread sleeps here, publishers only
            # append, so a busy engine pays one wake-up per batch instead of one per event.
            time.sleep(self.delay)
            self._deliver(bus._read(self))
            if self._flushes:
                done = [f for f in self._flushes if f[0] <= self.cursor or self.cursor >= self.stop]
                for f in done:
                    self._flushes.remove(f)
                    f[1].set()
            if self.closed and not self._behind():
                self.bus._gone(self)
                return

    def _behind(self) -> bool:
        return self.cursor < min(self.bus._end(), self.stop)

    def _deliver(self, items: list[Any]) -> None:
        if not items:
            return
        batch = Batch(items)
        del items  # the batch holds them: a callback that take()s them frees them
        try:
            self.callback(batch)
        except Exception:
            self.errors += 1
            # Log the first failures in full, then one line per hundred.
            if self.errors <= 3 or self.errors % 100 == 0:
                logger.exception("event subscriber %r failed (%d times)", self.name, self.errors)

    def close(self) -> None:
        """Stop delivering; events already published are still delivered first."""
        self.bus._remove(self)
        self.closed = True
        self.asleep = False
        self.wakeup.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event published before this call has been delivered (and,
        for a subscriber that passed `settled`, until it says it is done with them)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.thread.is_alive():
            delivered = not self._behind()
        else:
            done = threading.Event()
            self._flushes.append((self.bus._end(), done))
            self.asleep = False
            self.wakeup.set()
            delivered = done.wait(timeout)
        if not delivered or self.settled is None:
            return delivered
        return self.settled(None if deadline is None else max(0.0, deadline - time.monotonic()))


class EventBus:
    """Fan-out of events to subscribers, never blocking the publisher.

    One log for every subscriber: publishers append to `log` (one C call per event, made
    once however many subscribers there are), each subscriber's thread reads from its own
    cursor, and what every subscriber has read is cut off the front. The kernel appends
    its records inline on its hot path:

        if bus.active:
            bus.log += (Kind, number of fields, *fields)   # see emit()
            if bus.asleep:
                bus.wake()
    """

    def __init__(self) -> None:
        self._subs: tuple[Subscription, ...] = ()  # those that get new events
        self._readers: tuple[Subscription, ...] = ()  # and those still reading (closing)
        self._lock = threading.Lock()  # readers (cursors, trimming), not publishers
        self.log: list[Any] = []
        self._base = 0  # the log index of log[0]: what every subscriber has read is gone
        # True when someone listens: the kernel builds no events otherwise. Attributes,
        # not properties: the kernel reads them a few times per task.
        self.active = False
        self.asleep = False  # some subscriber waits for a publisher to wake it

    def subscribe(
        self, callback: Callback, *, name: str = "", delay: float = BATCH_DELAY,
        settled: Callable[[float | None], bool] | None = None,
    ) -> Subscription:
        """Deliver every later event to `callback(batch)` on a thread of its own.

        `delay`: seconds to let events gather after a wake-up; a subscriber that is not
        in a hurry (a store on disk) passes more, and costs the engine less. `settled`:
        for a subscriber whose callback hands events on (to another process), called by
        flush() after delivery with the time left: True once what was handed on is done.
        """
        label = name or getattr(callback, "__qualname__", "subscriber")
        with self._lock:
            sub = Subscription(self, callback, label, delay, settled)
            self._subs = (*self._subs, sub)
            self._readers = (*self._readers, sub)
            self.active = True
        return sub

    def _end(self) -> int:
        return self._base + len(self.log)

    def _first(self) -> int:
        """Where a new subscriber starts reading: at what is published from now on."""
        return self._end()

    def _read(self, sub: Subscription) -> list[Any]:
        """What `sub` has not read yet; the front every subscriber has read is dropped."""
        log = self.log
        with self._lock:
            # Each slice is one C call under the GIL, and publishers only append whole
            # records at the end: nothing is split or lost.
            end = min(len(log), sub.stop - self._base)
            items = log[sub.cursor - self._base:end]
            sub.cursor = self._base + end
            self._trim()
        return items

    def _trim(self) -> None:
        """Drop what every subscriber has read (with the lock held)."""
        low = min((s.cursor for s in self._readers), default=self._end()) - self._base
        if low > 0:
            del self.log[:low]
            self._base += low

    def _remove(self, sub: Subscription) -> None:
        """`sub` closes: it gets no more events, and reads up to here before it stops."""
        with self._lock:
            sub.stop = self._end()
            self._subs = tuple(s for s in self._subs if s is not sub)
            self.active = bool(self._subs)

    def _gone(self, sub: Subscription) -> None:
        """`sub`'s thread has read up to its stop: its cursor no longer holds the log."""
        with self._lock:
            self._readers = tuple(s for s in self._readers if s is not sub)
            self._trim()

    def wake(self) -> None:
        """Wake the subscribers that wait for events (a publisher saw `asleep`)."""
        self.asleep = False
        for sub in self._subs:
            if sub.asleep:
                sub.asleep = False
                sub.wakeup.set()

    def publish(self, event: Event) -> None:
        if self.active:  # with nobody to read it, the log would only grow
            self.log.append(event)
            if self.asleep:
                self.wake()

    def emit(self, kind: type[Event], *fields: Any) -> None:
        """Publish `kind(*fields)`; subscribers build it when they read it (see Batch).

        The fields wait in the log until delivered, so they should be values not made
        for this event alone, or ones the garbage collector does not track: numbers,
        strings, None, enum members, tuples of numbers.
        """
        if self.active:
            self.log += (kind, len(fields), *fields)  # one C call: no half record is read
            if self.asleep:
                self.wake()

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
