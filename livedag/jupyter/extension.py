"""`%load_ext livedag.jupyter`: the glue between IPython and the engine.

    %load_ext ──> a kernel (the loaded one, or a default local Config) + its DagWidget shown
    pre_run_cell(info) ──> dfk.task_origin = "cell:<cell id>:<execution count>"
                           widget.cell_started(origin)  (earlier runs of the cell: superseded)
    post_run_cell ──────> when the run has ended: refresh the PNG + text beside the widget
    a task's exception reaches the cell ──> custom exception handler: the task's own
                           traceback, its name, id, try, host and stderr tail
    %dag [summary]       show the widget (or print the summary)
    %unload_ext / kernel exit ──> handlers removed, widgets closed, a default kernel cleaned up

The engine knows nothing of this module: everything goes through `dfk.task_origin`, the
event bus and the public `resubmit`/`cancel`.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import types
from typing import Any

from livedag.jupyter.graph import make_origin

logger = logging.getLogger("livedag.jupyter")

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HIDDEN_DIRS = (_PKG_DIR + os.sep, os.path.dirname(os.__file__) + os.sep + "concurrent" + os.sep,
                os.path.dirname(os.__file__) + os.sep + "threading.py")


@dataclasses.dataclass
class _Loaded:
    shell: Any
    dfk: Any = None
    owns_dfk: bool = False
    widgets: dict[int, Any] = dataclasses.field(default_factory=dict)  # id(dfk) -> widget
    handles: list[tuple[Any, Any, int]] = dataclasses.field(default_factory=list)
    previous_exc: tuple[Any, Any] = ((), None)
    remove_hook: Any = None
    origin: str | None = None


_loaded: _Loaded | None = None


# ---------------------------------------------------------------- load / unload
def default_config() -> Any:
    """What `%load_ext livedag` loads when no kernel is loaded yet: worker processes on
    this machine (the ZMQ executor), so that a crashing or memory-hungry task cannot take
    the notebook's kernel down with it, and C code's output is captured per task too; and
    the run record, so that a kernel restart keeps every task, traceback and output
    (livedag.history(), livedag.jupyter.show(run_dir=...))."""
    import livedag
    from livedag.executors.htex import HighThroughputExecutor
    from livedag.providers import LocalProvider

    return livedag.Config(executors=[
        HighThroughputExecutor(label="local", provider=LocalProvider(init_blocks=1)),
    ], monitoring=True)


def load_ipython_extension(ipython: Any) -> None:
    global _loaded
    if _loaded is not None:
        return
    import livedag

    state = _Loaded(ipython)
    state.dfk = _loaded_dfk()
    if state.dfk is None:
        state.dfk = livedag.load(default_config())
        state.dfk.replaceable = True  # the user's own livedag.load(config) takes over
        state.owns_dfk = True
    from livedag.dataflow import on_load

    state.remove_hook = on_load(_on_new_kernel)
    state.previous_exc = (ipython.custom_exceptions, getattr(ipython, "CustomTB", None))
    ipython.set_custom_exc((Exception,), _custom_exc)
    ipython.events.register("pre_run_cell", _pre_run_cell)
    ipython.events.register("post_run_cell", _post_run_cell)
    ipython.register_magic_function(_dag_magic, "line", "dag")
    atexit.register(_at_exit)
    _loaded = state
    show()


def unload_ipython_extension(ipython: Any) -> None:
    global _loaded
    state, _loaded = _loaded, None
    if state is None:
        return
    for name, fn in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
        with contextlib.suppress(ValueError):
            ipython.events.unregister(name, fn)
    exc_types, handler = state.previous_exc
    if handler is not None and exc_types:
        ipython.custom_exceptions, ipython.CustomTB = exc_types, handler
    else:
        ipython.set_custom_exc((), None)
    ipython.magics_manager.magics["line"].pop("dag", None)
    atexit.unregister(_at_exit)
    if state.remove_hook is not None:
        state.remove_hook()
    _shutdown(state)


def _on_new_kernel(dfk: Any) -> None:
    """The user loaded a kernel of their own (after %load_ext): follow it and show its DAG
    in the cell that loaded it."""
    state = _loaded
    if state is None or dfk is state.dfk:
        return
    old = state.widgets.pop(id(state.dfk), None) if state.dfk is not None else None
    if old is not None:
        with contextlib.suppress(Exception):
            old.close()
    state.dfk, state.owns_dfk = dfk, False
    dfk.task_origin = getattr(state, "origin", None)
    show(dfk)


def _shutdown(state: _Loaded) -> None:
    for widget in list(state.widgets.values()):
        try:
            widget.close()
        except Exception:
            logger.exception("closing the livedag widget failed")
    state.widgets.clear()
    dfk = state.dfk
    if state.owns_dfk and dfk is not None:
        import livedag

        dfk.cleanup()
        if _loaded_dfk() in (None, dfk):
            livedag.clear()
    elif dfk is not None:
        dfk.task_origin = None


def _at_exit() -> None:
    state = _loaded
    if state is not None:
        _shutdown(state)


# ---------------------------------------------------------------- the widget
def _loaded_dfk() -> Any:
    """The loaded DataFlowKernel, or None."""
    import livedag
    from livedag.errors import NoDataFlowKernelError

    try:
        return livedag.dfk()
    except NoDataFlowKernelError:
        return None


def current_dfk() -> Any:
    dfk = _loaded_dfk()
    if dfk is None:
        raise RuntimeError("no livedag kernel is loaded: call livedag.load() or "
                           "%load_ext livedag.jupyter first")
    return dfk


def get_widget(dfk: Any = None) -> Any:
    """The DagWidget of `dfk` (default: the loaded kernel); made on first use."""
    from livedag.jupyter.widget import DagWidget

    dfk = dfk if dfk is not None else current_dfk()
    widgets = _loaded.widgets if _loaded is not None else _orphans
    widget = widgets.get(id(dfk))
    if widget is None or widget.comm is None or widget.dfk is not dfk:
        widget = DagWidget(dfk)
        widgets[id(dfk)] = widget
    return widget


_orphans: dict[int, Any] = {}  # widgets made without the extension loaded


def show(dfk: Any = None, *, run_dir: str | None = None) -> None:
    """Display the live DAG (the widget, plus a PNG and a text summary for static views).

    With `run_dir`, the DAG of a recorded run (Config(monitoring=True)), read-only: a run
    dir, or a directory of runs for its newest, e.g. "runinfo" after a kernel restart."""
    from IPython.display import display

    if run_dir is not None:
        from livedag.monitoring import RecordedRun

        dfk = RecordedRun(run_dir)
    widget = get_widget(dfk)
    handle = display(widget, display_id=True)  # type: ignore[no-untyped-call]
    if _loaded is not None and handle is not None:
        _loaded.handles.append((handle, widget, widget.settled().version))


# ---------------------------------------------------------------- cell hooks
def _pre_run_cell(info: Any) -> None:
    state = _loaded
    if state is None:
        return
    dfk = _loaded_dfk()
    if dfk is None:
        return
    origin = make_origin(getattr(info, "cell_id", None), state.shell.execution_count)
    state.origin = origin
    dfk.task_origin = origin
    widget = state.widgets.get(id(dfk))
    if widget is not None:
        widget.cell_started(origin)


def _post_run_cell(_result: Any) -> None:
    """At the end of a run (every task of a shown widget has ended), refresh the PNG and
    text beside the widget so that saved and headless notebooks show the final picture."""
    state = _loaded
    if state is None:
        return
    kept = []
    for handle, widget, last_version in state.handles:
        if widget.comm is None:
            continue
        version = last_version
        graph = widget.settled(timeout=1.0)
        running = any(n.state not in ("done", "failed", "dep_fail", "cached", "cancelled")
                      for n in list(graph.nodes.values()))
        if not running and graph.version != version:
            try:
                handle.update(widget)
            except Exception:
                logger.exception("refreshing the livedag picture failed")
            version = graph.version
        kept.append((handle, widget, version))
    state.handles = kept


def _dag_magic(line: str) -> None:
    """%dag: show the live DAG of the loaded kernel. `%dag summary` prints a text summary."""
    if line.strip() == "summary":
        widget = get_widget()
        widget.flush(2.0)
        print(widget.graph.summary())
        return
    show()


# ---------------------------------------------------------------- task errors in a cell
def _custom_exc(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
                tb_offset: int | None = None) -> None:
    # IPython 8 ignores what a custom handler returns: the handler shows the error itself.
    try:
        lines = task_traceback(shell, etype, value, tb, tb_offset)
    except Exception:  # never lose the user's error to a bug of ours
        logger.exception("rendering a task error failed")
        lines = None
    if lines is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    else:
        shell._showtraceback(etype, value, lines)


def task_traceback(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
                   tb_offset: int | None = None) -> list[str] | None:
    """The structured traceback of a task's exception as IPython shows it in a cell: the
    task's own frames (livedag's and concurrent.futures' hidden), its name, id, try, host
    and the tail of its stderr. None for an exception that is not a task's."""
    from livedag.errors import PropagatedException

    ctx = getattr(value, "livedag_task", None)
    if ctx is None and not isinstance(value, PropagatedException):
        return None
    red, bold, reset = "\x1b[31m", "\x1b[1m", "\x1b[0m"
    stb: list[str] = []
    if isinstance(value, PropagatedException):
        root = value.__cause__
        root_ctx = getattr(root, "livedag_task", None)
        stb.append(f"{red}{bold}{type(value).__name__}{reset}: {value}")
        if root is not None:
            stb.append(f"{bold}The root cause, in task "
                       f"{root_ctx.task_id if root_ctx else '?'}:{reset}")
            stb += _task_part(shell, type(root), root, root.__traceback__, root_ctx)
        ids = [str(r.task_id) for r in value.root_causes]
        if ids:
            stb.append(f"{bold}Next step:{reset} fix it, then livedag.resubmit({ids[0]}) or "
                       "the Resubmit button in the DAG widget (dependents run again)")
        return stb
    stb += _task_part(shell, etype, value, tb, ctx)
    return stb


def _task_part(shell: Any, etype: Any, value: BaseException, tb: Any, ctx: Any) -> list[str]:
    red, bold, reset = "\x1b[31m", "\x1b[1m", "\x1b[0m"
    out: list[str] = []
    if ctx is not None:
        out.append(f"{red}{bold}livedag task failed{reset} {ctx.describe()}")
    # The kernel's own note repeats what this rendering shows better (task, tails).
    notes = getattr(value, "__notes__", None)
    if notes:
        value.__notes__ = [n for n in notes if not n.startswith("[livedag]")]
    try:
        out += _frames_part(shell, etype, value, tb, ctx)
    finally:
        if notes:
            value.__notes__ = notes
    if ctx is not None:
        for name, text in (("stderr", ctx.captured_stderr), ("stdout", ctx.captured_stdout)):
            if text.strip():
                tail = "\n".join(text.rstrip("\n").splitlines()[-10:])
                out.append(f"{bold}last lines task {ctx.task_id} wrote to {name}:{reset}\n{tail}")
    return out


def _frames_part(shell: Any, etype: Any, value: BaseException, tb: Any, ctx: Any) -> list[str]:
    out: list[str] = []
    remote = getattr(value, "traceback_text", "")
    if remote:  # a RemoteError: the worker's traceback, as text
        out.append(remote.rstrip("\n"))
    elif ctx is not None and ctx.pid not in (None, os.getpid()):
        # Frames rebuilt from another process (tblib): IPython 9 reads their line from the
        # instruction offset, which points at the `def` line there; Python's own
        # formatting reads tb_lineno and shows the line that raised.
        import traceback

        text = "".join(traceback.format_exception(etype, value, _user_frames(tb)))
        out.append(text.rstrip("\n"))
    else:
        # The hidden frames are ours, not the user's; the exception's own chain stays.
        saved = value.__traceback__
        try:
            out += shell.InteractiveTB.structured_traceback(etype, value, _user_frames(tb),
                                                            tb_offset=0)
        finally:
            value.__traceback__ = saved
    return out


def _user_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    frames = []
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith(_HIDDEN_DIRS) and f"{os.sep}IPython{os.sep}" not in filename:
            frames.append((tb.tb_frame, tb.tb_lasti, tb.tb_lineno))
        tb = tb.tb_next
    out: types.TracebackType | None = None
    for frame, lasti, lineno in reversed(frames):
        out = types.TracebackType(out, frame, lasti, lineno)
    return out
