"""The kernel side of `livedag run`: what the notebook's tasks did, recorded where they run.

    `livedag run` (another process)              this module, inside the notebook's kernel
      silent execution: install() ───────────> on_load(attach) + the loaded DataFlowKernel
                                                 attach: a _Recorder subscribes to dfk.bus
                                                   (states, final failures, the Graph view)
                                                 post_run_cell: keep the last cell's error
      silent execution: report(picture=True) ──> flush each recorder's subscription, then
        <── application/vnd.livedag.report+json ─ counts per state, failed tasks (with the
                                                 captured output of their try), the root
                                                 causes of the cell's error, DAG pictures

Everything here runs in the kernel and needs only livedag and IPython (networkx and
matplotlib for the picture, when present). livedag.jupyter.headless reads the report.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

REPORT_MIME = "application/vnd.livedag.report+json"
TAIL_LINES = 20
MAX_FAILURES = 50  # failed tasks detailed per kernel (every root cause of the cell's error too)


@dataclasses.dataclass
class TaskFailure:
    """A task whose own code (or its worker, or its arguments) failed."""

    task_id: int
    app: str
    exc_type: str
    message: str
    traceback: str = ""
    try_number: int = 0
    executor: str = ""
    host: str = ""
    pid: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    kernel: int = 0  # which DataFlowKernel of the notebook (0: the first loaded)

    def describe(self) -> str:
        where = f", host {self.host}" if self.host else ""
        where += f", pid {self.pid}" if self.pid else ""
        return (f"task {self.task_id} '{self.app}' (try {self.try_number}, "
                f"executor '{self.executor}'{where}) failed with {self.exc_type}: {self.message}")


class _Recorder:
    """One DataFlowKernel's tasks as `livedag run` reports them (a bus subscriber)."""

    def __init__(self, dfk: Any, index: int) -> None:
        from livedag import events as ev

        self.ev = ev
        self.dfk = dfk
        self.index = index
        self.lock = threading.Lock()
        self.states: dict[int, str] = {}
        self.apps: dict[int, str] = {}
        self.failed: dict[int, Any] = {}  # task id -> its last final TaskFailed event
        self.graph = _new_graph()
        self.sub = dfk.bus.subscribe(self, name="livedag-run")
        # Tasks made before we subscribed (a kernel loaded before `install`).
        with self.lock:
            for r in list(dfk.tasks.values()):
                self.states[r.id], self.apps[r.id] = r.state.value, r.app_name
            if self.graph is not None and dfk.tasks:
                from livedag.jupyter.graph import seed_events

                self.graph.apply(seed_events(list(dfk.tasks.values())))

    def __call__(self, batch: Sequence[Any]) -> None:
        ev = self.ev
        with self.lock:
            for e in batch:
                kind = type(e)
                if kind is ev.TaskCreated:
                    self.states[e.task_id], self.apps[e.task_id] = "pending", e.app_name
                elif kind is ev.TaskStateChanged:
                    self.states[e.task_id] = e.state.value
                elif kind is ev.TaskFailed and not e.will_retry:
                    self.failed[e.task_id] = e
                elif kind is ev.TaskCancelled:
                    self.states[e.task_id] = "cancelled"
                elif kind is ev.TaskResubmitted:
                    for tid in (e.task_id, *e.rearmed):
                        self.failed.pop(tid, None)
            if self.graph is not None:
                self.graph.apply(batch)

    def failure(self, tid: int) -> TaskFailure | None:
        e = self.failed.get(tid)
        if e is None or e.state.value != "failed":
            return None
        record = self.dfk.tasks.get(tid)
        ctx = getattr(getattr(record, "exception", None), "livedag_task", None)
        return TaskFailure(
            task_id=tid, app=self.apps.get(tid, "?"), exc_type=e.exc_type, message=e.message,
            traceback=e.traceback, try_number=e.try_number,
            executor=record.executor if record is not None else "",
            host=getattr(ctx, "host", ""), pid=getattr(ctx, "pid", None),
            stdout_tail=tail_lines(getattr(ctx, "captured_stdout", "")),
            stderr_tail=tail_lines(getattr(ctx, "captured_stderr", "")), kernel=self.index)

    def report(self, wanted: set[int]) -> dict[str, Any]:
        self.sub.flush(5.0)
        with self.lock:
            counts: dict[str, int] = {}
            for state in self.states.values():
                counts[state] = counts.get(state, 0) + 1
            own = [t for t, e in self.failed.items() if e.state.value == "failed"]
            ids = sorted(set(own[-MAX_FAILURES:]) | (wanted & set(own)))
            failures = [f for f in map(self.failure, ids) if f is not None]
            unfinished = [f"task {t} '{self.apps.get(t, '?')}' {s}" for t, s in
                          self.states.items() if s in ("pending", "launched", "running",
                                                       "joining")][:20]
        return {"run_dir": self.dfk.run_dir, "counts": counts,
                "failures": [dataclasses.asdict(f) for f in failures], "unfinished": unfinished}

    def picture(self) -> dict[str, str] | None:
        if self.graph is None:
            return None
        with self.lock:
            if not self.graph.nodes:
                return None
            from livedag.jupyter.render import png_bytes

            png = base64.b64encode(png_bytes(self.graph)).decode("ascii")
            return {"png": png, "summary": self.graph.summary()}


def _new_graph() -> Any:
    try:
        from livedag.jupyter.graph import Graph
    except ImportError:  # networkx missing: the report works, without a picture
        return None
    return Graph()


def tail_lines(text: str, lines: int = TAIL_LINES) -> str:
    tail = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return tail[-4000:]


@dataclasses.dataclass
class _KernelSide:
    recorders: list[_Recorder] = dataclasses.field(default_factory=list)
    cell_error: BaseException | None = None
    remove_hook: Callable[[], None] | None = None


_kernel_side: _KernelSide | None = None


def install() -> str:
    """In the notebook's kernel: record the tasks of every DataFlowKernel from now on."""
    global _kernel_side
    if _kernel_side is not None:
        return "already installed"
    from livedag import dataflow

    state = _kernel_side = _KernelSide()

    def attach(dfk: Any) -> None:
        if all(r.dfk is not dfk for r in state.recorders):
            state.recorders.append(_Recorder(dfk, len(state.recorders)))

    state.remove_hook = dataflow.on_load(attach)
    current = dataflow.current_or_none()
    if current is not None:
        attach(current)
    shell = _shell()
    if shell is not None:
        shell.events.register("post_run_cell", _post_run_cell)
    return "installed"


def _shell() -> Any:
    try:
        ipython: Any = importlib.import_module("IPython")
    except ImportError:
        return None
    return ipython.get_ipython()


def _cell_names(traceback: str) -> str:
    """`File "/tmp/ipykernel_1/123.py"` -> `Cell In[4]`, as IPython shows a cell's frames.
    (IPython's private CachingCompiler._filename_map; without it the text stays as is.)"""
    compiler = getattr(_shell(), "compile", None)
    for filename, count in dict(getattr(compiler, "_filename_map", None) or {}).items():
        traceback = traceback.replace(f'File "{filename}"', f"Cell In[{count}]")
    return traceback


def _post_run_cell(result: Any) -> None:
    # Silent executions (ours) run no cell hooks, so this is always the user's last cell.
    if _kernel_side is not None:
        _kernel_side.cell_error = result.error_in_exec or result.error_before_exec


class _Report:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {REPORT_MIME: self.data, "text/plain": "<livedag run report>"}


def report(*, picture: bool = False) -> _Report:
    """In the notebook's kernel: the tasks so far and the last cell's error, as one bundle."""
    from livedag.errors import PropagatedException, exception_name

    state = _kernel_side or _KernelSide()
    cell_error: dict[str, Any] | None = None
    wanted: set[int] = set()
    exc = state.cell_error
    if exc is not None:
        ctx = getattr(exc, "livedag_task", None)
        roots = [r.task_id for r in exc.root_causes] if isinstance(
            exc, PropagatedException) else ([ctx.task_id] if ctx is not None else [])
        wanted = set(roots)
        cell_error = {"exc_type": exception_name(exc), "root_cause_ids": roots}
    kernels = [r.report(wanted) for r in state.recorders]
    for k in kernels:
        for f in k["failures"]:
            f["traceback"] = _cell_names(f["traceback"])
    pictures: list[dict[str, str]] = []
    if picture:
        for r in state.recorders[-3:]:
            try:
                pic = r.picture()
            except Exception as err:  # a broken picture must not cost the report
                pic = {"png": "", "summary": f"(no DAG picture: {type(err).__name__}: {err})"}
            if pic is not None:
                pictures.append(pic)
    return _Report({"kernels": kernels, "cell_error": cell_error, "pictures": pictures})
