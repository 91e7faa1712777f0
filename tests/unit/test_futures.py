"""AppFuture keeps concurrent.futures.Future's contract with its lighter condition."""

from __future__ import annotations

import concurrent.futures
import gc
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest

from livedag.futures import AppFuture


def _future() -> AppFuture:
    return AppFuture(task_record=None, dfk=None)  # type: ignore[arg-type]


def test_an_app_future_has_every_field_a_future_has() -> None:
    # AppFuture sets Future's fields itself (the two lists on first use): a Python that
    # adds one must fail here.
    fut = _future()
    for name, value in vars(Future()).items():
        assert type(getattr(fut, name)) is type(value) or name == "_condition", name
    waiters = fut._waiters
    assert fut._waiters is waiters  # made once, then kept


def test_a_future_nobody_waits_on_makes_no_lists() -> None:
    # A kept future is two objects for the garbage collector, not four (futures.py).
    fut = _future()
    fut.set_result(1)
    assert "_waiters" not in vars(fut) and "_done_callbacks" not in vars(fut)
    assert fut._condition._waiters is None  # the lock, with no list of waiters
    assert not any(type(o) is list for o in gc.get_referents(fut))
    failed = _future()
    failed.set_exception(ValueError("x"))
    assert "_waiters" not in vars(failed) and isinstance(failed.exception(), ValueError)


def test_waiters_are_woken_by_a_result_set_on_another_thread() -> None:
    fut = _future()
    got: list[Any] = []
    waiters = [threading.Thread(target=lambda: got.append(fut.result(timeout=10)))
               for _ in range(3)]
    for t in waiters:
        t.start()
    time.sleep(0.05)
    fut.set_result(42)
    for t in waiters:
        t.join(10)
    assert got == [42, 42, 42]


def test_timeouts_wait_and_as_completed_behave_as_for_any_future() -> None:
    slow, quick = _future(), _future()
    with pytest.raises(concurrent.futures.TimeoutError):
        slow.result(timeout=0.01)
    with pytest.raises(concurrent.futures.TimeoutError):
        slow.exception(timeout=0)
    threading.Timer(0.05, quick.set_result, ("done",)).start()
    done, pending = concurrent.futures.wait([slow, quick], timeout=10,
                                            return_when=concurrent.futures.FIRST_COMPLETED)
    assert done == {quick} and pending == {slow}
    slow.set_exception(ValueError("late"))
    assert set(concurrent.futures.as_completed([slow, quick], timeout=10)) == {slow, quick}
    assert isinstance(slow.exception(), ValueError)


def test_callbacks_run_once_whether_added_before_or_after_the_end() -> None:
    fut = _future()
    calls: list[Any] = []
    fut.add_done_callback(lambda f: calls.append(("before", f.result())))
    fut.set_result(1)
    fut.add_done_callback(lambda f: calls.append(("after", f.result())))
    assert calls == [("before", 1), ("after", 1)]


def test_a_waiter_hears_of_an_exception_set_while_it_waits() -> None:
    fut, other = _future(), _future()
    threading.Timer(0.05, fut.set_exception, (KeyError("k"),)).start()
    done, pending = concurrent.futures.wait(
        [fut, other], timeout=10, return_when=concurrent.futures.FIRST_EXCEPTION)
    assert done == {fut} and pending == {other}
    assert isinstance(fut.exception(), KeyError)
