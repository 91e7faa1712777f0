"""The app decorators, and what runs on the worker side of a bash app or a timed app.

    @python_app def f(x): ...      f(1) ──> dfk.submit(app, args, kwargs) ──> AppFuture
    @bash_app   def g(x): return "echo {x}"       (runs in the worker through run_bash)
    @join_app   def h(x): return f(x)             (returns futures; the task ends with theirs)

`run_bash` and `run_with_walltime` are module-level functions, so a worker imports them by
name; only the user's function travels by value.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import os
import selectors
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from livedag.errors import (
    AppBadFormatting,
    AppTimeout,
    BadStdStreamFile,
    BashAppNoReturn,
    BashExitFailure,
    MissingOutputs,
)

if TYPE_CHECKING:
    from livedag.dataflow import DataFlowKernel
    from livedag.futures import AppFuture

# Parsl's value: `stdout=AUTO_LOGNAME` asks for a file named after the task in the run dir.
AUTO_LOGNAME = -1

STDERR_TAIL_LINES = 20

# Keyword arguments with a meaning to livedag itself (as in Parsl).
SPECIAL_KWARGS = frozenset(
    {"stdout", "stderr", "walltime", "inputs", "outputs", "parsl_resource_specification", "label"}
)


def _accepted_names(params: Any) -> frozenset[str] | None:
    """Names the function accepts as keywords; None when it takes **kwargs."""
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(params)


def call_kwargs(func: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Drop the special keywords a function does not declare (Parsl would pass them and
    fail with a TypeError; only what the function asks for reaches it)."""
    try:
        accepts = _accepted_names(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return kwargs
    if accepts is None:
        return kwargs
    return {k: v for k, v in kwargs.items() if k in accepts or k not in SPECIAL_KWARGS}


class AppBase:
    """An app: a function turned into something that returns a future when called."""

    kind = "python"
    __name__: str  # set from the function by functools.update_wrapper

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        data_flow_kernel: DataFlowKernel | None = None,
        executors: list[str] | Literal["all"] = "all",
        cache: bool = False,
        ignore_for_cache: Sequence[str] | None = None,
    ) -> None:
        self.func = func
        self.data_flow_kernel = data_flow_kernel
        self.executors = executors
        self.cache = cache
        self.ignore_for_cache = tuple(ignore_for_cache or ())
        functools.update_wrapper(self, func)
        # Parameter defaults merged into every call (as Parsl): all of them for a bash app,
        # which formats its command with them; the special ones for other apps.
        params = inspect.signature(func).parameters
        self.kwargs = {
            name: p.default
            for name, p in params.items()
            if p.default is not inspect.Parameter.empty
            and (self.kind == "bash" or name in SPECIAL_KWARGS)
        }
        self.accepts = _accepted_names(params)

    def __call__(self, *args: Any, **kwargs: Any) -> AppFuture:
        from livedag.dataflow import current_dfk

        dfk = self.data_flow_kernel or current_dfk()
        return dfk.submit(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__name__}>"


class PythonApp(AppBase):
    kind = "python"


class BashApp(AppBase):
    kind = "bash"


class JoinApp(AppBase):
    kind = "join"


def _decorator(cls: type[AppBase]) -> Callable[..., Any]:
    def decorator(
        function: Callable[..., Any] | None = None,
        data_flow_kernel: DataFlowKernel | None = None,
        cache: bool = False,
        executors: list[str] | Literal["all"] = "all",
        ignore_for_cache: Sequence[str] | None = None,
    ) -> Any:
        def wrap(f: Callable[..., Any]) -> AppBase:
            return cls(f, data_flow_kernel=data_flow_kernel, executors=executors, cache=cache,
                       ignore_for_cache=ignore_for_cache)

        return wrap(function) if function is not None else wrap

    decorator.__name__ = cls.kind + "_app"
    decorator.__doc__ = f"Turn a function into a {cls.kind} app (usable with or without ())."
    return decorator


python_app = _decorator(PythonApp)
bash_app = _decorator(BashApp)


def join_app(
    function: Callable[..., Any] | None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    ignore_for_cache: Sequence[str] | None = None,
) -> Any:
    """Turn a function that calls apps and returns their future(s) into an app."""

    def wrap(f: Callable[..., Any]) -> JoinApp:
        return JoinApp(f, data_flow_kernel=data_flow_kernel, cache=cache,
                       ignore_for_cache=ignore_for_cache)

    return wrap(function) if function is not None else wrap


# ---------------------------------------------------------------- worker side: walltime


def _async_raise(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )


def run_with_walltime(walltime: float, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a python app, raising AppTimeout in it if it runs past `walltime` seconds.

    The exception is delivered between Python bytecodes (as in Parsl): a long C call
    finishes first.
    """
    me = threading.get_ident()
    done = threading.Event()
    fired = threading.Event()

    def expire() -> None:
        if not done.is_set():
            fired.set()
            _async_raise(me, _WalltimeExpired)

    timer = threading.Timer(walltime, expire)
    timer.daemon = True
    timer.start()
    try:
        return func(*args, **kwargs)
    except _WalltimeExpired:
        raise AppTimeout(f"App {func.__name__} exceeded walltime: {walltime} seconds") from None
    finally:
        done.set()
        timer.cancel()


class _WalltimeExpired(BaseException):
    """Raised inside the app's thread; turned into AppTimeout at the app's boundary."""


# ---------------------------------------------------------------- worker side: bash


def run_bash(func: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Render a bash app's command, run it, and check its exit code and outputs.

    Output the command writes to the app's own stdout/stderr (no file given) is forwarded,
    as it comes, to this task's captured output; a failure carries the stderr tail.
    """
    app_name = func.__name__
    walltime = kwargs.get("walltime")
    try:
        command = func(*args, **call_kwargs(func, kwargs))
    except (IndexError, KeyError, ValueError, AttributeError) as exc:
        raise AppBadFormatting(
            f"App formatting failed for app {app_name!r} with {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(command, str):
        raise BashAppNoReturn(
            f"bash app {app_name!r} must return the command to run as a str, "
            f"it returned {type(command).__name__}: {command!r:.80}"
        )
    out_target = _open_stream(kwargs.get("stdout"), "stdout")
    err_target = _open_stream(kwargs.get("stderr"), "stderr")
    try:
        # As a context manager, Popen closes its pipes also when the walltime expires.
        with subprocess.Popen(
            command,
            shell=True,
            executable="/bin/bash",
            close_fds=False,
            stdout=out_target if out_target is not None else subprocess.PIPE,
            stderr=err_target if err_target is not None else subprocess.PIPE,
        ) as proc:
            stderr_tail = _pump(proc, walltime, app_name)
    finally:
        for f in (out_target, err_target):
            if f is not None:
                f.close()
    if proc.returncode != 0:
        if err_target is not None:
            stderr_tail = _file_tail(err_target.name)
        raise BashExitFailure(app_name, proc.returncode, stderr_tail)
    _check_outputs(kwargs.get("outputs", ()))
    return proc.returncode


def _open_stream(spec: Any, name: str) -> Any:
    if spec is None:
        return None
    from livedag.futures import File

    if isinstance(spec, File):
        path, mode = spec.filepath, "w"
    elif isinstance(spec, (str, os.PathLike)):
        path, mode = os.fspath(spec), "a+"
    elif isinstance(spec, tuple) and len(spec) == 2:
        path, mode = os.fspath(spec[0]), spec[1]
    else:
        raise BadStdStreamFile(
            f"{name}={spec!r}: expected a path or a (path, mode) tuple, e.g. ('out.txt', 'w')"
        )
    try:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        return open(path, mode)  # closed in run_bash
    except Exception as exc:
        raise BadStdStreamFile(f"cannot open {name} file {path!r} (mode {mode!r}): {exc}") from exc


def _pump(proc: subprocess.Popen[bytes], walltime: float | None, app_name: str) -> str:
    """Forward the command's piped output as it comes; return the tail of its stderr."""
    import time

    sel = selectors.DefaultSelector()
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        if pipe is not None:
            os.set_blocking(pipe.fileno(), False)
            sel.register(pipe, selectors.EVENT_READ, name)
    tail: list[str] = []
    deadline = None if walltime is None else time.monotonic() + float(walltime)
    while sel.get_map():
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = sel.select(timeout)
        if not ready and deadline is not None and time.monotonic() >= deadline:
            proc.kill()
            proc.wait()
            raise AppTimeout(f"bash app {app_name!r} exceeded walltime: {walltime} seconds")
        for key, _ in ready:
            data = key.fileobj.read(65536)  # type: ignore[union-attr]
            if not data:
                sel.unregister(key.fileobj)
                continue
            text = data.decode(errors="replace")
            streams[key.data].write(text)
            if key.data == "stderr":
                tail = (tail + text.splitlines(keepends=True))[-STDERR_TAIL_LINES:]
    sel.close()
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AppTimeout(f"bash app {app_name!r} exceeded walltime: {walltime} seconds") from None
    return "".join(tail)


def _file_tail(path: str, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            return b"".join(f.readlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""


def _check_outputs(outputs: Any) -> None:
    missing = [o for o in outputs if not os.path.exists(os.fspath(o))]
    if missing:
        raise MissingOutputs("the command ended without writing them", missing)
