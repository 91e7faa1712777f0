"""The DAG widget in a real JupyterLab, driven through headless Chromium."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.browser.harness import OUTPUTS, READY, big_dag_cells, open_notebook, outputs_text, run

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

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


def node(page, tid):
    return page.locator(f'.livedag-dag .ld-node[data-id="{tid}"]').first


def wait_state(page, tid, state, timeout=20_000):
    page.wait_for_function(
        """([tid, st]) => {
          const n = document.querySelector(`.livedag-dag .ld-node[data-id="${tid}"]`);
          return n && n.getAttribute('data-state') === st;
        }""", arg=[tid, state], timeout=timeout)


def cancel_task_1_while_cell_3_runs(page):
    """Run cells 1-3 (task 1 pending), start cell 4 without waiting, then click Cancel on
    task 1 while that cell keeps the kernel busy. The time of the click."""
    for i in range(3):
        run(page, i)
    wait_state(page, 1, "pending")
    run(page, 3, wait=False)
    time.sleep(0.5)
    node(page, 1).click()
    started = time.monotonic()
    page.locator(".livedag-dag .ld-panel .ld-cancel").first.click()
    return started


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
    # What the try used, measured in the ZMQ worker (it came before the failure).
    tries = panel.locator(".ld-tries")
    assert [h.strip() for h in tries.locator("th").all_inner_texts()] == [
        "try", "launched", "ran", "cpu", "peak mem", "outcome"]
    assert re.fullmatch(r"[\d.]+ (ms|s)", tries.locator("td.ld-cpu").inner_text())
    assert re.fullmatch(r"\d+ MiB", tries.locator("td.ld-peak").inner_text())
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
    started = cancel_task_1_while_cell_3_runs(page)  # busy until the task is cancelled
    wait_state(page, 1, "cancelled", timeout=15_000)
    elapsed = time.monotonic() - started
    status = page.locator(".livedag-dag .ld-status").first.inner_text()
    assert "cancelled" in status and "queued" not in status, status
    assert elapsed < 10, elapsed
    page.wait_for_function(READY, timeout=30_000)
    text = "".join(o.get("text", "") for o in page.evaluate(OUTPUTS, 3))
    assert "cancelled: True" in text


def test_click_queued_while_a_kernel_without_subshells_is_busy(lab, page):
    """Where the kernel cannot take a click yet (no kernel subshells: ipykernel 6, other
    kernels), the widget says "queued: kernel busy" and the click still happens when the
    cell ends."""
    root = str(Path(__file__).resolve().parents[2])
    lab.add_kernelspec("python3-no-subshells",
                       [sys.executable, "-m", "tests.browser.no_subshell_kernel",
                        "-f", "{connection_file}"],
                       env={"PYTHONPATH": os.pathsep.join(
                           p for p in (root, os.environ.get("PYTHONPATH", "")) if p)})
    release = lab.root / "queued.release"
    cells = [
        "%load_ext livedag.jupyter",
        APPS,
        "s = slow(1); p = add(s, 1)",
        f"while not os.path.exists({str(release)!r}):\n    time.sleep(0.05)\n"
        "print('busy cell ended; p cancelled:', p.cancelled())",
        "print('after: p cancelled:', p.cancelled()); gate.set()",
    ]
    open_notebook(page, lab, "queued.ipynb", cells, kernel="python3-no-subshells")
    features = page.evaluate("""async () => {
      const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
      return (await k.info).supported_features || [];
    }""")
    assert "kernel subshells" not in features, features
    cancel_task_1_while_cell_3_runs(page)  # busy until the test releases it
    status = page.locator(".livedag-dag .ld-status").first
    page.wait_for_function(
        """() => document.querySelector('.livedag-dag .ld-status').textContent
              === 'queued: kernel busy (cancelling task 1)'""", timeout=10_000)
    assert status.get_attribute("data-kind") == "queued"
    time.sleep(1.0)  # the click really waits: the task is still pending
    assert node(page, 1).get_attribute("data-state") == "pending"
    shot(page, "queued-kernel-busy")
    release.touch()
    wait_state(page, 1, "cancelled", timeout=15_000)
    page.wait_for_function(
        """() => document.querySelector('.livedag-dag .ld-status').textContent
              === 'task 1 cancelled'""", timeout=10_000)
    page.wait_for_function(READY, timeout=30_000)
    # The busy cell saw no cancel: it ran after the cell, before the next one.
    assert "busy cell ended; p cancelled: False" in outputs_text(page, 3)
    run(page, 4)
    assert "after: p cancelled: True" in outputs_text(page, 4)


def bar(page, tid):
    return page.locator(f'.livedag-dag .ld-tl-bar[data-task="{tid}"]').first


def test_timeline_shares_the_selection_with_the_dag(lab, page):
    cells = [
        "%load_ext livedag.jupyter",
        APPS + "\n@livedag.python_app\ndef nap(i):\n    time.sleep(0.2 + 0.05 * i)\n"
        "    return i\n",
        "ns = [nap(i) for i in range(6)]\ntotal = add(ns[0], ns[1])\nb = boom(ns[2])\n"
        "s = slow(1)\n[n.result() for n in ns], total.result(), b.exception()",
        "gate.set(); s.result()",
    ]
    open_notebook(page, lab, "timeline.ipynb", cells)
    for i in range(3):
        run(page, i)
    wait_state(page, 8, "running")
    page.locator(".livedag-dag .ld-tab-timeline").click()
    bars = page.locator(".livedag-dag .ld-tl-bar")
    page.wait_for_function(
        "() => document.querySelectorAll('.livedag-dag .ld-tl-bar').length === 9")
    assert not page.locator(".livedag-dag .ld-canvas").first.is_visible()
    states = {bars.nth(i).get_attribute("data-task"): bars.nth(i).get_attribute("data-state")
              for i in range(bars.count())}
    assert states == {**{str(i): "done" for i in range(7)}, "7": "failed", "8": "running"}
    assert "ld-failed" in bar(page, 7).get_attribute("class")
    caption = page.locator(".livedag-dag .ld-tl-caption").first.inner_text()
    assert "9 runs in" in caption and "worker process" in caption, caption
    # The running try grows with the clock.
    width = float(bar(page, 8).get_attribute("width"))
    page.wait_for_function(
        "([w]) => Number(document.querySelector('.livedag-dag .ld-tl-bar[data-task=\"8\"]')"
        ".getAttribute('width')) > w + 20", arg=[width], timeout=10_000)
    # A bar selects its task: the panel shows it, and so does the DAG.
    bar(page, 3).click()
    panel = page.locator(".livedag-dag .ld-panel").first
    assert "nap" in panel.locator(".ld-head").inner_text()
    assert "task 3" in panel.locator(".ld-head").inner_text()
    assert "ld-selected" in bar(page, 3).get_attribute("class")
    shot(page, "timeline")
    page.locator(".livedag-dag .ld-tab-dag").click()
    assert "ld-selected" in node(page, 3).get_attribute("class")
    # A node selected in the DAG is the bar highlighted in the timeline.
    node(page, 6).click()
    assert "add" in panel.locator(".ld-head").inner_text()
    page.locator(".livedag-dag .ld-tab-timeline").click()
    assert "ld-selected" in bar(page, 6).get_attribute("class")
    assert "ld-selected" not in bar(page, 3).get_attribute("class")
    run(page, 3)
    page.wait_for_function(
        """() => document.querySelector('.livedag-dag .ld-tl-bar[data-task="8"]')
              .getAttribute('data-state') === 'done'""")
    shot(page, "timeline-done")


def legend_counts(page):
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
      '.livedag-dag .ld-legend .ld-chip')].map(c => [c.getAttribute('data-state'),
      Number(c.textContent.trim().split(' ').pop())]))""")


def test_10000_task_dag_aggregated_all_done_and_drill_down(lab, page):
    """The DAG of bench/widget_browser.py (which times it): drawn as boxes while nothing has
    run, counts reach all-done, a box opens into its tasks and a task's detail shows."""
    gate = str(lab.root / "dag10k.gate")
    open_notebook(page, lab, "big.ipynb", big_dag_cells(10_000, gate))
    run(page, 0)
    run(page, 1)
    run(page, 2)
    assert "submitted 10000 tasks" in outputs_text(page, 2)
    page.wait_for_function(
        """() => [...document.querySelectorAll('.livedag-dag .ld-agg')].length === 3
              && [...document.querySelectorAll('.livedag-dag .ld-chip')]
                 .some(c => c.textContent.trim() === 'pending 5000')""", timeout=30_000)
    counts = legend_counts(page)
    assert sum(counts.values()) == 10_000 and "done" not in counts, counts
    assert page.locator(".livedag-dag .ld-node").count() == 0
    texts = sorted(page.locator(".livedag-dag .ld-agg").all_text_contents())
    assert [t.split(" · ")[0] for t in texts] == ["double", "inc", "total"], texts
    assert [t.split(" · ")[-1] for t in texts] == ["4900", "5000", "100"], texts
    open(gate, "w").close()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.livedag-dag .ld-chip')]
              .some(c => c.textContent.trim() === 'done 10000')""", timeout=90_000)
    assert legend_counts(page) == {"done": 10_000}
    shot(page, "dag-10000")
    # Drill into the `total` box: its 100 tasks, one by one; a click shows one's detail.
    page.locator(".livedag-dag .ld-agg", has_text="total").click()
    page.locator(".livedag-dag .ld-panel .ld-drill").click()
    page.wait_for_function(
        "() => document.querySelectorAll('.livedag-dag .ld-node').length === 100")
    # The box of the cell that submitted them (its number depends on how often the
    # notebook's earlier cells ran, so it is read, not assumed).
    crumb = page.locator(".livedag-dag .ld-crumb").inner_text()
    assert re.search(r"total · In \[\d+\]: 100 tasks", crumb), crumb
    node(page, 9999).click()
    panel = page.locator(".livedag-dag .ld-panel").first
    assert "total" in panel.locator(".ld-head").inner_text()
    assert "task 9999" in panel.locator(".ld-head").inner_text()
    shot(page, "dag-10000-drill")
    page.locator(".livedag-dag .ld-overview").click()
    page.wait_for_function(
        "() => document.querySelectorAll('.livedag-dag .ld-agg').length === 3")
    # The timeline keeps each worker's newest runs; a bar's task has no details in the
    # page (aggregated view): a click asks the kernel for them.
    page.locator(".livedag-dag .ld-tab-timeline").click()
    bars = page.locator(".livedag-dag .ld-tl-bar")
    bars.first.wait_for()
    caption = page.locator(".livedag-dag .ld-tl-caption").first.inner_text()
    assert "older runs not drawn, the newest 100 per lane" in caption, caption
    # Bars 2 px wide overlap; the one drawn last is on top (Playwright clicks only what
    # would receive the click).
    tid = int(bars.last.get_attribute("data-task"))
    bars.last.click()
    page.wait_for_function(
        "(t) => (document.querySelector('.livedag-dag .ld-panel .ld-head') || {})"
        ".textContent?.includes('task ' + t)", arg=tid)
    assert "ld-selected" in bars.last.get_attribute("class")
    shot(page, "dag-10000-timeline")


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
