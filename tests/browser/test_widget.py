"""The DAG widget in a real JupyterLab, driven through headless Chromium."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const s = w && w.sessionContext;
  const k = s && s.session && s.session.kernel;
  return !!(s && s.isReady && k && k.status === 'idle' && k.connectionStatus === 'connected');
}"""

RUN = """async ([i, wait]) => {
  const app = window.jupyterapp;
  const nb = app.shell.currentWidget;
  nb.content.activeCellIndex = i;
  const done = app.commands.execute('notebook:run-cell');
  if (wait) await done;
}"""

OUTPUTS = """(i) => window.jupyterapp.shell.currentWidget.content.widgets[i]
  .model.outputs.toJSON()"""

APPS = """
import livedag
import os, tempfile, time

class Gate:
    # a file: works across processes (tasks may run in worker processes)
    def __init__(self):
        self.path = tempfile.mktemp(prefix="livedag-gate-")
    def set(self):
        open(self.path, "w").close()
    def wait(self, timeout):
        end = time.time() + timeout
        while not os.path.exists(self.path) and time.time() < end:
            time.sleep(0.05)

gate = Gate()

@livedag.python_app
def slow(x):
    gate.wait(60)
    return x

@livedag.python_app
def boom(x):
    print("stdout from boom", x)
    raise KeyError("missing-key")

@livedag.python_app
def add(a, b):
    return a + b
"""


def open_notebook(page, lab, name, cells):
    lab.write_notebook(name, cells)
    page.goto(lab.url(name))
    page.wait_for_function(READY, timeout=60_000)


def run(page, index, *, wait=True):
    page.evaluate(RUN, [index, wait])
    if wait:
        errors = [o for o in page.evaluate(OUTPUTS, index) if o.get("output_type") == "error"]
        assert not errors, "\n".join(errors[0].get("traceback", []))


def node(page, tid):
    return page.locator(f'.livedag-dag .ld-node[data-id="{tid}"]').first


def wait_state(page, tid, state, timeout=20_000):
    page.wait_for_function(
        """([tid, st]) => {
          const n = document.querySelector(`.livedag-dag .ld-node[data-id="${tid}"]`);
          return n && n.getAttribute('data-state') === st;
        }""", arg=[tid, state], timeout=timeout)


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".livedag-dag").first.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_live_states_failure_detail_and_resubmit(lab, page):
    cells = [
        "%load_ext livedag.jupyter",
        APPS,
        "s = slow(1); b = boom(s); c = add(b, 1)",
        "gate.set(); livedag.wait_for_current_tasks()",
        "@livedag.python_app\ndef boom(x):\n    return x * 100",
        "print('c =', c.result(timeout=20))",
    ]
    open_notebook(page, lab, "live.ipynb", cells)
    run(page, 0)
    page.wait_for_selector(".livedag-dag .ld-canvas")
    run(page, 1)
    run(page, 2)
    # Live: the slow task is running, its dependents pending, while no cell is busy.
    wait_state(page, 0, "running")
    wait_state(page, 1, "pending")
    shot(page, "live-running")
    run(page, 3)
    wait_state(page, 0, "done")
    wait_state(page, 1, "failed")
    # The blocked task is folded into its root cause, with a count.
    cascade = page.locator(".livedag-dag .ld-cascade").first
    cascade.wait_for()
    assert "1 task blocked by task 1 'boom': KeyError" in cascade.inner_text()
    assert not node(page, 2).is_visible()
    # Click the failed node: the panel shows its traceback and stdout (no kernel call).
    node(page, 1).click()
    panel = page.locator(".livedag-dag .ld-panel").first
    page.locator(".livedag-dag .ld-traceback").first.wait_for()
    assert "missing-key" in panel.locator(".ld-traceback").inner_text()
    assert "stdout from boom 1" in panel.locator(".ld-stdout").inner_text()
    assert "KeyError" in panel.locator(".ld-error").inner_text()
    shot(page, "failed-detail")
    # Show the blocked task: its panel links to the root cause, which the link selects.
    page.locator(".livedag-dag .ld-show-blocked").first.check()
    node(page, 2).click()
    assert "dep fail" in panel.locator(".ld-pill").inner_text()
    panel.locator('.ld-root-cause a[data-task="1"]').click()
    assert "boom" in panel.locator(".ld-head").inner_text()
    assert "missing-key" in panel.locator(".ld-traceback").inner_text()
    # Redefine the app, press Resubmit: the node and its dependent finish.
    run(page, 4)
    node(page, 1).click()
    panel.locator(".ld-resubmit").click()
    wait_state(page, 1, "done")
    wait_state(page, 2, "done")
    assert "resubmitted" in page.locator(".livedag-dag .ld-status").first.inner_text()
    run(page, 5)
    text = "".join(o.get("text", "") for o in page.evaluate(OUTPUTS, 5))
    assert "c = 101" in text
    shot(page, "after-resubmit")


def test_click_while_cell_busy(lab, page):
    """Cancel reaches the engine while a cell is busy (kernel subshells; on ipykernel 7.4
    only with the `_reply_subshell_for` workaround in widget.py)."""
    cells = [
        "%load_ext livedag.jupyter",
        APPS,
        "s = slow(1); p = add(s, 1)",
        "t0 = time.time()\nwhile not p.done() and time.time() - t0 < 40:\n    time.sleep(0.1)\n"
        "gate.set()\nprint('cancelled:', p.cancelled())",
    ]
    open_notebook(page, lab, "busy.ipynb", cells)
    for i in range(3):
        run(page, i)
    wait_state(page, 1, "pending")
    run(page, 3, wait=False)  # busy until the task is cancelled
    time.sleep(0.5)
    node(page, 1).click()
    started = time.monotonic()
    page.locator(".livedag-dag .ld-panel .ld-cancel").first.click()
    wait_state(page, 1, "cancelled", timeout=15_000)
    elapsed = time.monotonic() - started
    status = page.locator(".livedag-dag .ld-status").first.inner_text()
    assert "cancelled" in status and "queued" not in status, status
    assert elapsed < 10, elapsed
    page.wait_for_function(READY, timeout=30_000)
    text = "".join(o.get("text", "") for o in page.evaluate(OUTPUTS, 3))
    assert "cancelled: True" in text


def test_5000_task_dag_renders(lab, page):
    cells = [
        "%load_ext livedag.jupyter",
        "import livedag\n@livedag.python_app\ndef inc(x):\n    return x + 1\n"
        "@livedag.python_app\ndef total(*xs):\n    return sum(xs)\n",
        "fs = [inc(i) for i in range(4990)]\n"
        "ts = [total(*fs[k:k + 500]) for k in range(0, 4990, 500)]\n"
        "livedag.wait_for_current_tasks(); print(len(fs) + len(ts))",
    ]
    open_notebook(page, lab, "big.ipynb", cells)
    run(page, 0)
    run(page, 1)
    started = time.monotonic()
    run(page, 2)
    page.wait_for_function(
        """() => [...document.querySelectorAll('.livedag-dag .ld-chip')]
              .some(c => c.textContent.trim() === 'done 5000')""", timeout=60_000)
    elapsed = time.monotonic() - started
    boxes = page.locator(".livedag-dag .ld-agg")
    assert boxes.count() == 2, boxes.count()
    texts = sorted(t or "" for t in boxes.all_text_contents())
    assert any("inc" in t and "4990" in t for t in texts), texts
    shot(page, "dag-5000")
    print(f"5000 tasks ran and were drawn in {elapsed:.1f} s")


def test_widget_after_page_reload(lab, page):
    cells = [
        "%load_ext livedag.jupyter",
        APPS,
        "gate.set(); ok = slow(5); bad = boom(ok); dep = add(bad, 1)\n"
        "livedag.wait_for_current_tasks()",
    ]
    open_notebook(page, lab, "reload.ipynb", cells)
    for i in range(3):
        run(page, i)
    wait_state(page, 1, "failed")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    time.sleep(0.5)
    page.reload()
    page.wait_for_function(READY, timeout=60_000)
    # The kernel still holds the model: the whole view comes back as a snapshot.
    wait_state(page, 0, "done")
    wait_state(page, 1, "failed")
    node(page, 1).click()
    page.locator(".livedag-dag .ld-traceback").first.wait_for()
    legend = page.locator(".livedag-dag .ld-legend").first.inner_text()
    assert "done 1" in legend and "failed 1" in legend and "dep fail 1" in legend
    shot(page, "after-reload")
