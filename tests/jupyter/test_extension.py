"""The extension in a real IPython kernel (jupyter_client drives it; no browser)."""

from __future__ import annotations

import os
import queue
import re
import time
import uuid

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("anywidget")

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
pytestmark = pytest.mark.timeout(90)


class Kernel:
    """A running ipykernel and a client; `run(code)` returns its outputs once idle."""

    def __init__(self, cwd: str) -> None:
        self.km = jupyter_client.KernelManager(kernel_name="python3")
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)
        self.km.start_kernel(cwd=cwd, env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.comms: dict[str, dict] = {}  # comm id -> open data
        self.updates: list[dict] = []

    def run(self, code: str, *, cell_id: str | None = None, timeout: float = 30) -> list[dict]:
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        msg = self.kc.session.msg("execute_request", content,
                                  metadata={"cellId": cell_id or uuid.uuid4().hex})
        self.kc.shell_channel.send(msg)
        return self._collect(msg["header"]["msg_id"], timeout)

    def _collect(self, msg_id: str, timeout: float) -> list[dict]:
        outputs: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no idle after {timeout}s; outputs: {outputs}") from None
            kind = m["header"]["msg_type"]
            if kind == "comm_open":
                self.comms[m["content"]["comm_id"]] = m["content"]["data"]
            elif kind == "comm_msg":
                self.updates.append(m["content"])
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            if kind == "status" and m["content"]["execution_state"] == "idle":
                return outputs
            if kind in ("stream", "display_data", "execute_result", "error",
                        "update_display_data"):
                outputs.append({"type": kind, **m["content"]})

    def send_comm(self, comm_id: str, data: dict) -> None:
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.kc.shell_channel.send(msg)

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


@pytest.fixture
def kernel(tmp_path):
    k = Kernel(str(tmp_path))
    try:
        yield k
    finally:
        k.stop()


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tb_text(outputs) -> str:
    err = next(o for o in outputs if o["type"] == "error")
    return ANSI.sub("", "\n".join(err["traceback"]))


def text_of(outputs):
    parts = []
    for o in outputs:
        if o["type"] == "stream":
            parts.append(o["text"])
        elif o["type"] in ("execute_result", "display_data"):
            parts.append(o["data"].get("text/plain", ""))
        elif o["type"] == "error":
            parts.append("\n".join(o["traceback"]))
    return "\n".join(parts)


def ok(outputs):
    errors = [o for o in outputs if o["type"] == "error"]
    assert not errors, "\n".join(errors[0]["traceback"])
    return text_of(outputs)


GATE = """
import os, tempfile, time

class Gate:  # a file: tasks may run in worker processes
    def __init__(self):
        self.path = tempfile.mktemp(prefix="livedag-gate-")
    def set(self):
        open(self.path, "w").close()
    def wait(self, timeout):
        end = time.time() + timeout
        while not os.path.exists(self.path) and time.time() < end:
            time.sleep(0.05)

gate = Gate()
"""

SETUP = """
import livedag
@livedag.python_app
def inc(x):
    return x + 1

@livedag.python_app
def boom(x):
    import sys
    print("working on", x)
    print("about to fail", file=sys.stderr)
    raise KeyError(x)
"""


def test_load_ext_shows_widget_tags_cells_and_unloads(kernel):
    out = kernel.run("%load_ext livedag.jupyter")
    shown = [o for o in out if o["type"] == "display_data"]
    assert shown, out
    data = shown[0]["data"]
    assert WIDGET_MIME in data and "image/png" in data
    assert data["text/plain"].startswith("livedag: 0 tasks")
    assert any(d.get("state", {}).get("_model_name") == "AnyModel"
               for d in kernel.comms.values())
    ok(kernel.run(SETUP))
    out = kernel.run("f = inc(1); f.result()", cell_id="cell-A")
    ok(out)
    # The run ended: the PNG and text beside the widget view are refreshed in place.
    (refresh,) = [o for o in out if o["type"] == "update_display_data"]
    assert refresh["transient"]["display_id"] == shown[0]["transient"]["display_id"]
    assert refresh["data"]["text/plain"].startswith("livedag: 1 task (1 done)")
    assert refresh["data"]["image/png"]
    text = ok(kernel.run("print(f.task_record.origin)"))
    assert "cell:cell-A:" in text
    # The widget has folded it (no browser needed to read the view model).
    text = ok(kernel.run("from livedag.jupyter import extension as e\n"
                         "w = e.get_widget(); w.flush()\n"
                         "print(w.graph.nodes[f.tid].state, w.graph.nodes[f.tid].group)"))
    assert "done cell:cell-A:" in text
    # Re-running the cell supersedes its earlier tasks.
    ok(kernel.run("g = inc(2); g.result()", cell_id="cell-A"))
    text = ok(kernel.run("w.flush(); n = w.graph.nodes\n"
                         "print(n[f.tid].superseded, n[g.tid].superseded)"))
    assert "True False" in text
    text = ok(kernel.run("%dag summary"))
    assert "livedag: 2 tasks" in text
    ok(kernel.run("%unload_ext livedag.jupyter"))
    text = ok(kernel.run("from livedag import dataflow\nprint(dataflow.current_or_none(), w.comm)"))
    assert "None None" in text


def test_task_error_renders_task_traceback(kernel):
    ok(kernel.run("%load_ext livedag.jupyter"))
    ok(kernel.run(SETUP))
    out = kernel.run("boom(3).result()")
    err = [o for o in out if o["type"] == "error"]
    assert err and err[0]["ename"] == "KeyError"
    tb = tb_text(out)
    assert "livedag task failed in task 0 'boom' (try 1" in tb
    assert "raise KeyError(x)" in tb  # the task's own frame
    assert "about to fail" in tb and "working on 3" in tb  # stderr and stdout tails
    assert "concurrent/futures" not in tb and "livedag/dataflow.py" not in tb
    # A dependency failure names the root cause and the next step.
    out = kernel.run("inc(boom(4)).result()")
    tb = tb_text(out)
    assert "DependencyError" in tb and "The root cause, in task" in tb
    assert "raise KeyError(x)" in tb and "livedag.resubmit(" in tb
    # Other errors are untouched.
    out = kernel.run("1/0")
    tb = tb_text(out)
    assert "ZeroDivisionError" in tb and "livedag task" not in tb


def test_resubmit_and_cancel_from_the_widget_comm(kernel):
    """The browser's messages (here sent by hand on the widget's comm) reach the engine."""
    ok(kernel.run("%load_ext livedag.jupyter"))
    ok(kernel.run(SETUP + "\n" + GATE +
                  "@livedag.python_app\ndef wait():\n    gate.wait(20)\n    return 1\n"))
    (comm_id,) = [c for c, d in kernel.comms.items()
                  if d.get("state", {}).get("_model_name") == "AnyModel"]
    ok(kernel.run("a = boom(1); b = inc(a)\n"
                  "try:\n    b.result()\nexcept Exception:\n    pass\n"))
    # Redefine the app so that it works, then press Resubmit for the failed task.
    ok(kernel.run("@livedag.python_app\ndef boom(x):\n    return x * 10\n"))
    kernel.send_comm(comm_id, {"method": "custom",
                               "content": {"type": "resubmit", "id": 0, "cmd": "c1"}})
    text = ok(kernel.run("import time\nfor _ in range(200):\n"
                         "    if len(a.tries) == 2: break\n    time.sleep(0.05)\n"
                         "print(b.result(timeout=10), a.result())"))
    assert "11 10" in text
    # Cancel a task that waits for a busy input.
    ok(kernel.run("blocker = wait(); pending = inc(blocker)"))
    kernel.send_comm(comm_id, {"method": "custom",
                               "content": {"type": "cancel", "id": 3, "cmd": "c2"}})
    text = ok(kernel.run("import time\nfor _ in range(100):\n"
                         "    if pending.done(): break\n    time.sleep(0.05)\n"
                         "gate.set()\nprint(pending.cancelled(), pending.task_record.id)"))
    assert "True 3" in text
    # Both commands were answered to the browser in a diff.
    ok(kernel.run("w = __import__('livedag.jupyter.extension').jupyter.extension.get_widget()\n"
                  "w.flush()"))
    acks = [a for u in kernel.updates
            for a in u["data"].get("state", {}).get("diff", {}).get("acks", [])]
    assert {a["cmd"]: a["ok"] for a in acks} == {"c1": True, "c2": True}, acks


def test_load_ext_livedag_then_users_own_config_takes_over(kernel):
    # `%load_ext livedag` (the package name, not livedag.jupyter) loads a default kernel;
    # the user's own livedag.load(config) in a later cell replaces it while it is unused,
    # and the widget follows the new kernel.
    out = kernel.run("%load_ext livedag")
    assert any(o["type"] == "display_data" and WIDGET_MIME in o["data"] for o in out), out
    out = kernel.run(
        "import livedag\n"
        "from livedag.executors import ThreadPoolExecutor\n"
        "k = livedag.load(livedag.Config(executors=[ThreadPoolExecutor(label='mine')]))\n"
        "@livedag.python_app\n"
        "def f(x):\n    return x * 2\n"
        "print(f(21).result(timeout=20), f(1).task_record.executor, k is livedag.dfk())"
    )
    text = "".join(o.get("text", "") for o in out if o["type"] == "stream")
    assert "42 mine True" in text, out
    assert any(o["type"] == "display_data" and WIDGET_MIME in o["data"] for o in out), out
    # Once the user's kernel has run tasks, loading another is the usual error.
    out = kernel.run("livedag.load(livedag.Config())")
    assert any(o["type"] == "error" and "already been loaded" in o["evalue"] for o in out), out


def test_interrupting_a_cell_leaves_the_zmq_executor_and_its_tasks_running(kernel):
    # Jupyter interrupts by sending SIGINT to the kernel's whole process group: the
    # interchange is in it. The cell stops; the executor, its running task and the
    # results already computed do not.
    ok(kernel.run("%load_ext livedag.jupyter"))
    ok(kernel.run(GATE + SETUP + """
@livedag.python_app
def wait_for(gate):
    gate.wait(60)
    return "finished"

before = inc(1).result(timeout=30)
slow = wait_for(gate)
print(livedag.dfk().executors[slow.task_record.executor].label, flush=True)
"""))
    msg = kernel.kc.session.msg("execute_request", {
        "code": "slow.result()", "silent": False, "store_history": True,
        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    kernel.kc.shell_channel.send(msg)
    time.sleep(1.0)  # the cell waits in result()
    kernel.km.interrupt_kernel()
    out = kernel._collect(msg["header"]["msg_id"], 30)
    assert any(o["type"] == "error" and o["ename"] == "KeyboardInterrupt" for o in out), out
    text = ok(kernel.run(
        "ix = livedag.dfk().executors[slow.task_record.executor].interchange_proc\n"
        "from livedag.monitoring import recorder_of\n"
        "rec = recorder_of(livedag.dfk())\n"
        "print('alive:', ix.poll() is None, not rec.lost, slow.done())\n"
        "gate.set()\n"
        "print(slow.result(timeout=30), before, inc(41).result(timeout=30))\n"
        "print('recorded:', rec.flush(10), [t.state.value for t in livedag.history()])"))
    assert "alive: True True False" in text
    assert "finished 2 42" in text
    # The run record (on by default in a notebook) kept recording through the interrupt.
    assert "recorded: True ['exec_done', 'exec_done', 'exec_done']" in text
