"""Fixtures for the widget tests: one JupyterLab and one Chromium per session, a page per
test (tests/browser/harness.py starts them; bench/widget_browser.py uses the same code).

Without Chromium or Playwright the tests skip, except in CI (CI=true), where they fail.
A failed test leaves its screenshot and console log in tests/browser/artifacts.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tests.browser import harness

ARTIFACTS = Path(__file__).parent / "artifacts"


def _require() -> None:
    why = harness.missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run in CI: {why}")
    pytest.skip(why)


# Module scope, not session: JupyterLab, its kernels and Chromium end with the browser
# tests. Kept for the session, Chromium started a utility process in the middle of a later
# Slurm test, whose check that nothing outlives it then failed.
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require()
    try:
        with harness.start_lab(tmp_path_factory.mktemp("lab")) as lab:
            yield lab
    except harness.LabError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def browser():
    _require()
    with harness.chromium() as b:
        yield b


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
