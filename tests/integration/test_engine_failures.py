"""Failures you can read: the original exception with the app's own frame, the task context,
dependency failures that name their root cause through any depth, retries."""

from __future__ import annotations

import traceback
from concurrent.futures import Future
from typing import Any

import pytest

from livedag import python_app
from livedag.errors import DependencyError, TaskContext

T = 60


@python_app
def load(path: str) -> list[str]:
    with open(path) as f:
        rows = f.read().splitlines()
    for i, row in enumerate(rows):
        if row == "bad":
            raise ValueError(f"bad row {i}")
    return rows


@python_app
def fit(rows: list[str]) -> int:
    return len(rows)


@python_app
def report(n: int, *more: int) -> str:
    return f"{n} rows"


def _bad_file(tmp_path: Any, name: str = "data.csv", bad_at: int = 17) -> str:
    path = tmp_path / name
    path.write_text("\n".join("bad" if i == bad_at else "ok" for i in range(bad_at + 1)))
    return str(path)


def test_result_raises_the_original_exception_with_the_apps_frame(dfk: Any) -> None:
    @python_app
    def explode(n: int) -> None:
        print("about to fail")
        raise KeyError(f"no column {n}")

    fut = explode(3)
    with pytest.raises(KeyError) as info:
        fut.result(timeout=T)
    exc = info.value
    assert exc.args == ("no column 3",)
    frames = traceback.extract_tb(exc.__traceback__)
    (frame,) = [f for f in frames if f.name == "explode"]
    assert frame.lineno == explode.func.__code__.co_firstlineno + 3
    assert frame.filename == __file__


def test_the_exception_carries_its_task_context(dfk: Any, executor_label: str) -> None:
    @python_app
    def explode() -> None:
        import sys

        print("stdout before the failure")
        print("stderr before the failure", file=sys.stderr)
        raise RuntimeError("boom")

    fut = explode()
    exc = fut.exception(timeout=T)
    ctx = exc.livedag_task  # type: ignore[union-attr]
    assert isinstance(ctx, TaskContext)
    assert (ctx.task_id, ctx.app_name, ctx.try_number, ctx.executor) == (
        fut.tid, "explode", 1, executor_label
    )
    assert ctx.captured_stdout == "stdout before the failure\n"
    assert ctx.captured_stderr == "stderr before the failure\n"
    note = "\n".join(exc.__notes__)  # type: ignore[union-attr]
    assert f"[livedag] in task {fut.tid} 'explode' (try 1, executor {executor_label!r}" in note
    assert "stderr before the failure" in note
    assert "[livedag]" in "".join(traceback.format_exception(exc))  # type: ignore[arg-type]


def test_dependency_error_names_the_failed_ancestor(dfk: Any, tmp_path: Any) -> None:
    loaded = load(_bad_file(tmp_path))
    fitted = fit(loaded)
    with pytest.raises(DependencyError) as info:
        fitted.result(timeout=T)
    exc = info.value
    assert str(exc) == (
        f"task {fitted.tid} 'fit' was not run: its input from task {loaded.tid} 'load' "
        "failed with ValueError: bad row 17"
    )
    assert exc.dependent_exceptions_tids == [(loaded.exception(), loaded.tid)]
    assert exc.__cause__ is loaded.exception()


def test_dependency_error_names_the_root_cause_through_several_levels(
    dfk: Any, tmp_path: Any
) -> None:
    loaded = load(_bad_file(tmp_path))
    fitted = fit(loaded)
    scored = fit(fitted)
    summary = report(scored)
    with pytest.raises(DependencyError) as info:
        summary.result(timeout=T)
    exc = info.value
    assert str(exc) == (
        f"task {summary.tid} 'report' was not run: its input from task {loaded.tid} 'load' "
        "failed with ValueError: bad row 17"
    )
    assert [r.task_id for r in exc.root_causes] == [loaded.tid]
    assert exc.root_causes[0].app_name == "load"
    # Parsl's field names the direct input; the root cause is the original task.
    ((parent_exc, parent_tid),) = exc.dependent_exceptions_tids
    assert parent_tid == scored.tid
    assert isinstance(parent_exc, DependencyError)
    assert exc.__cause__ is loaded.exception()
    assert summary.task_status() == "dep_fail"
    assert summary.task_record.root_cause_ids == (loaded.tid,)


def test_dependency_error_with_two_failed_roots_names_both(dfk: Any, tmp_path: Any) -> None:
    first = load(_bad_file(tmp_path, "a.csv", 3))
    second = load(str(tmp_path / "missing.csv"))
    summary = report(fit(first), fit(second))
    exc = summary.exception(timeout=T)
    assert isinstance(exc, DependencyError)
    assert sorted(r.task_id for r in exc.root_causes) == sorted([first.tid, second.tid])
    assert "(also failed: task" in str(exc)
    assert {r.exc_type for r in exc.root_causes} == {"ValueError", "FileNotFoundError"}


# ---------------------------------------------------------------- retries


@python_app
def fails_until(marker: str, good_on: int) -> int:
    """Fails until it has been run `good_on` times (counted in the marker file)."""
    with open(marker, "a+") as f:
        f.write("run\n")
        f.seek(0)
        count = len(f.read().splitlines())
    if count < good_on:
        raise RuntimeError(f"try {count} failed")
    return count


def test_retries_run_a_failing_task_again(load_dfk: Any, counter: Any) -> None:
    load_dfk(retries=2)
    marker = counter.new()
    fut = fails_until(marker, 3)
    assert fut.result(timeout=T) == 3
    assert [t.outcome for t in fut.tries] == ["failed", "failed", "exec_done"]
    assert counter.count(marker) == 3


def test_retries_exhausted_raise_the_last_exception(load_dfk: Any, counter: Any) -> None:
    load_dfk(retries=1)
    marker = counter.new()
    fut = fails_until(marker, 10)
    with pytest.raises(RuntimeError, match="try 2 failed"):
        fut.result(timeout=T)
    assert len(fut.tries) == 2
    assert fut.task_status() == "failed"


def test_retry_handler_sets_the_cost_of_each_failure(load_dfk: Any, counter: Any) -> None:
    seen: list[tuple[str, float]] = []

    def handler(exc: BaseException, record: Any) -> float:
        seen.append((str(exc), record["fail_count"]))
        return 2.0  # each failure costs two of the three retries

    load_dfk(retries=3, retry_handler=handler)
    marker = counter.new()
    fut = fails_until(marker, 10)
    with pytest.raises(RuntimeError, match="try 2 failed"):
        fut.result(timeout=T)
    assert seen == [("try 1 failed", 0), ("try 2 failed", 2.0)]
    assert counter.count(marker) == 2


def test_retry_handler_that_raises_fails_the_task_without_hanging(
    load_dfk: Any, counter: Any
) -> None:
    def handler(exc: BaseException, record: Any) -> float:
        raise LookupError("handler bug")

    load_dfk(retries=5, retry_handler=handler)
    marker = counter.new()
    fut = fails_until(marker, 10)
    blocked = report(fut)
    with pytest.raises(RuntimeError, match="try 1 failed") as info:
        fut.result(timeout=T)
    assert "the retry_handler raised LookupError('handler bug'); no retry" in "\n".join(
        info.value.__notes__
    )
    assert isinstance(blocked.exception(timeout=T), DependencyError)
    assert counter.count(marker) == 1


def test_dependency_failures_are_not_retried(load_dfk: Any) -> None:
    load_dfk(retries=3)
    gate: Future[int] = Future()
    waiting = fit(gate)
    after = report(waiting)
    assert waiting.cancel()
    assert isinstance(after.exception(timeout=T), DependencyError)
    assert after.tries == []
    gate.set_result(0)


def test_unpicklable_argument_fails_only_its_task_and_names_the_argument(
    dfk: Any, executor_label: str
) -> None:
    # A lock can be shared with a thread but cannot travel to a worker process: there the
    # task fails with SerializationError naming the argument, its type and a hint; its
    # dependents are blocked by it; other tasks are untouched.
    import threading

    from livedag.errors import SerializationError

    @python_app
    def use(x: Any, lock: Any = None) -> str:
        return type(lock).__name__

    ok = use(1)
    bad = use(2, lock=threading.Lock())
    after = use(bad)
    if executor_label == "threads":
        assert bad.result(timeout=T) == "lock"
        return
    with pytest.raises(SerializationError) as info:
        bad.result(timeout=T)
    text = str(info.value)
    assert f"task {bad.tid} 'use'" in text and "argument 'lock'" in text
    assert "_thread.lock" in text and "Hint:" in text
    with pytest.raises(DependencyError, match=f"task {bad.tid} 'use' failed with Serializ"):
        after.result(timeout=T)
    assert ok.result(timeout=T) == "NoneType"
