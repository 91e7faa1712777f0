"""After a restart, `livedag.jupyter.show(run_dir=...)` redraws the last run's DAG from its
record, in a real IPython kernel (jupyter_client drives it; no browser)."""

from __future__ import annotations

import inspect
import os

import pytest

from tests.monitoring.conftest import ROOT, run_child

pytest.importorskip("jupyter_client")
pytest.importorskip("anywidget")
pytestmark = pytest.mark.timeout(90)

RECORD = """
import livedag
import livedag.monitoring
from livedag.executors.threads import ThreadPoolExecutor

@livedag.python_app
def fetch(n):
    return n

@livedag.python_app
def parse(x):
    raise ValueError(f"row {x} is malformed")

@livedag.python_app
def report(x):
    return x

livedag.load(livedag.Config(executors=[ThreadPoolExecutor(label="threads")], monitoring=True))
try:
    report(parse(fetch(1))).result()
except Exception:
    pass
livedag.dfk().cleanup()
"""


def test_show_redraws_a_recorded_run_after_a_restart(tmp_path, monkeypatch):
    from livedag.jupyter import extension

    if "run_dir" not in inspect.signature(extension.show).parameters:
        pytest.skip("livedag.jupyter.show(run_dir=...) is not in extension.py yet")
    from tests.jupyter.test_extension import WIDGET_MIME, Kernel, ok

    run_child(RECORD, cwd=str(tmp_path))  # the kernel before the restart
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    kernel = Kernel(str(tmp_path))  # the kernel after it: no livedag kernel loaded
    try:
        out = kernel.run("import livedag.jupyter\nlivedag.jupyter.show(run_dir='runinfo')")
        text = ok(out)
        (shown,) = [o for o in out if o["type"] == "display_data"]
        assert WIDGET_MIME in shown["data"] and "image/png" in shown["data"]
        assert "livedag: 3 tasks (1 done, 1 failed, 1 dep_fail)" in text
        assert "task 1 'parse' failed: ValueError: row 1 is malformed" in text
        again = ok(kernel.run("import livedag\nprint(livedag.history('runinfo')[1].message)"))
        assert "row 1 is malformed" in again
    finally:
        kernel.stop()
