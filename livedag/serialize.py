"""Turning calls, results and failures into bytes and back, with errors that name the value.

    kernel:  pack_call(fn, args, kwargs) ──bytes──> worker: unpack_call()
    worker:  pack_result(value) | pack_failure(exc) ──bytes──> kernel: unpack_outcome()

cloudpickle sends functions, classes and globals defined in `__main__` (a notebook) by
value, so they work in a worker that never saw the notebook. Failures travel with their
traceback (tblib), so `result()` raises the original exception type whose traceback shows
the app's own frames. An exception that cannot be pickled becomes a RemoteError holding
its type name, message and traceback text: nothing is ever reduced to "unpicklable".
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import struct
import sys
import traceback
import types
import weakref
from collections.abc import Callable
from typing import Any

import cloudpickle
from tblib import pickling_support

from livedag.errors import (
    DeserializationError,
    RemoteError,
    SerializationError,
    exception_text,
)

PROTOCOL = 5

# Types that hold a live resource of this process; they cannot travel, they must be made
# where they are used.
_RESOURCE_HINT = (
    "create it inside the app (pass what is needed to build it, e.g. a path or a URL), "
    "or use the thread executor, which shares this process's objects"
)


_RESULT_HINT = (
    "return plain data (numbers, strings, lists, dicts, arrays, dataclasses) and build the "
    "rest in the kernel from it, or write it to a file and return the path"
)

_FUTURE_HINT = (
    "it holds a future inside a container; pass futures as direct arguments (or in "
    "inputs=[...]), or load a Config(dependency_resolver=DEEP_DEPENDENCY_RESOLVER) so that "
    "livedag waits for futures inside lists, tuples, sets and dicts"
)


def _holds_future(value: Any) -> bool:
    from concurrent.futures import Future

    if isinstance(value, (list, tuple, set, frozenset)):
        return any(isinstance(v, Future) for v in value)
    if isinstance(value, dict):
        return any(isinstance(v, Future) for v in value.values())
    return isinstance(value, Future)


def dumps(obj: Any) -> bytes:
    data: bytes = cloudpickle.dumps(obj, protocol=PROTOCOL)
    return data


def loads(data: bytes) -> Any:
    return pickle.loads(data)


_cloudpickle_code_reduce = getattr(cloudpickle.cloudpickle, "_code_reduce", None)


def _code_reduce_keeping_filename(code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
    ctor, args = _cloudpickle_code_reduce(code)  # type: ignore[misc]
    return ctor, tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)


class _CallPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, except that a function sent by value keeps its file name.

    cloudpickle writes "<dynamic-code>" as the file of every function it sends by value
    (for deterministic bytes); a worker's traceback then cannot name the app's file nor
    show its lines. A call's bytes need not be deterministic, so pack_call keeps the name.
    """

    if _cloudpickle_code_reduce is not None:
        dispatch_table = collections.ChainMap(
            {types.CodeType: _code_reduce_keeping_filename}, cloudpickle.Pickler.dispatch_table
        )


class _InputsPickler(_CallPickler):
    """A call whose inputs are results still to come (see pack_call's `inputs`)."""

    def __init__(self, file: io.BytesIO, inputs: dict[int, int]) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._inputs = inputs

    def persistent_id(self, obj: Any) -> Any:
        tid = self._inputs.get(id(obj))
        return None if tid is None else ("livedag-input", tid)


class _InputsUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, inputs: dict[int, Any]) -> None:
        super().__init__(file)
        self._inputs = inputs

    def persistent_load(self, pid: Any) -> Any:
        try:
            return self._inputs[pid[1]]
        except (KeyError, TypeError, IndexError):
            raise pickle.UnpicklingError(f"no value for the task input {pid!r}") from None


def _dumps_call(obj: Any) -> bytes:
    with io.BytesIO() as f:
        _CallPickler(f, protocol=PROTOCOL).dump(obj)
        return f.getvalue()


def pack_call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    task_id: int | None = None,
    app_name: str = "",
    inputs: dict[int, int] | None = None,
) -> bytes:
    """Serialize a call; if that fails, find and name the value that cannot travel.

    The bytes are the function's pickle (see `_function_bytes`: reused while nothing it
    captures has changed), then the arguments' pickle, behind a length prefix.
    `inputs` maps id(future) -> task id for futures among the arguments whose results
    are still to come: each is pickled as a reference to that task's result, which
    `unpack_call(inputs=...)` puts in its place.
    """
    try:
        fn_bytes = _function_bytes(fn)
        if inputs:
            with io.BytesIO() as f:
                f.write(_U64.pack(len(fn_bytes)))
                f.write(fn_bytes)
                _InputsPickler(f, inputs).dump((args, kwargs))
                return f.getvalue()
        plain = _plain(args) and _plain(kwargs.values())
        if plain and _small(args) and _small(kwargs.values()):
            arg_bytes = pickle.dumps((args, kwargs), protocol=PROTOCOL)
            return b"".join((_U64.pack(len(fn_bytes)), fn_bytes, arg_bytes))
        # Into one growing buffer: pickle.dumps of a 1 MiB bytes costs 20x this (its
        # output buffer is reallocated, and the fresh memory faulted in, as it grows).
        with io.BytesIO() as f:
            f.write(_U64.pack(len(fn_bytes)))
            f.write(fn_bytes)
            (pickle.Pickler if plain else _CallPickler)(f, protocol=PROTOCOL).dump((args, kwargs))
            return f.getvalue()
    except Exception as exc:
        raise _diagnose(fn, args, kwargs, exc, task_id=task_id, app_name=app_name) from exc


def _call_parts(data: bytes) -> tuple[memoryview, memoryview]:
    """A pack_call payload's function pickle and arguments pickle, as views."""
    view = memoryview(data)
    (size,) = _U64.unpack_from(view, 0)
    return view[8 : 8 + size], view[8 + size :]


def unpack_call(data: bytes, inputs: dict[int, Any] | None = None
                ) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """The call pack_call packed; `inputs` (task id -> value) fills in the results it
    was packed without."""
    fn_view, arg_view = _call_parts(data)
    fn_bytes = bytes(fn_view)
    fn = _FUNCTIONS.get(fn_bytes)
    if fn is None:
        fn = loads(fn_bytes)
        if len(_FUNCTIONS) >= _FUNCTIONS_KEPT:
            del _FUNCTIONS[next(iter(_FUNCTIONS))]
        _FUNCTIONS[fn_bytes] = fn
    args, kwargs = _load_arguments(arg_view, inputs)
    return fn, args, kwargs


def unpack_arguments(data: bytes, inputs: dict[int, Any] | None = None
                     ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of a pack_call payload, without its function (the kernel taking a
    task's arguments back from an executor that kept them; `inputs` as for unpack_call,
    here the futures themselves)."""
    return _load_arguments(_call_parts(data)[1], inputs)


def _load_arguments(view: memoryview, inputs: dict[int, Any] | None
                    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if inputs is None:
        args, kwargs = pickle.loads(view)
    else:
        with io.BytesIO(view) as f:
            args, kwargs = _InputsUnpickler(f, inputs).load()
    return args, kwargs


_U64 = struct.Struct("<Q")  # a function that captures 4 GiB still has a size
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})
_SIZED = frozenset({str, bytes})
BIG_ARGUMENT = 1 << 16  # bytes (or characters) from which pickle.dumps gets slow


def _plain(values: Any) -> bool:
    """Only builtin scalars: the standard pickler is exact for them, and 5x cheaper to
    start than cloudpickle's."""
    return all(type(v) in _PLAIN for v in values)


def _small(values: Any) -> bool:
    """No str or bytes of BIG_ARGUMENT or more (called on plain values only)."""
    return all(type(v) not in _SIZED or len(v) < BIG_ARGUMENT for v in values)

# Worker side: functions already unpickled, by their bytes (the same bytes mean the same
# code, defaults, closure and captured globals), so a worker rebuilds a function sent by
# value once, not for every task.
_FUNCTIONS: dict[bytes, Callable[..., Any]] = {}
_FUNCTIONS_KEPT = 256

# Kernel side: a function's pickle, with the state it was made from. Pickling a function
# sent by value (anything defined in a notebook) costs ~20 µs, a third of submitting a
# short task; its bytes are reused while `_capture_state` finds the same code, defaults,
# closure and referenced globals. A function that captures anything mutable (a list, a
# dict, an object) is pickled afresh every time, so a worker always sees current values.
_FN_BYTES: weakref.WeakKeyDictionary[Callable[..., Any], tuple[Any, bytes]] = (
    weakref.WeakKeyDictionary()
)


def _function_bytes(fn: Callable[..., Any]) -> bytes:
    state = _capture_state(fn, 0) if type(fn) is types.FunctionType else None
    if state is not None:
        entry = _FN_BYTES.get(fn)
        if entry is not None and entry[0] == state:
            return entry[1]
    data = _dumps_call(fn)
    if state is not None:
        _FN_BYTES[fn] = (state, data)
    return data


_SCALARS = (int, float, complex, str, bytes, bool, type(None), range, type(Ellipsis))


def _importable(obj: Any) -> bool:
    """True when pickle sends `obj` by reference (a worker imports it by name)."""
    module = getattr(obj, "__module__", None)
    if module is None or module == "__main__" or module not in sys.modules:
        return False
    found: Any = sys.modules[module]
    for part in getattr(obj, "__qualname__", "<").split("."):
        found = getattr(found, part, None)
    return found is obj


def _capture_state(fn: types.FunctionType, depth: int) -> tuple[Any, ...] | None:
    """What a by-value pickle of `fn` is made of, as comparable values; None when some
    of it may change without changing identity (then it is never cached)."""
    if depth > 3:
        return None
    code = fn.__code__
    parts: list[Any] = [code, fn.__name__, fn.__qualname__, fn.__module__]
    for value in (fn.__defaults__, fn.__kwdefaults__):
        key = _value_key(value, depth)
        if key is _UNSTABLE:
            return None
        parts.append(key)
    if fn.__closure__:
        for cell in fn.__closure__:
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                content = _UNSTABLE
            key = _value_key(content, depth)
            if key is _UNSTABLE:
                return None
            parts.append(key)
    namespace = fn.__globals__
    for name in _global_names(code):
        if name in namespace:
            key = _value_key(namespace[name], depth)
            if key is _UNSTABLE:
                return None
            parts.append((name, key))
    if fn.__dict__:
        return None  # attributes set on the function: rare, and mutable
    return tuple(parts)


_UNSTABLE = object()


def _value_key(value: Any, depth: int) -> Any:
    if isinstance(value, _SCALARS):
        return (type(value), value)
    if isinstance(value, types.ModuleType) or (
        isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType))
        and _importable(value)
    ):
        # Pickled by reference: the worker imports it. Keyed by identity; the object is
        # kept in the key, so its id cannot be reused by another.
        return (id(value), value)
    if type(value) is types.FunctionType:  # defined in the notebook: sent by value
        inner = _capture_state(value, depth + 1)
        return _UNSTABLE if inner is None else (id(value), value, inner)
    if type(value) in (tuple, frozenset):
        keys = tuple(_value_key(v, depth) for v in value)
        return _UNSTABLE if any(k is _UNSTABLE for k in keys) else (type(value), keys)
    return _UNSTABLE


_GLOBAL_NAMES: dict[types.CodeType, tuple[str, ...]] = {}


def _global_names(code: types.CodeType) -> tuple[str, ...]:
    """Names a code object (and the functions and comprehensions inside it) may read
    from its module's globals."""
    names = _GLOBAL_NAMES.get(code)
    if names is None:
        found: dict[str, None] = dict.fromkeys(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                found.update(dict.fromkeys(_global_names(const)))
        names = tuple(found)
        if len(_GLOBAL_NAMES) > 4096:
            _GLOBAL_NAMES.clear()
        _GLOBAL_NAMES[code] = names
    return names


def _diagnose(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    original: Exception,
    *,
    task_id: int | None,
    app_name: str,
) -> SerializationError:
    candidates: list[tuple[str, Any]] = [("the function", fn)]
    candidates += [(f"argument {i}", a) for i, a in enumerate(args)]
    candidates += [(f"argument {k!r}", v) for k, v in kwargs.items()]
    for what, value in candidates:
        try:
            dumps(value)
        except Exception as exc:
            return serialization_error(what, value, exc, task_id=task_id, app_name=app_name)
    return serialization_error("the call", (fn, args, kwargs), original, task_id=task_id,
                               app_name=app_name)


def serialization_error(
    what: str,
    value: Any,
    exc: BaseException,
    *,
    task_id: int | None = None,
    app_name: str = "",
    to_kernel: bool = False,
) -> SerializationError:
    """`to_kernel`: the value is a task's result, on its way back from a worker."""
    type_name = f"{type(value).__module__}.{type(value).__qualname__}"
    who = ""
    if task_id is not None:
        who = f"task {task_id} {app_name!r}: " if app_name else f"task {task_id}: "
    if to_kernel:
        where, hint = "back to the kernel", _RESULT_HINT
    else:
        where = "to a worker"
        hint = _FUTURE_HINT if _holds_future(value) else _RESOURCE_HINT
    message = (
        f"{who}{what} (of type {type_name}) cannot be serialized to send it {where}: "
        f"{type(exc).__name__}: {exception_text(exc)}. Hint: {hint}."
    )
    return SerializationError(message, what=what, type_name=type_name, task_id=task_id)


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """A failure as it crosses a process boundary: the pickled exception and its text.

    The text fields make a RemoteError when the exception itself cannot be unpickled here.
    """

    exc_bytes: bytes | None
    type_name: str
    message: str
    traceback_text: str

    def exception(self) -> BaseException:
        if self.exc_bytes is not None:
            try:
                exc = loads(self.exc_bytes)
                if isinstance(exc, BaseException):
                    return exc
            except Exception:
                pass
        return RemoteError(self.type_name, self.message, self.traceback_text)


def failure_from(exc: BaseException) -> Failure:
    """Never raises: an exception whose str() or traceback breaks still becomes a failure
    of its task (not of the worker that ran it)."""
    type_name = type(exc).__qualname__
    if type(exc).__module__ not in ("builtins", "__main__"):
        type_name = f"{type(exc).__module__}.{type_name}"
    try:
        tb_text = "".join(traceback.format_exception(exc))
    except Exception as tb_exc:
        tb_text = (f"{type_name}: {exception_text(exc)}\n"
                   f"(its traceback could not be formatted: {tb_exc!r})")
    try:
        pickling_support.install(exc)
        packed = dumps(exc)
        loads(packed)  # an exception that pickles but cannot be rebuilt is no use either
        data: bytes | None = packed
    except Exception:
        data = None
    return Failure(data, type_name, exception_text(exc), tb_text)



def pack_result(value: Any, *, task_id: int | None = None, app_name: str = "") -> bytes:
    """Serialize a return value (ok=True) for the trip back to the kernel."""
    return pack_outcome(value, task_id=task_id, app_name=app_name)[1]


def pack_outcome(value: Any, *, task_id: int | None = None,
                 app_name: str = "") -> tuple[bool, bytes]:
    """pack_result, and whether the value went (False: it could not be pickled, and the
    bytes are that failure)."""
    try:
        return True, dumps((True, value))
    except Exception as exc:
        err = serialization_error("the result", value, exc, task_id=task_id, app_name=app_name,
                                  to_kernel=True)
        err.__cause__ = exc
        return False, pack_failure(err)


def pack_failure(exc: BaseException) -> bytes:
    return dumps((False, failure_from(exc)))


def unpack_outcome(data: bytes, task_id: int | None = None,
                   app_name: str = "") -> tuple[bool, Any]:
    """(True, value) or (False, exception) from pack_result/pack_failure bytes; raises
    DeserializationError (see `outcome_error`) when they cannot be unpickled here."""
    try:
        ok, payload = loads(data)
    except Exception as exc:
        raise outcome_error(exc, task_id, app_name) from exc
    if ok:
        return True, payload
    return False, payload.exception()


def outcome_error(exc: BaseException, task_id: int | None = None,
                  app_name: str = "") -> DeserializationError:
    """Why a task's outcome, pickled in a worker, cannot be unpickled in the kernel."""
    head = "a task's result"
    if task_id is not None:
        name = f" {app_name!r}" if app_name else ""
        head = f"task {task_id}{name}: its result"
    if isinstance(exc, ImportError):
        hint = ("the kernel must be able to import every module the result's types come "
                "from (install it in the kernel's environment)")
    else:
        hint = ("an object in it failed to rebuild itself here (its __reduce__ or "
                "__setstate__ raised: see the cause); return plain data instead")
    err = DeserializationError(f"{head} could not be unpickled in the kernel: "
                               f"{type(exc).__name__}: {exception_text(exc)}. Hint: {hint}.")
    err.__cause__ = exc
    return err
