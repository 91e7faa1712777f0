"""livedag.serialize: calls and outcomes round-trip; what cannot travel is named, with a hint."""

from __future__ import annotations

import pickle
import threading
import traceback
from concurrent.futures import Future

import pytest

from livedag import serialize
from livedag.errors import DeserializationError, RemoteError, SerializationError


def _add(a: int, b: int = 0) -> int:
    return a + b


def test_call_round_trip_sends_closures_by_value() -> None:
    offset = 40

    def shifted(x: int) -> int:
        return x + offset

    fn, args, kwargs = serialize.unpack_call(serialize.pack_call(shifted, (2,), {"y": 1}))
    assert fn(*args) == 42
    assert kwargs == {"y": 1}


def test_unpicklable_positional_argument_is_named_with_type_and_hint() -> None:
    with pytest.raises(SerializationError) as info:
        serialize.pack_call(_add, (1, threading.Lock()), {}, task_id=3, app_name="add")
    exc = info.value
    assert exc.what == "argument 1"
    assert exc.type_name == "_thread.lock"
    assert exc.task_id == 3
    text = str(exc)
    assert text.startswith("task 3 'add': argument 1 (of type _thread.lock) cannot be serialized")
    assert "Hint: create it inside the app" in text
    assert isinstance(exc.__cause__, TypeError)  # what pickle itself said


def test_unpicklable_keyword_argument_is_named() -> None:
    with pytest.raises(SerializationError) as info:
        serialize.pack_call(_add, (1,), {"b": threading.Lock()})
    assert info.value.what == "argument 'b'"
    assert "argument 'b' (of type _thread.lock)" in str(info.value)


def test_unpicklable_function_is_named() -> None:
    lock = threading.Lock()

    def uses_lock() -> None:
        with lock:
            pass

    with pytest.raises(SerializationError) as info:
        serialize.pack_call(uses_lock, (), {})
    assert info.value.what == "the function"


def test_future_inside_a_container_gets_the_resolver_hint() -> None:
    with pytest.raises(SerializationError) as info:
        serialize.pack_call(_add, ([Future()],), {})
    assert info.value.what == "argument 0"
    assert "DEEP_DEPENDENCY_RESOLVER" in str(info.value)


def test_result_round_trip() -> None:
    assert serialize.unpack_outcome(serialize.pack_result({"a": [1, 2]})) == (True, {"a": [1, 2]})


def test_unpicklable_result_comes_back_as_a_failure_naming_the_result() -> None:
    ok, exc = serialize.unpack_outcome(serialize.pack_result(threading.Lock(), task_id=5))
    assert not ok
    assert isinstance(exc, SerializationError)
    assert exc.what == "the result"
    assert str(exc).startswith("task 5: the result (of type _thread.lock)")
    assert "back to the kernel" in str(exc) and "return plain data" in str(exc)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_an_exception_whose_str_raises_still_becomes_a_failure() -> None:
    try:
        raise _Unprintable
    except _Unprintable as exc:
        failure = serialize.failure_from(exc)
    assert failure.message == "<str() of this _Unprintable raised RuntimeError>"
    assert isinstance(failure.exception(), _Unprintable)
    ok, back = serialize.unpack_outcome(serialize.pack_failure(_Unprintable()))
    assert not ok and isinstance(back, _Unprintable)


def _explode() -> None:
    raise KeyError("missing column")


def test_failure_keeps_type_and_the_remote_traceback() -> None:
    try:
        _explode()
    except KeyError as e:
        data = serialize.pack_failure(e)
    ok, exc = serialize.unpack_outcome(data)
    assert not ok
    assert type(exc) is KeyError
    assert exc.args == ("missing column",)
    names = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "_explode" in names


class _HoldsALock(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class _NeedsTwoArguments(Exception):
    def __init__(self, a: str, b: str) -> None:
        super().__init__(a)
        self.b = b


def test_exception_with_extra_constructor_arguments_keeps_its_type_and_fields() -> None:
    try:
        raise _NeedsTwoArguments("first", "second")
    except Exception as e:
        data = serialize.pack_failure(e)
    ok, back = serialize.unpack_outcome(data)
    assert not ok
    assert type(back) is _NeedsTwoArguments
    assert (back.args, back.b) == (("first",), "second")


def test_exception_that_cannot_travel_becomes_remote_error() -> None:
    try:
        raise _HoldsALock("cannot pickle me")
    except Exception as e:
        data = serialize.pack_failure(e)
    ok, back = serialize.unpack_outcome(data)
    assert not ok
    assert isinstance(back, RemoteError)
    assert back.type_name == f"{__name__}._HoldsALock"
    assert back.message == "cannot pickle me"
    assert "test_exception_that_cannot_travel_becomes_remote_error" in back.traceback_text
    assert pickle.loads(pickle.dumps(back)).traceback_text == back.traceback_text


def test_garbage_from_a_worker_is_a_deserialization_error() -> None:
    with pytest.raises(DeserializationError, match="could not be unpickled in the kernel"):
        serialize.unpack_outcome(b"not a pickle")


# --- a function's pickle is reused only while what it captures is unchanged ------------

THRESHOLD = 5
ROWS: list[int] = [1, 2]


def _over_threshold(x: int) -> bool:
    return x > THRESHOLD


def _count_rows() -> int:
    return len(ROWS)


def _run(data: bytes) -> object:
    fn, args, kwargs = serialize.unpack_call(data)
    return fn(*args, **kwargs)


@pytest.fixture
def by_value() -> object:
    import sys

    import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


def test_a_changed_global_scalar_reaches_the_worker(by_value: object) -> None:
    global THRESHOLD
    first = serialize.pack_call(_over_threshold, (6,), {})
    assert serialize.pack_call(_over_threshold, (6,), {}) == first  # reused
    assert _run(first) is True
    THRESHOLD = 10
    try:
        assert _run(serialize.pack_call(_over_threshold, (6,), {})) is False
    finally:
        THRESHOLD = 5


def test_a_mutated_global_list_reaches_the_worker(by_value: object) -> None:
    assert _run(serialize.pack_call(_count_rows, (), {})) == 2
    ROWS.append(3)
    try:
        assert _run(serialize.pack_call(_count_rows, (), {})) == 3
    finally:
        ROWS.pop()


def test_a_changed_closure_cell_reaches_the_worker() -> None:
    factor = 2

    def scale(x: int) -> int:
        return x * factor

    assert _run(serialize.pack_call(scale, (5,), {})) == 10
    factor = 3  # read through the closure
    assert _run(serialize.pack_call(scale, (5,), {})) == 15


def test_a_redefined_function_is_sent_anew() -> None:
    def version() -> int:
        return 1

    assert _run(serialize.pack_call(version, (), {})) == 1

    def version() -> int:  # type: ignore[no-redef]  # the user re-ran the cell
        return 2

    assert _run(serialize.pack_call(version, (), {})) == 2


def test_a_worker_rebuilds_a_function_once_per_distinct_pickle() -> None:
    def double(x: int) -> int:
        return 2 * x

    a = serialize.unpack_call(serialize.pack_call(double, (1,), {}))
    b = serialize.unpack_call(serialize.pack_call(double, (2,), {}))
    assert a[0] is b[0]
    assert (a[1], b[1]) == ((1,), (2,))
