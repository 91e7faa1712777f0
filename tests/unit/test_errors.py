"""livedag.errors: every exception survives pickling with its fields and its cause, and the
messages name the task, the cause and the evidence."""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest

from livedag import errors
from livedag.errors import (
    AppBadFormatting,
    AppException,
    AppTimeout,
    BadCheckpoint,
    BadStdStreamFile,
    BashAppNoReturn,
    BashExitFailure,
    ConfigurationError,
    DependencyError,
    DeserializationError,
    ExecutorError,
    JoinError,
    LivedagError,
    ManagerLost,
    MissingOutputs,
    NoDataFlowKernelError,
    PropagatedException,
    RemoteError,
    RootCause,
    SerializationError,
    TaskCancelled,
    TaskContext,
)


def _root_failure() -> tuple[ValueError, RootCause]:
    return ValueError("bad row 17"), RootCause(3, "load", "ValueError", "bad row 17")


def _dependency_error() -> DependencyError:
    exc, root = _root_failure()
    return DependencyError([(exc, 3)], 7, app_name="fit", root_causes=[root])


def _join_error() -> JoinError:
    exc, root = _root_failure()
    return JoinError([(exc, 3)], 9, app_name="join_all", root_causes=[root])


# One example of every exception class in livedag.errors, with every field set.
SAMPLES: dict[str, Callable[[], BaseException]] = {
    "LivedagError": lambda: LivedagError("something went wrong"),
    "ConfigurationError": lambda: ConfigurationError("Config.retries must be >= 0, got -1"),
    "NoDataFlowKernelError": lambda: NoDataFlowKernelError("Must first load config"),
    "ExecutorError": lambda: ExecutorError("htex", "failed to start: OSError: no port"),
    "SerializationError": lambda: SerializationError(
        "argument 0 cannot be serialized", what="argument 0", type_name="_thread.lock", task_id=4
    ),
    "DeserializationError": lambda: DeserializationError("result could not be unpickled"),
    "BadCheckpoint": lambda: BadCheckpoint("checkpoint file 'x' cannot be read"),
    "AppBadFormatting": lambda: AppBadFormatting("App formatting failed for app 'g'"),
    "MissingOutputs": lambda: MissingOutputs("the command ended", ["a.txt", "b.txt"]),
    "BadStdStreamFile": lambda: BadStdStreamFile("cannot open stdout file '/x'"),
    "AppException": lambda: AppException("the app failed"),
    "BashExitFailure": lambda: BashExitFailure("compile", 2, "gcc: error: no input files\n"),
    "AppTimeout": lambda: AppTimeout("App slow exceeded walltime: 1 seconds"),
    "BashAppNoReturn": lambda: BashAppNoReturn("bash app 'g' must return a str"),
    "TaskCancelled": lambda: TaskCancelled(5, "train", "the user pressed stop"),
    "PropagatedException": lambda: PropagatedException(
        [(ValueError("x"), 1)], 2, app_name="p", root_causes=[RootCause(1, "q", "ValueError", "x")]
    ),
    "DependencyError": _dependency_error,
    "JoinError": _join_error,
    "WorkerLost": lambda: errors.WorkerLost(
        "worker died", task_id=3, host="node1", pid=1234, exitcode=-9, signal="SIGKILL",
        stderr_tail="Killed\n",
    ),
    "ManagerLost": lambda: ManagerLost(
        "pool stopped answering", manager_id="m1", host="node2", block_id="0", job_id="77",
        last_heartbeat_age=130.5, job_state="TIMEOUT",
        job_reason="Slurm job 77 reached its time limit (00:01:00)",
    ),
    "RemoteError": lambda: RemoteError("mylib.WeirdError", "it broke", "Traceback ...\n"),
}
# Classes being added alongside this suite: each sample is kept only if the class exists.
_NEWER: dict[str, Callable[[], BaseException]] = {
    "WorkerImportError": lambda: errors.WorkerImportError(
        "No module named 'sklearn'", module="sklearn", python="/usr/bin/python3",
        sys_path=["/opt/lib"], host="node3", task_id=8,
    ),
    "SubmitError": lambda: errors.SubmitError(
        "sbatch refused the job", provider="slurm", command=["sbatch", "job.sh"],
        returncode=1, stdout="", stderr="sbatch: error: invalid partition", script_path="job.sh",
    ),
    "InternalConsistencyError": lambda: errors.InternalConsistencyError(
        "task 3: exec_done -> running is not a legal move"
    ),
    "SchedulerCommandError": lambda: errors.SchedulerCommandError(
        "squeue timed out", command=["squeue"], returncode=None, stdout="", stderr="",
        timed_out=True,
    ),
}
SAMPLES.update({name: make for name, make in _NEWER.items() if hasattr(errors, name)})


def _exception_classes() -> set[str]:
    return {  # by class name: aliases (ParslError) count once
        obj.__name__ for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }


def _comparable(value: Any) -> Any:
    """Exceptions compare by identity; compare them by type and text instead."""
    if isinstance(value, BaseException):
        return (type(value), str(value))
    if isinstance(value, (list, tuple)):
        return type(value)(_comparable(v) for v in value)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


def test_every_exception_class_has_a_sample() -> None:
    assert set(SAMPLES) == _exception_classes()


def test_every_exception_is_a_livedag_error() -> None:
    for name in _exception_classes():
        assert issubclass(getattr(errors, name), LivedagError), name


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_pickle_round_trip_keeps_type_fields_and_cause(
    name: str, dumps: Callable[[Any], bytes]
) -> None:
    exc = SAMPLES[name]()
    cause = OSError(28, "No space left on device")
    exc.__cause__ = cause
    exc.add_note("a note added by the kernel")

    back = pickle.loads(dumps(exc))

    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert back.args == exc.args
    assert _comparable(vars(back)) == _comparable(vars(exc))
    assert type(back.__cause__) is OSError
    assert back.__cause__.errno == 28
    assert back.__notes__ == ["a note added by the kernel"]


def test_parsl_name_for_the_base_class() -> None:
    assert errors.ParslError is LivedagError


def test_bash_exit_failure_names_app_code_and_stderr_tail() -> None:
    exc = BashExitFailure("compile", 2, "line one\ngcc: error: no input files\n")
    assert exc.exitcode == 2
    assert "bash_app compile failed with unix exit code 2" in str(exc)
    assert str(exc).endswith("gcc: error: no input files")
    assert isinstance(exc, AppException)


def test_missing_outputs_lists_the_files() -> None:
    exc = MissingOutputs("the command ended without writing them", ["out/a.csv"])
    assert "out/a.csv" in str(exc)
    assert "the command ended without writing them" in str(exc)


def test_dependency_error_names_task_ancestor_type_and_message() -> None:
    exc = _dependency_error()
    assert str(exc) == (
        "task 7 'fit' was not run: its input from task 3 'load' failed with ValueError: "
        "bad row 17"
    )
    assert exc.root_causes[0].task_id == 3
    assert [tid for _, tid in exc.dependent_exceptions_tids] == [3]


def test_dependency_error_mentions_other_root_causes() -> None:
    roots = [
        RootCause(3, "load", "ValueError", "bad row 17"),
        RootCause(4, "fetch", "TimeoutError", "slow"),
    ]
    exc = DependencyError([(ValueError(), 3), (TimeoutError(), 4)], 8, app_name="merge",
                          root_causes=roots)
    assert str(exc).endswith("(also failed: task 4 (TimeoutError))")


def test_dependency_error_without_root_causes_lists_the_failed_inputs() -> None:
    exc = DependencyError([(ValueError(), 3), (KeyError(), 5)], 8)
    assert str(exc) == "task 8 was not run: its input from 3, 5 failed"


def test_join_error_says_the_joined_task_failed() -> None:
    assert str(_join_error()) == (
        "task 9 'join_all' failed: the joined task 3 'load' failed with ValueError: bad row 17"
    )


def test_task_cancelled_names_task_and_reason() -> None:
    exc = TaskCancelled(5, "train", "the user pressed stop")
    assert str(exc) == "task 5 'train' was cancelled: the user pressed stop"


def test_remote_error_shows_the_original_type() -> None:
    exc = RemoteError("mylib.WeirdError", "it broke\nsecond line", "tb")
    assert errors.exception_name(exc) == "mylib.WeirdError"
    assert errors.exception_message(exc) == "it broke\nsecond line"
    assert errors.exception_name(ValueError("x")) == "ValueError"
    assert errors.exception_message(ValueError("first\nsecond")) == "first"


def test_task_context_describes_where_it_ran() -> None:
    ctx = TaskContext(task_id=4, app_name="fit", try_number=2, executor="htex", host="n1",
                      pid=99, captured_stdout="out", captured_stderr="err")
    assert ctx.describe() == "in task 4 'fit' (try 2, executor 'htex' on n1 pid 99)"
    assert pickle.loads(pickle.dumps(ctx)) == ctx


def test_an_exception_chained_to_a_task_failure_keeps_its_task_context() -> None:
    exc = ValueError("bad")
    ctx = TaskContext(task_id=1, app_name="f", try_number=1, executor="threads")
    exc.livedag_task = ctx  # type: ignore[attr-defined]
    wrapped = SerializationError("x", what="the result")
    wrapped.__cause__ = exc
    assert pickle.loads(pickle.dumps(wrapped)).__cause__.livedag_task == ctx
