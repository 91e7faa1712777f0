"""Notebooks run headless through nbclient; what their tasks did is reported from the kernel.

    livedag run / run_notebook(path)                      the notebook's kernel (ipykernel)
      read, clear outputs, inject parameters
      start the kernel ──user_expressions {install()}───> headless_kernel: a bus subscriber
                                                          per DataFlowKernel (states,
                                                          failures, the DAG view); the
                                                          last cell's error
      each code cell: execute_cell ──────────────────────> the user's code
         one progress line per cell
      after a failing cell, or at the end ─{report()}────> flush the subscribers, then one
         <──────────────────── application/vnd.livedag.report+json ── (counts, failures, PNG)
      NotebookResult: cells, tasks per state, failures with their root-cause tasks
      write NAME.out.ipynb (+ a last cell: the DAG picture and the summary); JUnit XML

The kernel is asked with *silent* executions carrying `user_expressions`: they add no cell,
no output, no history entry and run no IPython cell hooks, so the written notebook and its
`In [n]` numbers are the user's alone. The kernel side (headless_kernel) needs only livedag
and IPython; nbclient and nbformat are imported here, when a notebook is run.
"""

from __future__ import annotations

import ast
import atexit
import dataclasses
import importlib
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from livedag.jupyter.headless_kernel import REPORT_MIME, TaskFailure, tail_lines

SUMMARY_TAG = "livedag-summary"
TIMEOUT_ENAME = "CellTimeoutError"
_KERNEL_MODULE = "__import__('importlib').import_module('livedag.jupyter.headless_kernel')"


# ================================================================ records
@dataclasses.dataclass
class CellRun:
    index: int  # position in the executed notebook, from 1
    execution_count: int | None
    status: str  # ok | raised (tagged raises-exception) | failed | timeout | kernel died
    seconds: float
    source: str = ""
    ename: str = ""  # the error it raised


@dataclasses.dataclass
class CellFailure:
    """The cell that stopped the notebook, and the tasks behind its error."""

    index: int
    execution_count: int | None
    source: str
    ename: str
    evalue: str
    traceback: str = ""  # the cell's traceback as the notebook shows it, without colours
    root_causes: list[TaskFailure] = dataclasses.field(default_factory=list)
    unfinished: list[str] = dataclasses.field(default_factory=list)  # at a timeout


@dataclasses.dataclass
class NotebookResult:
    path: Path
    output_path: Path | None
    cells: list[CellRun]
    counts: dict[str, int]  # tasks per state (Parsl's state names), every kernel together
    task_failures: list[TaskFailure]  # failed tasks, also those the notebook caught
    failure: CellFailure | None = None
    error: str = ""  # the run itself could not proceed (setup, a dead kernel)
    seconds: float = 0.0
    pictures: list[dict[str, str]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.error

    def report(self) -> str:
        """What went wrong, in words (empty when the notebook succeeded)."""
        return format_failure(self)


# ================================================================ the kernel side

# ================================================================ the side that runs notebooks
def parse_parameter(text: str) -> tuple[str, Any]:
    """NAME=VALUE: the value as a Python literal when it is one, else the string."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ValueError(f"--parameter {text!r}: expected NAME=VALUE with NAME a Python name")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = raw
    return name, value


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> str:
    """Papermill's convention: a cell tagged `injected-parameters` after the cell tagged
    `parameters` (at the top when there is none); an earlier injection is replaced.
    Returns a note for the user, or ''."""
    nbformat = _nbformat()
    cells = nb.cells
    cells[:] = [c for c in cells if "injected-parameters" not in _tags(c)]
    if not parameters:
        return ""
    lines = ["# Parameters (injected by livedag run)"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["injected-parameters"]
    where = next((i for i, c in enumerate(cells) if "parameters" in _tags(c)), None)
    cells.insert(0 if where is None else where + 1, cell)
    if where is None:
        return "no cell is tagged 'parameters': the parameters were injected at the top"
    known = _assigned_names(cells[where].source)
    unknown = [n for n in parameters if n not in known]
    if unknown:
        return f"the 'parameters' cell does not set {', '.join(unknown)} (injected anyway)"
    return ""


def _nbformat() -> Any:
    return importlib.import_module("nbformat")  # untyped: keep it Any


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _assigned_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {t.id for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)}


def default_output_path(path: Path, output_dir: Path | None = None) -> Path:
    """NAME.out.ipynb beside the input; DIR/NAME.ipynb with an output directory (.out
    again if that would be the input itself)."""
    if output_dir is None:
        return path.with_name(path.stem + ".out.ipynb")
    target = output_dir / path.name
    if target.resolve() == path.resolve():
        return path.with_name(path.stem + ".out.ipynb")
    return target


def run_notebook(
    path: str | Path,
    *,
    output: str | Path | bool | None = None,
    timeout: float | None = None,
    parameters: dict[str, Any] | None = None,
    kernel_name: str = "",
    progress: Callable[[str], None] | None = None,
) -> NotebookResult:
    """Execute a notebook in a fresh kernel and report what its cells and tasks did.

    `output`: where to write the executed notebook (None: NAME.out.ipynb beside it; False:
    not written). `timeout`: seconds per cell (None: no limit). A failing cell stops the
    run, as in Jupyter's "Run All". The kernel starts in the notebook's directory.
    """
    from jupyter_core.utils import run_sync

    nbformat = _nbformat()
    path = Path(path)
    say = progress or (lambda _line: None)
    nb = nbformat.read(path, as_version=4)
    nb.cells[:] = [c for c in nb.cells if SUMMARY_TAG not in _tags(c)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    note = inject_parameters(nb, parameters or {})
    if note:
        say(f"  note: {note}")
    result = NotebookResult(path, None, [], {}, [])
    started = time.monotonic()
    run_sync(_execute)(nb, path, result, timeout, kernel_name, say)
    result.seconds = time.monotonic() - started
    _add_summary_cell(nb, result)
    if output is not False:
        target = default_output_path(path) if output in (None, True) else Path(output)  # type: ignore[arg-type]
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        result.output_path = target
    return result


async def _execute(nb: Any, path: Path, result: NotebookResult, timeout: float | None,
                   kernel_name: str, say: Callable[[str], None]) -> None:
    from nbclient import NotebookClient

    limit = None if timeout is None or timeout <= 0 else max(1, round(timeout))
    client = NotebookClient(
        nb, timeout=limit, kernel_name=kernel_name, interrupt_on_timeout=True,
        error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": f"the cell ran longer than "
                          f"{limit} s (--timeout) and was interrupted", "traceback": []},
        resources={"metadata": {"path": str(path.parent.resolve())}},
        config=_kernel_config(),
    )
    code_cells = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    # The kernel process's own output (ipykernel's log, a crash's last words) goes to a file:
    # quoted when the kernel dies, otherwise dropped (cells' outputs travel over ZMQ).
    with tempfile.TemporaryFile() as log:
        try:
            async with client.async_setup_kernel(stdout=log, stderr=log):
                await _run_cells(client, nb, result, code_cells, say)
        except Exception as exc:  # e.g. no such kernel, or it died before it answered
            result.error = f"the kernel failed: {type(exc).__name__}: {exc}"
            # nbclient 0.11 leaves its atexit cleanup registered when the kernel client
            # fails to start; at exit it would assert on the manager it already dropped
            # (the AssertionError of jupyter/nbclient#126).
            atexit.unregister(client._cleanup_kernel)
        log.seek(0)
        last_words = tail_lines(log.read().decode("utf-8", "replace"), 30)
        if result.failure is not None and result.failure.ename == "DeadKernelError":
            result.failure.traceback = last_words
        elif result.error and last_words:
            result.error += "\n  --- the kernel's last output ---\n" + _indent(last_words)
    client.set_widgets_metadata()


async def _run_cells(client: Any, nb: Any, result: NotebookResult, code_cells: int,
                     say: Callable[[str], None]) -> None:
    from jupyter_core.utils import ensure_async
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    info = await client.async_wait_for_reply(await ensure_async(client.kc.kernel_info()))
    if info is not None and "language_info" in info["content"]:  # as nbclient's execute()
        nb.metadata["language_info"] = info["content"]["language_info"]
    try:
        await _ask(client, {"setup": f"{_KERNEL_MODULE}.install()"}, 60)
    except _KernelAnswer as exc:
        result.error = (f"livedag run could not set up the kernel ({exc}); does the "
                        f"kernel's Python have livedag installed?")
        return
    done = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        done += 1
        t0 = time.monotonic()
        status, error = "ok", None  # type: str, Exception | None
        try:
            await client.async_execute_cell(
                cell, index, execution_count=client.code_cells_executed + 1)
        except CellExecutionError as exc:
            status = "timeout" if exc.ename == TIMEOUT_ENAME else "failed"
            error = exc
        except DeadKernelError as exc:
            status, error = "kernel died", exc
            exc.args = (_exit_status(client),)
        raised = [o.get("ename", "") for o in cell.get("outputs", [])
                  if o.get("output_type") == "error"]
        if status == "ok" and raised:  # a cell tagged raises-exception, as it meant to
            status = "raised"
        run = CellRun(index + 1, cell.get("execution_count"), status,
                      time.monotonic() - t0, cell.source, raised[0] if raised else "")
        result.cells.append(run)
        say(_progress_line(run, done, code_cells))
        if error is not None:
            result.failure = _cell_failure(run, cell, error)
            break
    if result.failure is None or result.failure.ename != "DeadKernelError":
        try:
            answer = await _ask(client, {"report": f"{_KERNEL_MODULE}.report(picture=True)"},
                                30)
            _read_report(answer["report"], result)
        except _KernelAnswer as exc:
            say(f"  note: no task report from the kernel ({exc})")


def _exit_status(client: Any) -> str:
    """How the kernel process ended, in words (jupyter_client's local provisioner)."""
    import signal

    process = getattr(getattr(client.km, "provisioner", None), "process", None)
    code = process.poll() if process is not None else None
    if code is None:
        return "its exit status is unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _kernel_config() -> Any:
    """CurveZMQ between us and the kernel when jupyter_client (>= 8.10) and the kernelspec
    offer it: other local users cannot read or drive the kernel's sockets."""
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve"):
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    return Config()


class _KernelAnswer(Exception):
    """The kernel did not answer a livedag question (in time, or at all)."""


async def _ask(client: Any, expressions: dict[str, str], timeout: float) -> dict[str, Any]:
    """Evaluate expressions in the kernel with a silent execution (no cell, no hooks)."""
    from queue import Empty

    from jupyter_core.utils import ensure_async

    kc = client.kc
    msg_id = kc.execute("", silent=True, store_history=False, user_expressions=expressions,
                        stop_on_error=False)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _KernelAnswer(f"no answer within {timeout:g} s")
        try:
            msg = await ensure_async(kc.shell_channel.get_msg(timeout=min(left, 1.0)))
        except Empty:
            if not await ensure_async(kc.is_alive()):
                raise _KernelAnswer("the kernel died") from None
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue  # e.g. the late reply of a cell interrupted after its timeout
        values = msg["content"].get("user_expressions", {})
        out = {}
        for key in expressions:
            value = values.get(key, {})
            if value.get("status") != "ok":
                raise _KernelAnswer(f"{value.get('ename', 'no reply')}: {value.get('evalue', '')}")
            data = value.get("data", {})
            out[key] = data.get(REPORT_MIME, data.get("text/plain"))
        return out


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _cell_failure(run: CellRun, cell: Any, error: Exception) -> CellFailure:
    ename = getattr(error, "ename", type(error).__name__)
    evalue = getattr(error, "evalue", str(error))
    if ename == "DeadKernelError":
        evalue = (f"the kernel died while running this cell ({error}): a crash in native "
                  "code, os._exit(), or the out-of-memory killer")
    tb = ""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
    return CellFailure(run.index, run.execution_count, cell.source, ename, evalue, tb)


def _read_report(data: Any, result: NotebookResult) -> None:
    if not isinstance(data, dict):
        return
    by_key: dict[tuple[int, int], TaskFailure] = {}
    unfinished: list[str] = []
    for k in data.get("kernels", []):
        for state, count in k.get("counts", {}).items():
            result.counts[state] = result.counts.get(state, 0) + int(count)
        for f in k.get("failures", []):
            tf = TaskFailure(**f)
            by_key[(tf.kernel, tf.task_id)] = tf
        unfinished = k.get("unfinished", unfinished)
    result.task_failures = list(by_key.values())
    result.pictures = list(data.get("pictures", []))
    cell_error = data.get("cell_error")
    failure = result.failure
    if failure is None:
        return
    if failure.ename == TIMEOUT_ENAME:
        failure.unfinished = list(unfinished)
    if cell_error:
        # Task ids are per DataFlowKernel: the newest kernel that has the id is meant.
        for tid in cell_error.get("root_cause_ids", []):
            match = [f for f in result.task_failures if f.task_id == tid]
            if match:
                failure.root_causes.append(max(match, key=lambda f: f.kernel))


# ================================================================ words
def _first_line(source: str, width: int = 60) -> str:
    line = next((s for s in source.splitlines() if s.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def _progress_line(run: CellRun, done: int, total: int) -> str:
    count = f"In [{run.execution_count}]" if run.execution_count else "In [ ]"
    line = (f"  [{done:>2}/{total}] cell {run.index:<3} {count:<8} {run.status:<11} "
            f"{run.seconds:6.2f} s  {_first_line(run.source)}")
    return line + (f"  ({run.ename}, expected)" if run.status == "raised" else "")


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


def format_failure(result: NotebookResult) -> str:
    if result.ok:
        return ""
    lines = [f"FAILED {result.path}"]
    if result.error:
        lines.append(f"  {result.error}")
    f = result.failure
    if f is None:
        return "\n".join(lines)
    count = f" (In [{f.execution_count}])" if f.execution_count else ""
    lines.append(f"  cell {f.index}{count} raised {f.ename}: {f.evalue}")
    lines += ["  --- the cell ---", _indent(f.source)]
    if f.ename == TIMEOUT_ENAME:
        lines.append("  tasks not finished when the cell was interrupted:")
        lines += [f"    {u}" for u in f.unfinished] or ["    (none)"]
    for root in f.root_causes:
        lines.append(f"  --- root cause: {root.describe()}")
        if root.traceback.strip():
            # The engine's note at the end ("[livedag] in task ...", the stderr tail) says
            # what the lines around it say already.
            tb = root.traceback.rstrip("\n")
            cut = tb.rfind("\n[livedag] in task ")
            lines += [f"  --- traceback of task {root.task_id} (where it ran) ---",
                      _indent(tb[:cut] if cut > 0 else tb)]
        for name, tail in (("stderr", root.stderr_tail), ("stdout", root.stdout_tail)):
            if tail.strip():
                lines += [f"  --- last lines task {root.task_id} wrote to {name} ---",
                          _indent(tail)]
    if not f.root_causes and f.traceback and f.ename != TIMEOUT_ENAME:
        what = "the kernel's last output" if f.ename == "DeadKernelError" else "the traceback"
        lines += [f"  --- {what} ---", _indent(f.traceback)]
    if f.root_causes:
        first = f.root_causes[0].task_id
        lines.append(f"  next step: fix task {first}'s app, then run the notebook again "
                     f"(in Jupyter: livedag.resubmit({first}) re-runs it and its dependents)")
    return "\n".join(lines)


SUMMARY_STATES = ("exec_done", "memo_done", "failed", "dep_fail", "cancelled")


def format_summary(results: Sequence[NotebookResult]) -> str:
    """One row per notebook: its result and how many tasks ended in each state."""
    states = list(SUMMARY_STATES)
    for r in results:
        states += [s for s in r.counts if s not in states]
    name_w = max([len(str(r.path)) for r in results] + [8])
    head = f"{'notebook':<{name_w}}  {'result':<11} {'cells':>5} {'time':>7}  "
    head += " ".join(f"{s:>9}" for s in states)
    rows = [head]
    for r in results:
        verdict = "ok" if r.ok else (r.failure.ename if r.failure and r.failure.ename
                                     in (TIMEOUT_ENAME, "DeadKernelError") else "FAILED")
        verdict = {TIMEOUT_ENAME: "TIMEOUT", "DeadKernelError": "KERNEL DIED"}.get(verdict,
                                                                                   verdict)
        row = f"{r.path!s:<{name_w}}  {verdict:<11} {len(r.cells):>5} {r.seconds:6.1f}s  "
        row += " ".join(f"{r.counts.get(s, 0):>9}" for s in states)
        rows.append(row)
    return "\n".join(rows)


def _add_summary_cell(nb: Any, result: NotebookResult) -> None:
    """The DAG picture and the summary as the last cell of the written notebook."""
    nbformat = _nbformat()
    if not result.pictures and not result.counts and result.ok:
        return
    cell = nbformat.v4.new_code_cell("# The tasks of this run (cell added by `livedag run`)")
    cell.metadata["tags"] = [SUMMARY_TAG]
    for pic in result.pictures:
        data = {"text/plain": pic.get("summary", "")}
        if pic.get("png"):
            data["image/png"] = pic["png"]
        cell.outputs.append(nbformat.v4.new_output("display_data", data=data))
    text = format_summary([result]) + "\n"
    if not result.ok:
        text += "\n" + result.report() + "\n"
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))
    nb.cells.append(cell)


def write_junit(results: Sequence[NotebookResult], path: str | Path) -> None:
    """One testcase per notebook; a failing one carries the failure report."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name="livedag run", tests=str(len(results)),
                       failures=str(sum(not r.ok for r in results)), errors="0",
                       time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="livedag.notebooks",
                             name=str(r.path), time=f"{r.seconds:.3f}")
        if not r.ok:
            f = r.failure
            message = f"cell {f.index}: {f.ename}: {f.evalue}" if f else r.error
            failure = ET.SubElement(case, "failure", message=message.splitlines()[0][:500],
                                    type=f.ename if f else "LivedagRunError")
            failure.text = r.report()
        out = ET.SubElement(case, "system-out")
        out.text = format_summary([r])
    root = ET.Element("testsuites")
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
