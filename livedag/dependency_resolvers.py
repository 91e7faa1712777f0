"""The futures in an app call: which arguments count as dependencies, and their values.

    app(*args, **kwargs) ─> gather(): the futures the task waits for (its DAG edges)
    every input done     ─> unwrap(): the same call, each future replaced by its result
    the app's function   ─> without_future_defaults(): no future left in its defaults

By default (no resolver) a future counts as a positional argument, a keyword value or an
item of `inputs=[...]`. Parsl's two resolvers (Config.dependency_resolver): SHALLOW looks
at the same places, through the resolver's functions; DEEP also walks into lists, tuples,
sets and dicts, at any depth.
"""

from __future__ import annotations

import dataclasses
import types
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


def gather(
    args: tuple[Any, ...], kwargs: dict[str, Any], resolver: DependencyResolver | None
) -> list[Future[Any]]:
    """The futures a call waits for, in argument order (once per appearance)."""
    if resolver is not None:
        find = resolver.traverse_to_gather
        deps = [d for a in args for d in find(a)]
        for k, v in kwargs.items():
            if k != "inputs":
                deps += find(v)
        for v in kwargs.get("inputs", ()) or ():
            deps += find(v)
        return deps
    deps = [a for a in args if isinstance(a, Future)]
    if kwargs:
        deps += [v for v in kwargs.values() if isinstance(v, Future)]
        inputs = kwargs.get("inputs")
        if inputs:
            deps += [v for v in inputs if isinstance(v, Future)]
    return deps


def unwrap(
    args: tuple[Any, ...], kwargs: dict[str, Any], resolver: DependencyResolver | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call with each future that `gather` found replaced by its result (all done)."""
    if resolver is not None:
        value_of = resolver.traverse_to_unwrap
        args = tuple(value_of(a) for a in args)
        kwargs = {k: (value_of(v) if k != "inputs" else v) for k, v in kwargs.items()}
        if kwargs.get("inputs"):
            kwargs["inputs"] = [value_of(v) for v in kwargs["inputs"]]
        return args, kwargs
    args = tuple(a.result() if isinstance(a, Future) else a for a in args)
    if kwargs:
        kwargs = {k: (v.result() if isinstance(v, Future) else v) for k, v in kwargs.items()}
        inputs = kwargs.get("inputs")
        if inputs:
            kwargs["inputs"] = [v.result() if isinstance(v, Future) else v for v in inputs]
    return args, kwargs


def without_future_defaults(func: Callable[..., Any]) -> Callable[..., Any]:
    """The function, or a copy whose parameter defaults hold values instead of futures.

    Parsl lets a default be a future (`def f(inputs=[other()])`); the call's kwargs already
    carry the values, but the defaults would still travel with the function, and a
    future cannot be pickled.
    """
    defaults = getattr(func, "__defaults__", None)
    if not defaults or not any(_holds_future(d) for d in defaults):
        return func
    original: Any = func
    copy = types.FunctionType(original.__code__, original.__globals__, original.__name__,
                              tuple(_done_value(d) for d in defaults), original.__closure__)
    copy.__kwdefaults__ = original.__kwdefaults__
    copy.__dict__.update(func.__dict__)
    copy.__qualname__, copy.__module__ = func.__qualname__, func.__module__
    return copy


def _holds_future(value: Any) -> bool:
    if isinstance(value, Future):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(v, Future) for v in value)


def _done_value(value: Any) -> Any:
    if isinstance(value, Future):
        return value.result() if value.done() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_done_value(v) for v in value)
    return value
