"""The three app kinds, their decorator options and the special call keywords, on a real
kernel under every executor."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pytest

import livedag
from livedag import AUTO_LOGNAME, File, bash_app, join_app, python_app
from livedag.errors import (
    AppBadFormatting,
    AppTimeout,
    BashAppNoReturn,
    BashExitFailure,
    ConfigurationError,
    MissingOutputs,
    NoDataFlowKernelError,
)
from livedag.futures import DataFuture

T = 60  # seconds any single result() may take


# ---------------------------------------------------------------- the decorators


def test_python_app_with_and_without_parentheses(dfk: Any) -> None:
    @python_app
    def double(x: int) -> int:
        return 2 * x

    @python_app()
    def triple(x: int) -> int:
        return 3 * x

    assert double(4).result(timeout=T) == 8
    assert triple(double(1)).result(timeout=T) == 6


def test_bash_app_with_and_without_parentheses(dfk: Any, tmp_path: Any) -> None:
    @bash_app
    def write(path: str) -> str:
        return f"echo plain > {path}"

    @bash_app()
    def append(path: str) -> str:
        return f"echo called >> {path}"

    out = str(tmp_path / "out.txt")
    assert write(out).result(timeout=T) == 0
    assert append(out).result(timeout=T) == 0
    with open(out) as f:
        assert f.read() == "plain\ncalled\n"


def test_join_app_with_and_without_parentheses(dfk: Any) -> None:
    @python_app
    def square(x: int) -> int:
        return x * x

    @join_app
    def one(x: int) -> Any:
        return square(x)

    @join_app()
    def many(n: int) -> Any:
        return [square(i) for i in range(n)]

    assert one(5).result(timeout=T) == 25
    assert many(4).result(timeout=T) == [0, 1, 4, 9]


def test_join_app_returning_something_else_fails_saying_what_it_returned(dfk: Any) -> None:
    @join_app
    def bad() -> Any:
        return 42

    with pytest.raises(TypeError) as info:
        bad().result(timeout=T)
    assert str(info.value) == (
        "join app 'bad' must return a Future or a list of Futures, it returned int"
    )


# ---------------------------------------------------------------- executors=


def test_app_runs_on_the_executor_it_names(load_dfk: Any, make_executor: Any,
                                           recorder: Any) -> None:
    first, second = make_executor(), make_executor()
    first.label, second.label = "first", "second"
    kernel = load_dfk(executors=[first, second])
    kernel.bus.subscribe(recorder)

    @python_app(executors=["second"])
    def where() -> int:
        return 1

    fut = where()
    assert fut.result(timeout=T) == 1
    assert kernel.bus.flush(T)
    (created,) = recorder.of(livedag.events.TaskCreated, fut.tid)
    assert created.executor == "second"
    assert fut.tries[0].executor == "second"


def test_unknown_executor_label_names_the_loaded_labels(dfk: Any, executor_label: str) -> None:
    @python_app(executors=["gpu"])
    def nowhere() -> None:
        pass

    with pytest.raises(ConfigurationError) as info:
        nowhere()
    assert str(info.value) == (
        f"app 'nowhere' asks for executor(s) ['gpu'], but the loaded Config has "
        f"[{executor_label!r}]"
    )


# ---------------------------------------------------------------- data_flow_kernel=


def test_data_flow_kernel_binds_an_app_to_an_unloaded_kernel(
    make_executor: Any, run_base: str
) -> None:
    kernel = livedag.DataFlowKernel(livedag.Config(executors=[make_executor()],
                                                   run_dir=run_base))
    try:
        @python_app(data_flow_kernel=kernel)
        def bound(x: int) -> int:
            return x + 1

        with pytest.raises(NoDataFlowKernelError):
            livedag.dfk()  # nothing is loaded: the app must use its own kernel
        fut = bound(1)
        assert fut.result(timeout=T) == 2
        assert fut._dfk is kernel
        assert kernel.task_count == 1
    finally:
        kernel.cleanup()


# ---------------------------------------------------------------- inputs= and outputs=


def test_inputs_are_resolved_before_the_app_runs(dfk: Any) -> None:
    @python_app
    def value(x: int) -> int:
        return x

    @python_app
    def total(inputs: Any = ()) -> int:
        return sum(inputs)

    assert total(inputs=[value(1), value(2), 3]).result(timeout=T) == 6


def test_outputs_become_data_futures_done_when_the_task_succeeds(dfk: Any, tmp_path: Any) -> None:
    @bash_app
    def produce(outputs: Any = ()) -> str:
        return f"echo made > {outputs[0]}"

    @python_app
    def consume(inputs: Any = ()) -> str:
        with open(inputs[0]) as f:
            return f.read().strip()

    path = str(tmp_path / "made.txt")
    fut = produce(outputs=[File(path)])
    (df,) = fut.outputs
    assert isinstance(df, DataFuture)
    assert df.tid == fut.tid and df.filepath == path
    assert consume(inputs=[df]).result(timeout=T) == "made"
    assert fut.done()
    assert df.result(timeout=T) == File(path)


def test_outputs_given_as_paths_are_made_files(dfk: Any, tmp_path: Any) -> None:
    @python_app
    def produce(outputs: Any = ()) -> None:
        with open(outputs[0], "w") as f:
            f.write("x")

    path = str(tmp_path / "p.txt")
    fut = produce(outputs=[path])
    assert fut.outputs[0].result(timeout=T).filepath == path


def test_data_future_fails_with_its_task(dfk: Any, tmp_path: Any) -> None:
    @python_app
    def broken(outputs: Any = ()) -> None:
        raise RuntimeError("no output today")

    fut = broken(outputs=[File(str(tmp_path / "never.txt"))])
    with pytest.raises(RuntimeError, match="no output today"):
        fut.outputs[0].result(timeout=T)


def test_bash_app_default_inputs_are_resolved(dfk: Any, tmp_path: Any) -> None:
    @python_app
    def identity(x: int) -> int:
        return x

    out = str(tmp_path / "sum.txt")

    @bash_app
    # Futures as a parameter default, as in Parsl's own test of this.
    def sum_inputs(inputs: Any = [identity(1), identity(2)], stdout: Any = out) -> str:  # noqa: B006, B008
        return f"echo {sum(inputs)}"

    sum_inputs().result(timeout=T)
    with open(out) as f:
        assert f.read() == "3\n"


# ---------------------------------------------------------------- bash stdout/stderr


def test_bash_stdout_and_stderr_to_paths_append(dfk: Any, tmp_path: Any) -> None:
    @bash_app
    def both(word: str, stdout: Any = None, stderr: Any = None) -> str:
        return f"echo out-{word}; echo err-{word} >&2"

    out, err = str(tmp_path / "o.txt"), str(tmp_path / "sub" / "e.txt")
    for word in ("a", "b"):
        fut = both(word, stdout=out, stderr=err)
        assert fut.result(timeout=T) == 0
    assert (fut.stdout, fut.stderr) == (out, err)
    with open(out) as f:
        assert f.read() == "out-a\nout-b\n"
    with open(err) as f:
        assert f.read() == "err-a\nerr-b\n"


def test_bash_stdout_with_mode_w_truncates(dfk: Any, tmp_path: Any) -> None:
    @bash_app
    def say(word: str, stdout: Any = None) -> str:
        return f"echo {word}"

    out = str(tmp_path / "o.txt")
    say("first", stdout=(out, "w")).result(timeout=T)
    fut = say("second", stdout=(out, "w"))
    fut.result(timeout=T)
    assert fut.stdout == (out, "w")
    with open(out) as f:
        assert f.read() == "second\n"


def test_auto_logname_puts_files_under_the_run_dir(dfk: Any) -> None:
    @bash_app
    def chatty(stdout: Any = AUTO_LOGNAME, stderr: Any = AUTO_LOGNAME) -> str:
        return "echo to-out; echo to-err >&2"

    fut = chatty()
    fut.result(timeout=T)
    logs = os.path.join(dfk.run_dir, "task_logs")
    for stream, text in (("stdout", "to-out\n"), ("stderr", "to-err\n")):
        path = getattr(fut, stream)
        assert isinstance(path, str)
        assert os.path.commonpath([path, logs]) == logs
        assert os.path.basename(path) == f"task_{fut.tid:04d}_chatty.{stream}"
        with open(path) as f:
            assert f.read() == text


def test_label_names_the_auto_logname_file(dfk: Any) -> None:
    @bash_app
    def labelled(stdout: Any = None) -> str:
        return "echo hi"

    fut = labelled(stdout=AUTO_LOGNAME, label="step-one")
    fut.result(timeout=T)
    assert os.path.basename(fut.stdout) == f"task_{fut.tid:04d}_labelled_step-one.stdout"
    assert fut.task_record.label == "step-one"


def test_bash_output_without_a_file_is_captured(dfk: Any) -> None:
    @bash_app
    def chatty() -> str:
        return "echo to-out; echo to-err >&2"

    fut = chatty()
    fut.result(timeout=T)
    assert fut.captured_stdout == "to-out\n"
    assert fut.captured_stderr == "to-err\n"


# ---------------------------------------------------------------- bash failures


def test_bash_defaults_are_usable_in_the_command(dfk: Any, tmp_path: Any) -> None:
    out = str(tmp_path / "greeting.txt")

    @bash_app
    def greet(name: str = "world", stdout: Any = out) -> str:
        return f"echo hello {name}"

    greet().result(timeout=T)
    greet(name="again").result(timeout=T)
    with open(out) as f:
        assert f.read() == "hello world\nhello again\n"


def test_bash_app_returning_a_non_string_is_bash_app_no_return(dfk: Any) -> None:
    @bash_app
    def forgot() -> None:
        pass

    with pytest.raises(BashAppNoReturn, match="bash app 'forgot' must return the command to run "
                                              "as a str, it returned NoneType"):
        forgot().result(timeout=T)


def test_bash_command_that_cannot_be_formatted_is_app_bad_formatting(dfk: Any) -> None:
    @bash_app
    def bad_format(items: list[str]) -> str:
        return f"echo {items[3]}"

    with pytest.raises(AppBadFormatting, match="App formatting failed for app 'bad_format' "
                                               "with IndexError"):
        bad_format(["a"]).result(timeout=T)


def test_nonzero_exit_is_bash_exit_failure_with_code_and_stderr_tail(dfk: Any) -> None:
    @bash_app
    def fails() -> str:
        return "echo progress; echo 'fatal: disk full' >&2; exit 3"

    with pytest.raises(BashExitFailure) as info:
        fails().result(timeout=T)
    assert info.value.exitcode == 3
    assert str(info.value).startswith("bash_app fails failed with unix exit code 3")
    assert str(info.value).endswith("--- last lines of stderr ---\nfatal: disk full")


def test_nonzero_exit_reads_the_tail_from_a_stderr_file(dfk: Any, tmp_path: Any) -> None:
    @bash_app
    def fails(stderr: Any = None) -> str:
        return "for i in $(seq 1 50); do echo line-$i >&2; done; exit 1"

    with pytest.raises(BashExitFailure) as info:
        fails(stderr=str(tmp_path / "err.txt")).result(timeout=T)
    assert info.value.stderr_tail.splitlines()[-1] == "line-50"
    assert "line-1\n" not in info.value.stderr_tail  # a tail, not the whole file


def test_missing_outputs_names_the_files(dfk: Any, tmp_path: Any) -> None:
    @bash_app
    def lazy(outputs: Any = ()) -> str:
        return "true"

    missing = str(tmp_path / "never-written.csv")
    fut = lazy(outputs=[File(missing)])
    with pytest.raises(MissingOutputs) as info:
        fut.result(timeout=T)
    assert [os.fspath(o) for o in info.value.outputs] == [missing]
    assert missing in str(info.value)


# ---------------------------------------------------------------- walltime


def test_python_walltime_stops_the_app_with_app_timeout(dfk: Any) -> None:
    @python_app
    def forever() -> None:
        import time

        for _ in range(2400):  # 120 s, in steps the interpreter can interrupt
            time.sleep(0.05)

    with pytest.raises(AppTimeout, match=re.escape("App forever exceeded walltime: 0.2 seconds")):
        forever(walltime=0.2).result(timeout=T)


def test_python_walltime_leaves_a_quick_app_alone(dfk: Any) -> None:
    @python_app
    def quick(x: int) -> int:
        return x

    assert quick(3, walltime=30).result(timeout=T) == 3


def test_bash_walltime_kills_the_command_with_app_timeout(dfk: Any) -> None:
    @bash_app
    def forever() -> str:
        return "sleep 120"

    message = "bash app 'forever' exceeded walltime: 0.3 seconds"
    with pytest.raises(AppTimeout, match=re.escape(message)):
        forever(walltime=0.3).result(timeout=T)


# ---------------------------------------------------------------- resource specification


def test_resource_specification_reaches_an_app_that_declares_it(dfk: Any) -> None:
    spec = {"cores": 2, "memory": 1000, "disk": 10}

    @python_app
    def declares(parsl_resource_specification: Any = None) -> Any:
        return parsl_resource_specification

    @python_app
    def ignores() -> str:
        return "ran"

    fut = declares(parsl_resource_specification=spec)
    assert fut.result(timeout=T) == spec
    assert fut.task_record.resource_spec == spec
    assert ignores(parsl_resource_specification=spec).result(timeout=T) == "ran"


@pytest.mark.parametrize("kind", [python_app, bash_app])
def test_special_keywords_not_declared_do_not_reach_the_function(
    dfk: Any, kind: Callable[..., Any]
) -> None:
    @kind
    def strict(x: int) -> Any:
        return "true" if kind is bash_app else x

    fut = strict(1, walltime=30, label="l", parsl_resource_specification={"cores": 1})
    assert fut.result(timeout=T) == (0 if kind is bash_app else 1)


# ---------------------------------------------------------------- apps that call apps
# Thread-only (on the ZMQ executor an app called in a worker says to use a join_app).


@python_app
def plus_one(x: int) -> int:
    return x + 1


@python_app
def calls_and_waits(x: int) -> int:
    return plus_one(x).result(timeout=T) * 10  # type: ignore[no-any-return]


def test_apps_that_call_apps_and_wait_do_not_take_every_thread(load_one_thread_dfk: Any) -> None:
    """Each waiting task lends its thread: with one thread, ten tasks that each wait for
    a task they called all finish (with Parsl's thread pool, the first one deadlocks)."""
    load_one_thread_dfk()
    futs = [calls_and_waits(i) for i in range(10)]
    assert [f.result(timeout=T) for f in futs] == [10 * (i + 1) for i in range(10)]
