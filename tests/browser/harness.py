"""JupyterLab + headless Chromium, for the browser tests and bench/widget_browser.py.

    start_lab(dir) ──> jupyter lab (127.0.0.1, a port of ours, token, temp dirs,
                       expose_app_in_browser) ──> Lab (write_notebook, url)
                           ^ HTTP + websockets
    chromium() ──> Playwright's Chromium (/usr/bin/chromium; never `playwright install`)
    open_notebook(page, lab, name, cells), run(page, i): drive a notebook in a page

Lab is stopped by its PID with SIGTERM (it shuts its kernels down); see the shared recipes
for the flags. Nothing here knows pytest: tests/browser/conftest.py turns LabError into a
test failure, the benchmark prints it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("LIVEDAG_CHROMIUM", "/usr/bin/chromium")
TOKEN = "livedag-browser-test"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]

# "Idle" in Lab's toolbar lies before a kernel exists: wait on the session itself.
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


class LabError(RuntimeError):
    """JupyterLab did not start; the message carries its log."""


def missing() -> str | None:
    """Why the browser parts cannot run here, or None."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (run scripts/browser-deps.sh)"
    for mod in ("playwright", "jupyterlab", "nbformat", "anywidget"):
        try:
            __import__(mod)
        except ImportError:
            return f"python package {mod} is missing (run scripts/browser-deps.sh)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    def __init__(self, root: Path, port: int, proc: subprocess.Popen[bytes], log: Path,
                 data_dir: Path) -> None:
        self.root, self.port, self.proc, self.log = root, port, proc, log
        self.data_dir = data_dir
        self.base = f"http://127.0.0.1:{port}"

    def add_kernelspec(self, name: str, argv: list[str], *, env: dict[str, str]) -> None:
        """A kernel of our own (the server looks kernelspecs up when a kernel starts)."""
        spec = self.data_dir / "kernels" / name
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": argv, "display_name": name, "language": "python", "env": env}))

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={TOKEN}&reset"

    def write_notebook(self, name: str, cells: list[str], *, kernel: str = "python3") -> str:
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel,
                                     "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nbformat.write(nb, str(self.root / name))
        return name


@contextlib.contextmanager
def start_lab(base: Path, *, env: dict[str, str] | None = None) -> Iterator[Lab]:
    """JupyterLab serving `base`/notebooks, its settings and runtime under `base`."""
    root = base / "notebooks"
    root.mkdir()
    env = dict(os.environ if env is None else env)
    for var, sub in (("JUPYTERLAB_SETTINGS_DIR", "settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_DATA_DIR", "data")):
        (base / sub).mkdir()
        env[var] = str(base / sub)
    # The data dir moved, so the kernelspec is found in the environment's share dir (and
    # in data/kernels, where a test may add its own).
    env.pop("JUPYTER_PATH", None)
    env.pop("MPLBACKEND", None)
    port = _free_port()
    log = base / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--ServerApp.token={TOKEN}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    lab = Lab(root, port, proc, log, base / "data")
    try:
        _wait_until_up(lab)
        yield lab
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _wait_until_up(lab: Lab, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if lab.proc.poll() is not None:
            raise LabError(f"jupyter lab exited with {lab.proc.returncode}:\n"
                           f"{lab.log.read_text()}")
        try:
            with urllib.request.urlopen(f"{lab.base}/api/status?token={TOKEN}", timeout=2) as r:
                json.load(r)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise LabError(f"jupyter lab did not answer in {timeout:.0f} s:\n"
                               f"{lab.log.read_text()}") from None
            time.sleep(0.3)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_notebook(page: Any, lab: Lab, name: str, cells: list[str], *,
                  kernel: str = "python3") -> None:
    """Write a notebook, open it in the page and wait for its kernel to be idle."""
    lab.write_notebook(name, cells, kernel=kernel)
    page.goto(lab.url(name))
    page.wait_for_function(READY, timeout=60_000)


def run(page: Any, index: int, *, wait: bool = True) -> None:
    """Run cell `index`; with `wait`, until it ends, and fail on an error output."""
    page.evaluate(RUN, [index, wait])
    if wait:
        errors = [o for o in page.evaluate(OUTPUTS, index) if o.get("output_type") == "error"]
        if errors:
            raise AssertionError("\n".join(errors[0].get("traceback", [])))


def outputs_text(page: Any, index: int) -> str:
    """The stream text cell `index` printed so far."""
    return "".join(o.get("text", "") for o in page.evaluate(OUTPUTS, index))


def big_dag_cells(tasks: int, gate: str) -> list[str]:
    """A notebook that builds a `tasks`-task DAG (3 apps: inc -> double -> total, fan-in by
    49) on the default `%load_ext` executor. Every `inc` waits for the file `gate` first,
    so the DAG is drawn while nothing has finished; creating the file lets it run.
    Cell 2 prints `submitted N tasks ... at <time.time()>` when its last call returned."""
    n_inc = tasks // 2
    n_double = (tasks - n_inc) * 49 // 50
    n_total = tasks - n_inc - n_double
    assert n_double == 49 * n_total, f"{tasks} tasks do not split as 50 : 49 : 1"
    apps = (
        "import livedag, os, time\n"
        f"GATE = {gate!r}\n"
        "@livedag.python_app\n"
        "def inc(i):\n"
        "    while not os.path.exists(GATE):\n"
        "        time.sleep(0.05)\n"
        "    return i + 1\n"
        "@livedag.python_app\n"
        "def double(x):\n"
        "    return 2 * x\n"
        "@livedag.python_app\n"
        "def total(*xs):\n"
        "    return sum(xs)\n"
    )
    submit = (
        "t0 = time.time()\n"
        f"xs = [inc(i) for i in range({n_inc})]\n"
        f"ys = [double(x) for x in xs[:{n_double}]]\n"
        f"zs = [total(*ys[k:k + 49]) for k in range(0, {n_double}, 49)]\n"
        "t1 = time.time()\n"
        "print(f'submitted {len(xs) + len(ys) + len(zs)} tasks in {t1 - t0:.2f} s at {t1:.3f}')"
    )
    return ["%load_ext livedag.jupyter", apps, submit]
