"""Forwarded results, the pure parts: parking a task on its inputs, the payload the worker
gets, the messages, and a call packed with inputs still to come."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from livedag import serialize
from livedag.executors.htex.parking import Parking, Recent
from livedag.executors.htex.protocol import (
    Forward,
    ProtocolError,
    Report,
    Unforwarded,
    decode,
    forwarded_payload,
    original_payload,
    split_forwarded,
)
from livedag.executors.htex.worker import run_call


def test_a_parked_task_is_ready_once_every_input_succeeded_with_their_results() -> None:
    parking = Parking()
    parking.park((3, 1), [(1, 1), (2, 1)], b"call")
    assert parking.succeeded((1, 1), b"r1") == []  # still waits for task 2
    ((key, payload),) = parking.succeeded((2, 1), b"r2")
    assert key == (3, 1)
    assert split_forwarded(payload) == (b"call", {1: b"r1", 2: b"r2"})
    assert len(parking) == 0 and not parking.waiters


def test_a_failed_input_gives_back_its_waiters_and_theirs() -> None:
    parking = Parking()
    parking.park((2, 1), [(1, 1)], b"two")
    parking.park((3, 1), [(2, 1)], b"three")
    parking.park((9, 1), [(8, 1)], b"other")
    assert parking.failed((1, 1)) == [((2, 1), b"two"), ((3, 1), b"three")]
    assert list(parking.parked) == [(9, 1)]
    assert parking.succeeded((1, 1), b"late") == []


def test_withdrawing_a_parked_task_takes_its_waiters_along_and_unlinks_it() -> None:
    parking = Parking()
    parking.park((2, 1), [(1, 1)], b"two")
    parking.park((3, 1), [(2, 1)], b"three")
    assert parking.withdraw((2, 1)) == [((2, 1), b"two"), ((3, 1), b"three")]
    assert parking.withdraw((2, 1)) == []
    assert not parking.waiters  # task 1 has nobody waiting any more


def test_without_inputs_kept_a_ready_task_keeps_its_own_payload() -> None:
    parking = Parking(keep_inputs=False)
    parking.park((2, 1), [(1, 1)], b"two")
    assert parking.succeeded((1, 1), b"ignored") == [((2, 1), b"two")]


def test_recent_results_are_bounded_in_count_and_size() -> None:
    recent = Recent()
    recent.add((0, 1), b"x" * (Recent.MAX_RESULT + 1))
    assert (0, 1) not in recent  # too big to keep
    for i in range(1, Recent.COUNT + 2):
        recent.add((i, 1), b"r")
    assert (1, 1) not in recent and recent.get((Recent.COUNT + 1, 1)) == b"r"


def test_forward_and_unforwarded_round_trip() -> None:
    msg = decode(Forward((5, 2), [(3, 1), (4, 1)], b"payload").encode())
    assert msg == Forward((5, 2), [(3, 1), (4, 1)], b"payload")
    assert decode(Unforwarded([(5, 2)]).encode()) == Unforwarded([(5, 2)])
    with pytest.raises(ProtocolError):
        decode([b"forward", Forward((5, 2), [(3, 1)], b"").encode()[1][:16], b""])
    report = Report(results=[(1, 1)], result_data=[b"r"], usage=[(0, 0, 0)],
                    unforwarded=[(2, 1)], manager="m")
    assert Report.from_frames(report.encode()).unforwarded == [(2, 1)]


def test_a_plain_payload_is_not_taken_for_a_forwarded_one() -> None:
    packed = serialize.pack_call(len, ("abc",), {})
    assert split_forwarded(packed) is None
    assert original_payload(packed) is packed
    assert original_payload(forwarded_payload(packed, [(1, b"r")])) == packed


def test_a_call_packed_with_inputs_to_come_runs_with_their_results() -> None:
    a, b = Future(), Future()
    packed = serialize.pack_call(
        _add, (a, 10), {"inputs": [b, 1]}, inputs={id(a): 7, id(b): 8})
    # The kernel taking its arguments back gets its futures again ...
    args, kwargs = serialize.unpack_arguments(packed, {7: a, 8: b})
    assert args[0] is a and kwargs["inputs"][0] is b
    # ... and a worker gets the results the pool put with the call.
    payload = forwarded_payload(packed, [(7, serialize.pack_result(5)),
                                         (8, serialize.pack_result(100))])
    ok, outcome = run_call(payload, task_id=9)
    assert ok and serialize.unpack_outcome(outcome) == (True, 5 + 10 + 100 + 1)


def test_an_input_result_the_worker_cannot_unpickle_names_both_tasks() -> None:
    a = Future()
    packed = serialize.pack_call(_add, (a, 1), {}, inputs={id(a): 4})
    ok, outcome = run_call(forwarded_payload(packed, [(4, b"not a pickle")]), task_id=6)
    assert not ok
    _, exc = serialize.unpack_outcome(outcome)
    assert "task 6: the result of task 4, one of its inputs, could not be unpickled" in str(exc)


def _add(x: int, y: int, inputs: list[int] = ()) -> int:  # type: ignore[assignment]
    return x + y + sum(inputs)
