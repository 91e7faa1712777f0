"""Which arguments of an app call count as dependencies (Parsl's two resolvers).

SHALLOW (the default) looks at positional arguments, keyword values and the items of
`inputs=[...]`; DEEP also walks into lists, tuples, sets and dicts, at any depth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


@dataclasses.dataclass(frozen=True)
class DependencyResolver:
    traverse_to_gather: Callable[[Any], list[Future[Any]]]
    traverse_to_unwrap: Callable[[Any], Any]
    deep: bool = False


def _shallow_gather(value: Any) -> list[Future[Any]]:
    return [value] if isinstance(value, Future) else []


def _shallow_unwrap(value: Any) -> Any:
    return value.result() if isinstance(value, Future) else value


def _deep_gather(value: Any) -> list[Future[Any]]:
    found: list[Future[Any]] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Future):
            found.append(v)
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
    return found


def _deep_unwrap(value: Any) -> Any:
    if isinstance(value, Future):
        return value.result()
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_deep_unwrap(v) for v in value]
        if isinstance(value, list):
            return items
        if type(value) is tuple:
            return tuple(items)
        if hasattr(value, "_fields"):  # a namedtuple
            return type(value)(*items)
        return type(value)(items)
    if isinstance(value, dict):
        return type(value)({_deep_unwrap(k): _deep_unwrap(v) for k, v in value.items()})
    return value


SHALLOW_DEPENDENCY_RESOLVER = DependencyResolver(_shallow_gather, _shallow_unwrap)
DEEP_DEPENDENCY_RESOLVER = DependencyResolver(_deep_gather, _deep_unwrap, deep=True)
