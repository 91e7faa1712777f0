"""livedag.events: the bus delivers in order, on its own threads; a subscriber that raises
or blocks never blocks the publisher or the other subscribers."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from livedag import events as ev
from livedag.task import TaskState


def _created(i: int) -> ev.TaskCreated:
    return ev.TaskCreated(float(i), i, "f", "python", "threads", (), None)


def test_events_are_frozen() -> None:
    e = _created(1)
    with pytest.raises(AttributeError):
        e.task_id = 2  # type: ignore[misc]


def test_bus_is_inactive_without_subscribers() -> None:
    bus = ev.EventBus()
    assert not bus.active
    bus.publish(_created(0))  # goes nowhere, raises nothing
    bus.emit(ev.TaskStateChanged, 0.0, 0, TaskState.RUNNING, 1)
    assert bus.log == []  # nothing kept for nobody
    sub = bus.subscribe(lambda batch: None)
    assert bus.active
    sub.close()
    assert not bus.active


def test_subscriber_gets_every_event_in_order(recorder: Any) -> None:
    bus = ev.EventBus()
    sub = bus.subscribe(recorder)
    for i in range(500):
        bus.publish(_created(i))
    assert bus.flush(10)
    assert [e.task_id for e in recorder.events] == list(range(500))
    sub.close()


def test_a_raising_subscriber_keeps_receiving_and_does_not_disturb_others(
    recorder: Any,
) -> None:
    bus = ev.EventBus()
    seen: list[int] = []

    def broken(batch: Sequence[ev.Event]) -> None:
        seen.extend(e.task_id for e in batch)  # type: ignore[attr-defined]
        raise RuntimeError("subscriber bug")

    bad = bus.subscribe(broken, name="broken")
    bus.subscribe(recorder)
    for i in range(3):
        bus.publish(_created(i))
        assert bad.flush(10)  # one batch per event: it raises three times
    assert bus.flush(10)
    assert seen == [0, 1, 2]
    assert bad.errors == 3
    assert [e.task_id for e in recorder.events] == [0, 1, 2]
    bus.close()


def test_a_blocked_subscriber_never_blocks_the_publisher(recorder: Any) -> None:
    bus = ev.EventBus()
    release = threading.Event()
    entered = threading.Event()
    blocked_got: list[int] = []

    def blocked(batch: Sequence[ev.Event]) -> None:
        entered.set()
        assert release.wait(60)
        blocked_got.extend(e.task_id for e in batch)  # type: ignore[attr-defined]

    slow = bus.subscribe(blocked, name="blocked")
    good = bus.subscribe(recorder)
    bus.publish(_created(0))
    assert entered.wait(10)
    # The blocked subscriber is stuck in its callback; publishing still completes, and
    # the other subscriber still gets everything.
    for i in range(1, 10_001):
        bus.publish(_created(i))
    assert good.flush(30)
    assert len(recorder.events) == 10_001
    release.set()
    assert slow.flush(30)
    assert blocked_got == list(range(10_001))
    bus.close()


def test_a_late_subscriber_catches_up_in_batches() -> None:
    bus = ev.EventBus()
    release = threading.Event()
    batches: list[int] = []

    def cb(batch: Sequence[ev.Event]) -> None:
        release.wait(60)
        batches.append(len(batch))

    sub = bus.subscribe(cb)
    for i in range(1000):
        bus.publish(_created(i))
    release.set()
    assert sub.flush(30)
    assert sum(batches) == 1000
    assert len(batches) < 1000  # coalesced while the subscriber was busy
    sub.close()


def test_closed_subscription_gets_nothing_more(recorder: Any) -> None:
    bus = ev.EventBus()
    sub = bus.subscribe(recorder)
    bus.publish(_created(0))
    sub.close()
    bus.publish(_created(1))
    sub.thread.join(10)
    assert not sub.thread.is_alive()
    assert [e.task_id for e in recorder.events] == [0]


def test_one_log_for_all_subscribers_read_in_order_and_then_dropped() -> None:
    bus = ev.EventBus()
    got: dict[str, list[tuple[str, int]]] = {"fast": [], "slow": []}

    def reader(name: str) -> Any:
        def cb(batch: Sequence[ev.Event]) -> None:
            got[name].extend((type(e).__name__, e.task_id) for e in batch)  # type: ignore[attr-defined]
        return cb

    early = bus.subscribe(reader("fast"), name="fast", delay=0.001)
    bus.emit(ev.TaskStateChanged, 0.0, -1, TaskState.RUNNING, 1)  # before "slow" came
    bus.subscribe(reader("slow"), name="slow", delay=0.05)
    expected = []
    for i in range(300):
        if i % 3:
            bus.publish(_created(i))
            expected.append(("TaskCreated", i))
        else:
            bus.emit(ev.TaskStateChanged, float(i), i, TaskState.RUNNING, 1)
            expected.append(("TaskStateChanged", i))
    assert bus.flush(10)
    assert got["slow"] == expected  # from its subscription on, in the published order
    assert got["fast"] == [("TaskStateChanged", -1), *expected]
    assert bus.log == []  # what every subscriber has read is not kept
    early.close()
    bus.close()


def test_a_subscriber_that_takes_its_batch_leaves_the_others_theirs() -> None:
    """take() hands a batch's items over (the run record pickles them and drops them);
    Batch(items) builds the same events again, and another subscriber is not touched."""
    bus = ev.EventBus()
    taken: list[Any] = []
    seen: list[ev.Event] = []
    left: list[int] = []

    def take(batch: ev.Batch) -> None:
        taken.extend(batch.take())
        left.append(len(batch))

    bus.subscribe(take, name="taker")
    bus.subscribe(seen.extend, name="reader")
    bus.emit(ev.TaskStateChanged, 1.0, 7, TaskState.RUNNING, 1, "host", 42)
    bus.publish(_created(8))
    assert bus.flush(10)
    assert any(item is ev.TaskStateChanged for item in taken)  # a record, as it was logged
    assert list(ev.Batch(taken)) == seen == [
        ev.TaskStateChanged(1.0, 7, TaskState.RUNNING, 1, "host", 42), _created(8)]
    assert set(left) == {0}
    bus.close()


def test_a_closing_subscriber_still_gets_what_came_before_while_another_is_stuck() -> None:
    bus = ev.EventBus()
    release = threading.Event()
    stuck_got: list[int] = []
    closing_got: list[int] = []

    def stuck(batch: Sequence[ev.Event]) -> None:
        release.wait(60)
        stuck_got.extend(e.task_id for e in batch)  # type: ignore[attr-defined]

    def slow(batch: Sequence[ev.Event]) -> None:
        closing_got.extend(e.task_id for e in batch)  # type: ignore[attr-defined]

    bus.subscribe(stuck, name="stuck")
    closing = bus.subscribe(slow, name="closing", delay=0.2)
    for i in range(100):
        bus.publish(_created(i))
    closing.close()  # before its thread woke up to read them
    bus.publish(_created(100))
    closing.thread.join(10)
    assert closing_got == list(range(100))
    release.set()
    assert bus.flush(10)
    assert stuck_got == list(range(101))
    assert bus.log == []
    bus.close()


def test_concurrent_publishers_and_flushes_lose_nothing_and_keep_each_publishers_order(
) -> None:
    bus = ev.EventBus()
    got: dict[str, list[tuple[int, int]]] = {}

    def reader(name: str) -> Any:
        got[name] = []

        def cb(batch: Sequence[ev.Event]) -> None:
            got[name].extend((e.task_id, int(e.time)) for e in batch)  # type: ignore[attr-defined]
        return cb

    subs = [bus.subscribe(reader(f"s{i}"), name=f"s{i}", delay=d)
            for i, d in enumerate((0.0005, 0.002, 0.02))]
    publishers, n = 3, 5000

    def publish(p: int) -> None:  # records and Event objects, interleaved
        for i in range(n):
            if i % 2:
                bus.emit(ev.TaskStateChanged, float(i), p, TaskState.RUNNING, 1)
            else:
                bus.publish(ev.TaskStateChanged(float(i), p, TaskState.RUNNING, 1))

    stop = threading.Event()
    flushed: list[bool] = []

    def flush_now_and_then() -> None:
        while not stop.is_set():
            flushed.append(subs[len(flushed) % 3].flush(10))

    flusher = threading.Thread(target=flush_now_and_then)
    flusher.start()
    threads = [threading.Thread(target=publish, args=(p,)) for p in range(publishers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    flusher.join()
    assert bus.flush(30) and flushed and all(flushed)
    for events in got.values():
        assert len(events) == publishers * n
        for p in range(publishers):
            assert [i for tid, i in events if tid == p] == list(range(n))
    assert bus.log == []
    bus.close()


def test_state_changed_carries_the_enum() -> None:
    e = ev.TaskStateChanged(0.0, 1, TaskState.RUNNING, 1, "host", 42)
    assert e.state is TaskState.RUNNING and e.pid == 42


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((1, "a"), {"k": 2.5}, "1, 'a', k=2.5"),
        ((list(range(10)),), {}, "<list of 10>"),
        (("x" * 100,), {}, "'" + "x" * 36 + "..."),
    ],
)
def test_summarize_args(args: tuple[Any, ...], kwargs: dict[str, Any], expected: str) -> None:
    assert ev.summarize_args(args, kwargs) == expected


def test_summarize_args_never_raises_and_is_bounded() -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert ev.summarize_args((BadRepr(),), {}) == "<BadRepr>"
    assert len(ev.summarize_args(tuple(range(200)), {})) == 120
