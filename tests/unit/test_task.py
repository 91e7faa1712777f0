"""livedag.task: the states (Parsl's names), the legal moves, the output buffer."""

from __future__ import annotations

import pytest

from livedag.task import (
    FAILURE_STATES,
    FINAL_STATES,
    LEGAL_MOVES,
    IllegalTransition,
    OutputBuffer,
    StateMembers,
    TaskRecord,
    TaskState,
    check_move,
)

S = TaskState


def test_state_values_are_parsl_names() -> None:
    # future.task_status() reads these; Parsl users compare them to strings.
    assert {s.value for s in S} == {
        "pending", "launched", "running", "joining", "exec_done", "memo_done", "failed",
        "dep_fail", "cancelled",
    }


def test_every_state_has_its_moves() -> None:
    assert set(LEGAL_MOVES) == set(S)


def test_success_is_final_and_failures_only_resubmit_to_pending() -> None:
    assert LEGAL_MOVES[S.EXEC_DONE] == frozenset()
    assert LEGAL_MOVES[S.MEMO_DONE] == frozenset()
    for state in FAILURE_STATES:
        assert LEGAL_MOVES[state] == {S.PENDING}
    successes = FINAL_STATES - FAILURE_STATES
    assert successes == {S.EXEC_DONE, S.MEMO_DONE}
    assert S.DEP_FAIL.is_failure and S.DEP_FAIL.is_final
    assert not S.EXEC_DONE.is_failure and S.EXEC_DONE.is_final
    assert not S.RUNNING.is_final


@pytest.mark.parametrize(
    ("old", "new"),
    [(S.PENDING, S.LAUNCHED), (S.LAUNCHED, S.RUNNING), (S.RUNNING, S.EXEC_DONE),
     (S.RUNNING, S.PENDING), (S.RUNNING, S.JOINING), (S.JOINING, S.FAILED),
     (S.PENDING, S.MEMO_DONE), (S.PENDING, S.DEP_FAIL), (S.PENDING, S.CANCELLED),
     (S.LAUNCHED, S.CANCELLED), (S.FAILED, S.PENDING), (S.DEP_FAIL, S.PENDING)],
)
def test_legal_moves_pass(old: TaskState, new: TaskState) -> None:
    check_move(1, old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [(S.EXEC_DONE, S.PENDING), (S.MEMO_DONE, S.FAILED), (S.RUNNING, S.CANCELLED),
     (S.PENDING, S.RUNNING), (S.PENDING, S.EXEC_DONE), (S.FAILED, S.EXEC_DONE),
     (S.DEP_FAIL, S.LAUNCHED), (S.JOINING, S.PENDING)],
)
def test_illegal_moves_raise_naming_the_task(old: TaskState, new: TaskState) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_move(12, old, new)
    assert str(info.value) == f"task 12: {old.value} -> {new.value} is not a legal move"


def test_output_buffer_keeps_text_in_order() -> None:
    buf = OutputBuffer()
    assert not buf
    buf.append("a\n")
    buf.append("b\n")
    assert buf
    assert buf.text() == "a\nb\n"
    buf.clear()
    assert buf.text() == ""


def test_output_buffer_drops_the_head_past_its_limit_and_says_so() -> None:
    buf = OutputBuffer(limit=100)
    for i in range(50):
        buf.append(f"{i:02d}\n")  # 150 characters in all
    text = buf.text()
    assert text.startswith(f"[... {buf.dropped} characters dropped ...]\n")
    assert buf.dropped > 0
    body = text.split("\n", 1)[1]
    assert body.endswith("48\n49\n")
    assert len(body) <= 100
    assert buf.dropped + len(body) == 150


def test_task_record_reads_like_parsls_dict() -> None:
    record = TaskRecord(id=3, app_name="fit", func=print, args=(), kwargs={}, executor="t")
    record.fail_count = 2
    record.hashsum = "abc"
    assert record["fail_count"] == 2
    assert record["fn_hash"] == "abc"
    assert record["try_id"] == 0
    assert record["func_name"] == "fit"
    assert record["status"] is S.PENDING


def test_state_members_are_every_task_state_itself() -> None:
    # The engine reads states through StateMembers (plain attributes, fast on 3.11): a
    # state added to TaskState and missing there would be an AttributeError mid-run.
    names = {n for n in vars(StateMembers) if not n.startswith("_")}
    assert names == set(TaskState.__members__)
    for name, member in TaskState.__members__.items():
        assert getattr(StateMembers, name) is member
