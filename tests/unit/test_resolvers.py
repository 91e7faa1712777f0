"""livedag.dependency_resolvers: SHALLOW sees top-level futures, DEEP walks containers."""

from __future__ import annotations

import collections
from concurrent.futures import Future
from typing import Any

from livedag.dependency_resolvers import DEEP_DEPENDENCY_RESOLVER, SHALLOW_DEPENDENCY_RESOLVER


def _done(value: Any) -> Future[Any]:
    f: Future[Any] = Future()
    f.set_result(value)
    return f


Point = collections.namedtuple("Point", "x y")


def test_shallow_sees_only_a_future_itself() -> None:
    f = _done(1)
    assert SHALLOW_DEPENDENCY_RESOLVER.traverse_to_gather(f) == [f]
    assert SHALLOW_DEPENDENCY_RESOLVER.traverse_to_gather([f]) == []
    assert SHALLOW_DEPENDENCY_RESOLVER.traverse_to_unwrap(f) == 1
    assert SHALLOW_DEPENDENCY_RESOLVER.traverse_to_unwrap([f]) == [f]


def test_deep_finds_futures_at_any_depth() -> None:
    futures = [_done(i) for i in range(6)]
    value = [futures[0], (futures[1], {futures[2]}), {"k": futures[3], futures[4]: [futures[5]]}]
    found = DEEP_DEPENDENCY_RESOLVER.traverse_to_gather(value)
    assert sorted(map(id, found)) == sorted(map(id, futures))


def test_deep_unwrap_keeps_container_types() -> None:
    f1, f2, f3 = _done(1), _done(2), _done("k")
    value = {
        "list": [f1, [f2]],
        "tuple": (f1, 3),
        "set": {f2, 5},
        "frozen": frozenset([f1]),
        "point": Point(f1, f2),
        f3: "key resolved",
    }
    assert DEEP_DEPENDENCY_RESOLVER.traverse_to_unwrap(value) == {
        "list": [1, [2]],
        "tuple": (1, 3),
        "set": {2, 5},
        "frozen": frozenset([1]),
        "point": Point(1, 2),
        "k": "key resolved",
    }
    assert type(DEEP_DEPENDENCY_RESOLVER.traverse_to_unwrap(Point(f1, 2))) is Point
