"""The DAG widget at 10,000 tasks in a real JupyterLab + headless Chromium: how soon the
DAG is drawn, whether it keeps updating while tasks finish, and how fast one group opens.
Figures, not asserts (the browser test checks the behaviour, untimed).

    python3 -m bench.widget_browser [--tasks 10000] [--screenshots DIR]

    bench ── tests/browser/harness.py ──> jupyter lab + Chromium (the browser tests' code)
      notebook: %load_ext livedag.jupyter; inc x N/2 -> double -> total (each inc waits for
                a gate file, so nothing finishes until the bench says so)
      page: a MutationObserver + requestAnimationFrame notes when the legend counts and
            the aggregated boxes change (wall clock, comparable with the kernel's)

What is measured:
- display: the submitting cell's last app call returned -> the page has painted the
  aggregated view with every task counted. Split into the kernel's share (the widget's
  state for all tasks sent: the `livedag:diff` mark the front end records on arrival) and
  the page's (arrival -> painted; `livedag:redraw` marks how long each redraw took).
- updating: the gate opens; how often the page's counts changed until all were done, and
  the longest time the page went without a change while tasks were still finishing.
- drill-down: click a group's box, press "Show tasks" -> its task nodes are painted.
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import ROOT

# Installed in the page before the DAG is submitted: one sample per paint that changed
# what the widget shows.
WATCH = """() => {
  const root = document.querySelector('.livedag-dag');
  const w = window.__ldBench = {samples: [], marks: []};
  const read = () => {
    const counts = {};
    for (const c of root.querySelectorAll('.ld-legend .ld-chip')) {
      const m = c.textContent.trim().match(/(\\d+)$/);
      if (m) counts[c.getAttribute('data-state')] = Number(m[1]);
    }
    return {counts, boxes: root.querySelectorAll('.ld-agg').length,
            nodes: root.querySelectorAll('.ld-node').length};
  };
  let queued = false;
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    // The change is in the DOM now; it is on screen after the next frame.
    requestAnimationFrame(() => setTimeout(() => {
      queued = false;
      w.samples.push({t: Date.now() / 1000, ...read()});
    }, 0));
  }).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
}"""

SAMPLES = "() => window.__ldBench.samples"
MARKS = """(name) => performance.getEntriesByName(name).map(
  e => ({start: (performance.timeOrigin + e.startTime) / 1000, ms: e.duration,
         detail: e.detail || null}))"""


def _total(sample: dict[str, Any]) -> int:
    return sum(v for k, v in sample["counts"].items() if k != "superseded")


def _first(samples: list[dict[str, Any]], pred: Any) -> dict[str, Any] | None:
    return next((s for s in samples if pred(s)), None)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.0f} ms"


Figures = list[tuple[str, str]]  # (what, how much), printed as one section


def measure(tasks: int, shots: Path | None) -> list[tuple[str, Figures]]:
    """Start Lab + Chromium, run the notebook, take every figure (sections in order)."""
    from tests.browser import harness

    why = harness.missing()
    if why:
        sys.exit(f"bench.widget_browser: {why}")
    with tempfile.TemporaryDirectory(prefix="bench-widget-browser-") as tmp, \
            harness.start_lab(Path(tmp)) as lab, harness.chromium() as browser:
        gate = Path(tmp) / "gate"
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(60_000)

        def shot(name: str) -> None:
            if shots:
                page.locator(".livedag-dag").first.screenshot(path=str(shots / name))

        harness.open_notebook(page, lab, "dag.ipynb", harness.big_dag_cells(tasks, str(gate)))
        harness.run(page, 0)
        page.wait_for_selector(".livedag-dag .ld-canvas")
        harness.run(page, 1)
        sections = [_display(page, tasks)]
        shot("dag-10k.png")
        sections.append(_updating(page, tasks, gate))
        shot("dag-10k-done.png")
        sections.append(_reload(page))
        sections.append(_drill_down(page))
        sections.append(_timeline(page))
        shot("dag-10k-timeline.png")
        if shots:
            page.locator(".livedag-dag .ld-tab-dag").click()
            page.locator(".livedag-dag .ld-agg").first.click()
            page.locator(".livedag-dag .ld-panel .ld-drill").first.click()
            page.wait_for_function(FOCUS_DRAWN)
            shot("dag-10k-drill.png")
    return sections


def _display(page: Any, tasks: int) -> tuple[str, Figures]:
    """Run the submitting cell; time its end -> the boxes painted with every task."""
    from tests.browser import harness

    page.evaluate(WATCH)
    harness.run(page, 2)
    printed = harness.outputs_text(page, 2)
    m = re.search(r"submitted (\d+) tasks in ([\d.]+) s at ([\d.]+)", printed)
    if m is None or int(m[1]) != tasks:
        sys.exit(f"bench.widget_browser: the submit cell printed {printed!r}")
    submit_s, submitted_at = float(m[2]), float(m[3])
    page.wait_for_function(
        "(n) => window.__ldBench.samples.some(s => s.boxes && Object.entries(s.counts)"
        ".reduce((a, [k, v]) => a + (k === 'superseded' ? 0 : v), 0) === n)", arg=tasks)
    drawn = _first(page.evaluate(SAMPLES), lambda s: _total(s) == tasks and s["boxes"])
    assert drawn is not None
    arrived = _first(page.evaluate(MARKS, "livedag:diff"),
                     lambda d: (d["detail"] or {}).get("tasks") == tasks)
    redraws = [r["ms"] for r in page.evaluate(MARKS, "livedag:redraw")]
    out = [("submitting", f"{submit_s:7.2f} s   (the cell's {tasks} app calls)"),
           ("total", _ms(drawn["t"] - submitted_at))]
    if arrived is not None:
        out += [("kernel -> page", _ms(arrived["start"] - submitted_at)
                 + "  (the diff counting every task arrived)"),
                ("page", _ms(drawn["t"] - arrived["start"])
                 + "  (that diff applied, drawn, painted)")]
    if redraws:
        out.append(("redraws", f"{len(redraws)} while submitting, median "
                    f"{statistics.median(redraws):.1f} ms, longest {max(redraws):.1f} ms"))
    return "display (the cell's last app call returned -> aggregated view painted)", out


def _updating(page: Any, tasks: int, gate: Path) -> tuple[str, Figures]:
    """Open the gate; every paint that changed the counts, until all are done."""
    before = len(page.evaluate(SAMPLES))
    opened = time.time()
    gate.touch()
    page.wait_for_function(
        "(n) => window.__ldBench.samples.some(s => (s.counts.done || 0) === n)",
        arg=tasks, timeout=600_000)
    after = [s for s in page.evaluate(SAMPLES)[before:] if s["t"] >= opened]
    done_at = _first(after, lambda s: s["counts"].get("done", 0) == tasks)
    assert done_at is not None
    updates = [s for s in after if s["t"] <= done_at["t"]]
    times = [opened] + [s["t"] for s in updates]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    dones = {s["counts"].get("done", 0) for s in updates}
    return f"updating (gate opened -> all {tasks} done)", [
        ("all done after", f"{done_at['t'] - opened:7.2f} s"),
        ("page updates", f"{len(updates)} ({len(dones)} distinct done counts)"),
        ("between updates", f"median {_ms(statistics.median(gaps)).strip()}, "
                            f"longest {_ms(max(gaps)).strip()}"),
    ]


# Click in the page and time until `done()` holds on a painted frame (no Playwright round
# trips inside the clock).
CLICK_UNTIL = """async ([selector, done]) => {
  const target = document.querySelector(selector);
  const until = new Function('return (' + done + ')()');
  const t0 = performance.now();
  target.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  for (;;) {
    await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
    if (until()) return (performance.now() - t0) / 1000;
    if (performance.now() - t0 > 60000) return -1;
  }
}"""

PANEL_SHOWS_BOX = "() => !!document.querySelector('.livedag-dag .ld-panel .ld-drill')"
FOCUS_DRAWN = """() => {
  const c = document.querySelector('.livedag-dag .ld-crumb').textContent;
  const m = c.match(/(\\d+)( of \\d+)? tasks/);
  return !!m && document.querySelectorAll('.livedag-dag .ld-node').length === Number(m[1]);
}"""


def _drill_down(page: Any) -> tuple[str, Figures]:
    """The largest box: select it (its counts in the panel), then open its tasks."""
    selected = page.evaluate(CLICK_UNTIL, [".livedag-dag .ld-agg", PANEL_SHOWS_BOX])
    clicked = time.time()
    opened = page.evaluate(CLICK_UNTIL, [".livedag-dag .ld-panel .ld-drill", FOCUS_DRAWN])
    crumb = page.locator(".livedag-dag .ld-crumb").first.inner_text()
    arrived = [d for d in page.evaluate(MARKS, "livedag:diff") if d["start"] >= clicked]
    drawn = [r for r in page.evaluate(MARKS, "livedag:redraw") if r["start"] >= clicked]
    back = page.evaluate(CLICK_UNTIL, [".livedag-dag .ld-overview",
                                       "() => !!document.querySelector('.livedag-dag .ld-agg')"])
    out = [("box selected", _ms(selected)), ("tasks drawn", f"{_ms(opened)}  ({crumb})")]
    if arrived:
        out.append(("kernel -> page", _ms(arrived[0]["start"] - clicked)
                    + "  (the click -> the diff with its tasks)"))
    if drawn:
        out.append(("drawing them", _ms(max(r["ms"] for r in drawn) / 1000)
                    + "  (the longest redraw)"))
    out.append(("back to boxes", _ms(back)))
    return "drill-down (select the largest box, 'Show its N tasks', then 'Overview')", out


def _reload(page: Any) -> tuple[str, Figures]:
    """Reload the page (Lab, notebook, widget): from the widget's render() to the end of
    its first redraw of the aggregated view (the kernel sent the whole view as the
    model's state: no diff to wait for)."""
    from tests.browser import harness

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    page.reload()
    page.wait_for_function(harness.READY, timeout=60_000)
    page.wait_for_selector(".livedag-dag .ld-agg")
    render = page.evaluate(MARKS, "livedag:render")[-1]["start"]
    redraws = [r for r in page.evaluate(MARKS, "livedag:redraw")
               if r["start"] >= render and r["detail"]["mode"] == "aggregate"]
    first = redraws[0]
    return "page reload (the widget's view starts -> aggregated view drawn, from its state)", [
        ("total", _ms(first["start"] + first["ms"] / 1000 - render))]


def _timeline(page: Any) -> tuple[str, Figures]:
    """The timeline tab (each worker's newest runs), then a bar: its task's details come
    from the kernel (the aggregated view has only counts in the page)."""
    shown = page.evaluate(CLICK_UNTIL, [".livedag-dag .ld-tab-timeline",
                                        "() => !!document.querySelector('.ld-tl-bar')"])
    bars = page.locator(".livedag-dag .ld-tl-bar").count()
    details = page.evaluate(CLICK_UNTIL, [
        ".livedag-dag .ld-tl-bar",
        "() => !!document.querySelector('.livedag-dag .ld-panel .ld-head')"])
    return "timeline (tab, then a bar's task)", [
        ("tab drawn", f"{_ms(shown)}  ({bars} bars)"),
        ("task details", _ms(details) + "  (asked from the kernel)"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000,
                        help="a multiple of 100, above the widget's 2,000 (aggregated)")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="save the widget's pictures here")
    args = parser.parse_args(argv)
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))  # `tests.browser.harness`, run from anywhere
    sections = measure(args.tasks, args.screenshots)
    print(f"{args.tasks} tasks (inc -> double -> total) on %load_ext livedag's default "
          "executor, JupyterLab + headless Chromium, one run")
    for title, figures in sections:
        print(title)
        for what, value in figures:
            print(f"  {what:<16} {value}")


if __name__ == "__main__":
    main()
