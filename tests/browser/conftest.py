"""JupyterLab + headless Chromium for the widget tests (see shared recipes).

    jupyter lab (127.0.0.1, a port of ours, token, temp dirs, expose_app_in_browser)
        ^ HTTP + websockets
    Chromium (Playwright, /usr/bin/chromium; never `playwright install`) ── page per test

Lab is stopped by its PID with SIGTERM in the finalizer (it shuts its kernels down).
Without Chromium or Playwright the tests skip, except in CI (CI=true), where they fail.
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
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LIVEDAG_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "livedag-browser-test"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (run scripts/browser-deps.sh)"
    for mod in ("playwright", "jupyterlab", "nbformat", "anywidget"):
        try:
            __import__(mod)
        except ImportError:
            return f"python package {mod} is missing (run scripts/browser-deps.sh)"
    return None


def _require() -> None:
    why = _missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run in CI: {why}")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    def __init__(self, root: Path, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.root, self.port, self.proc, self.log = root, port, proc, log
        self.base = f"http://127.0.0.1:{port}"

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={TOKEN}&reset"

    def write_notebook(self, name: str, cells: list[str]) -> str:
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nbformat.write(nb, str(self.root / name))
        return name


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    _require()
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    env = dict(os.environ)
    for var, sub in (("JUPYTERLAB_SETTINGS_DIR", "settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_DATA_DIR", "data")):
        (base / sub).mkdir()
        env[var] = str(base / sub)
    # The data dir moved, so the kernelspec must be found in the environment's share dir.
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
    lab = Lab(root, port, proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{lab.base}/api/status?token={TOKEN}",
                                            timeout=2) as r:
                    json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in 60 s:\n{log.read_text()}")
                time.sleep(0.3)
        yield lab
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="session")
def browser():
    _require()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, request):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    logs: list[str] = []
    pg.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: logs.append(f"pageerror: {e}"))
    pg.console_logs = logs  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            name = request.node.name
            with contextlib.suppress(Exception):
                pg.screenshot(path=str(ARTIFACTS / f"{name}-failed.png"), full_page=True)
            (ARTIFACTS / f"{name}-console.log").write_text("\n".join(logs))
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
