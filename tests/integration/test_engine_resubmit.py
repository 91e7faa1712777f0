"""livedag.resubmit: a failed task runs again once the user fixed the cause; the tasks it
blocked are re-armed and their existing futures later hold the new values."""

from __future__ import annotations

import sys
from concurrent.futures import Future
from typing import Any

import pytest

import livedag
from livedag import python_app
from livedag.errors import DependencyError
from livedag.events import TaskResubmitted

T = 60


@python_app
def read(path: str) -> str:
    with open(path) as f:
        return f.read()


@python_app
def shout(text: str) -> str:
    return text.upper()


@python_app
def exclaim(text: str) -> str:
    return text + "!"


@python_app
def join_text(*parts: str) -> str:
    return "".join(parts)


def test_resubmit_runs_the_task_again_and_rearms_its_dependents(
    dfk: Any, tmp_path: Any, recorder: Any
) -> None:
    dfk.bus.subscribe(recorder)
    path = tmp_path / "input.txt"
    loaded = read(str(path))
    loud = shout(loaded)
    final = exclaim(loud)
    assert isinstance(final.exception(timeout=T), DependencyError)
    assert isinstance(loaded.exception(timeout=T), FileNotFoundError)

    path.write_text("fixed")
    same = livedag.resubmit(loaded)

    assert same is loaded
    assert final.result(timeout=T) == "FIXED!"
    assert loud.result(timeout=T) == "FIXED"
    assert [f.task_status() for f in (loaded, loud, final)] == ["exec_done"] * 3
    first, second = loaded.tries
    assert (first.outcome, first.exc_type) == ("failed", "FileNotFoundError")
    assert second.outcome == "exec_done"

    assert dfk.bus.flush(T)
    (event,) = recorder.of(TaskResubmitted, loaded.tid)
    assert (event.try_number, event.rearmed, event.redefined) == (2, (loud.tid, final.tid), False)
    # The dependents' own futures went from failed back to pending, then ran. (On an
    # executor that forwards results they were launched ahead of their input, unseen: an
    # observer sees them wait for it, as a pending task does.)
    for fut in (loud, final):
        assert recorder.states(fut.tid) == [
            "dep_fail", "pending", "launched", "running", "exec_done"
        ]
    assert recorder.states(loaded.tid) == [
        "launched", "running", "failed", "pending", "launched", "running", "exec_done"
    ]


@python_app
def read_when_released(path: str, release: str) -> str:
    """Reads `path` once `release` exists: the test decides when a rerun may finish."""
    import os
    import time

    for _ in range(1200):
        if os.path.exists(release):
            with open(path) as f:
                return f.read()
        time.sleep(0.05)
    raise TimeoutError(f"{release} never appeared")


def test_resubmit_rearms_dependents_submitted_after_the_failure(dfk: Any, tmp_path: Any) -> None:
    # The usual notebook order: one cell fails, the next cell's tasks are made afterwards.
    path, release = tmp_path / "input.txt", tmp_path / "release"
    release.touch()
    loaded = read_when_released(str(path), str(release))
    assert isinstance(loaded.exception(timeout=T), FileNotFoundError)
    loud = shout(loaded)
    final = exclaim(loud)
    assert isinstance(final.exception(timeout=T), DependencyError)

    release.unlink()
    path.write_text("late")
    livedag.resubmit(loaded)
    # The existing futures went from failed back to pending.
    assert [f.task_status() for f in (loud, final)] == ["pending", "pending"]
    assert not final.done()
    release.touch()  # the rerun ends only after resubmit has re-armed the dependents
    assert final.result(timeout=T) == "LATE!"
    assert loud.result(timeout=T) == "LATE"


def test_resubmit_rearms_dependents_of_its_output_files(dfk: Any, tmp_path: Any) -> None:
    @python_app
    def produce(source: str, outputs: Any = ()) -> None:
        with open(source) as src, open(outputs[0], "w") as out:
            out.write(src.read())

    source = tmp_path / "source.txt"
    made = produce(str(source), outputs=[str(tmp_path / "made.txt")])
    assert isinstance(made.exception(timeout=T), FileNotFoundError)
    copied = read(made.outputs[0])
    assert isinstance(copied.exception(timeout=T), DependencyError)

    source.write_text("copied")
    livedag.resubmit(made)
    assert copied.result(timeout=T) == "copied"


def test_resubmit_rearms_a_diamond_once(dfk: Any, tmp_path: Any) -> None:
    path = tmp_path / "input.txt"
    loaded = read(str(path))
    both = join_text(shout(loaded), exclaim(loaded))
    assert isinstance(both.exception(timeout=T), DependencyError)
    path.write_text("x")
    livedag.resubmit(loaded)
    assert both.result(timeout=T) == "Xx!"
    assert len(both.tries) == 1


def test_resubmit_by_task_id(dfk: Any, tmp_path: Any) -> None:
    path = tmp_path / "input.txt"
    loaded = read(str(path))
    assert isinstance(loaded.exception(timeout=T), FileNotFoundError)
    path.write_text("by id")
    livedag.resubmit(loaded.tid)
    assert loaded.result(timeout=T) == "by id"


def test_resubmit_a_dependency_failure_resubmits_its_root_cause(dfk: Any, tmp_path: Any) -> None:
    path = tmp_path / "input.txt"
    loaded = read(str(path))
    final = exclaim(shout(loaded))
    assert isinstance(final.exception(timeout=T), DependencyError)
    path.write_text("root")
    assert livedag.resubmit(final) is final
    assert final.result(timeout=T) == "ROOT!"
    assert len(loaded.tries) == 2


def test_resubmit_a_cancelled_task(dfk: Any) -> None:
    gate: Future[int] = Future()
    fut = shout(gate)
    assert fut.cancel()
    gate.set_result("late")  # type: ignore[arg-type]
    livedag.resubmit(fut)
    assert fut.result(timeout=T) == "LATE"
    assert not fut.cancelled()


def test_resubmit_of_a_task_that_did_not_fail_says_so(dfk: Any) -> None:
    fut = shout("ok")
    fut.result(timeout=T)
    with pytest.raises(ValueError) as info:
        livedag.resubmit(fut)
    assert str(info.value) == (
        f"task {fut.tid} 'shout' is exec_done: only failed, cancelled or dependency-failed "
        "tasks can be resubmitted"
    )


def test_resubmit_of_an_unknown_task_id_says_so(dfk: Any) -> None:
    with pytest.raises(KeyError, match="no task 12345 is known to this kernel"):
        livedag.resubmit(12345)


@python_app
def as_text(value: Any) -> str:
    return str(value)


@python_app
def parse(text: str) -> int:
    return int(text) // 0  # the bug: a division by zero


def _fixed_parse() -> Any:
    """The same app, defined again with the bug fixed."""

    @python_app
    def parse(text: str) -> int:
        return int(text) // 2

    return parse


def test_resubmit_uses_the_newest_definition_from_main(
    dfk: Any, monkeypatch: pytest.MonkeyPatch, recorder: Any
) -> None:
    dfk.bus.subscribe(recorder)
    fut = parse("84")
    after = as_text(fut)
    assert isinstance(fut.exception(timeout=T), ZeroDivisionError)
    assert isinstance(after.exception(timeout=T), DependencyError)

    # The notebook cell is fixed and run again: `parse` in __main__ is the new app.
    monkeypatch.setattr(sys.modules["__main__"], "parse", _fixed_parse(), raising=False)
    livedag.resubmit(fut)
    assert fut.result(timeout=T) == 42
    assert after.result(timeout=T) == "42"
    assert dfk.bus.flush(T)
    (event,) = recorder.of(TaskResubmitted, fut.tid)
    assert event.redefined is True


def test_resubmit_can_keep_the_old_definition(dfk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fut = parse("84")
    assert isinstance(fut.exception(timeout=T), ZeroDivisionError)

    monkeypatch.setattr(sys.modules["__main__"], "parse", _fixed_parse(), raising=False)
    livedag.resubmit(fut, use_latest_definition=False)
    with pytest.raises(ZeroDivisionError):
        fut.result(timeout=T)
    assert len(fut.tries) == 2


# ---------------------------------------------------------------- several failed roots
# Thread-only: with one worker, a task launched while one of its inputs is reset would
# block the only worker waiting for that input, which then never runs.


def test_resubmit_a_dependency_failure_with_two_failed_roots(
    load_one_thread_dfk: Any, tmp_path: Any
) -> None:
    load_one_thread_dfk()
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    first, second = read(str(a)), read(str(b))
    both = join_text(first, second)
    exc = both.exception(timeout=T)
    assert isinstance(exc, DependencyError)
    assert sorted(r.task_id for r in exc.root_causes) == [first.tid, second.tid]

    a.write_text("A")
    b.write_text("B")
    livedag.resubmit(both)
    assert both.result(timeout=T) == "AB"
    assert [len(f.tries) for f in (first, second, both)] == [2, 2, 1]


def test_resubmit_two_failed_roots_one_after_the_other(
    load_one_thread_dfk: Any, tmp_path: Any
) -> None:
    load_one_thread_dfk()
    a, b, release = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "release"
    release.touch()
    first = read_when_released(str(a), str(release))
    second = read(str(b))
    both = join_text(first, second)
    assert isinstance(both.exception(timeout=T), DependencyError)

    release.unlink()
    a.write_text("A")
    b.write_text("B")
    livedag.resubmit(first)  # holds the only worker until `release` exists
    livedag.resubmit(second)
    release.touch()
    assert both.result(timeout=T) == "AB"
