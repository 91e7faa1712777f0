"""The public namespace: `from livedag import *` works, `__all__` matches what exists, the
Parsl import paths resolve, and a bare `import livedag` stays cheap."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import pytest

import livedag

# Modules that would make `import livedag` slow, or that only some executors need.
HEAVY = ("zmq", "cloudpickle", "IPython", "networkx", "tblib", "psutil", "ipywidgets",
         "anywidget", "matplotlib", "numpy")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_all_is_unique_and_matches_the_lazy_table() -> None:
    assert len(set(livedag.__all__)) == len(livedag.__all__)
    assert set(livedag.__all__) == set(livedag._EXPORTS)


@pytest.mark.parametrize("name", sorted(livedag._EXPORTS))
def test_every_exported_name_resolves_from_its_module(name: str) -> None:
    value = getattr(livedag, name)
    module = importlib.import_module(livedag._EXPORTS[name])
    # A submodule (livedag.plot) is its own export.
    expected = module if module.__name__ == f"livedag.{name}" else getattr(module, name)
    assert value is expected
    assert name in dir(livedag)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'livedag' has no attribute 'nope'"):
        livedag.nope  # noqa: B018


def test_star_import_gives_exactly_all() -> None:
    out = _run("""
        import json
        before = set(globals())
        from livedag import *
        print(json.dumps(sorted(set(globals()) - before - {"before"})))
    """)
    assert json.loads(out) == sorted(livedag.__all__)


def test_bare_import_loads_no_heavy_module() -> None:
    out = _run(f"""
        import json, sys
        import livedag
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)
    assert json.loads(out) == []


@pytest.mark.parametrize("first", ["import livedag.plot", "import livedag; livedag.plot"])
def test_plot_is_a_module_that_loads_no_matplotlib_until_it_draws(first: str) -> None:
    out = _run(f"""
        import json, sys
        {first}
        import livedag
        import livedag.plot
        from livedag.plot import resources, timeline
        print(json.dumps([livedag.plot is sys.modules["livedag.plot"],
                          resources.__module__, timeline.__module__,
                          [m for m in {HEAVY!r} + ("sqlite3", "livedag.monitoring")
                           if m in sys.modules]]))
    """)
    assert json.loads(out) == [True, "livedag.plot", "livedag.plot", []]


def test_running_on_threads_loads_no_zmq_or_ui() -> None:
    # The kernel must not import the ZMQ executor, monitoring or Jupyter code it doesn't use.
    out = _run("""
        import json, sys, tempfile
        import livedag
        with tempfile.TemporaryDirectory() as tmp:
            livedag.load(livedag.Config(run_dir=tmp))

            @livedag.python_app
            def add(a, b):
                return a + b

            assert add(add(1, 2), 3).result(timeout=30) == 6
            livedag.dfk().cleanup()
        print(json.dumps([m for m in ("zmq", "IPython", "networkx", "ipywidgets",
                                      "livedag.executors.htex")
                          if m in sys.modules]))
    """)
    assert json.loads(out) == []


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("livedag.app.app", ["python_app", "bash_app", "join_app"]),
        ("livedag.app.errors", ["BashExitFailure", "AppTimeout", "MissingOutputs"]),
        ("livedag.data_provider.files", ["File"]),
        ("livedag.utils", ["get_all_checkpoints", "get_last_checkpoint"]),
        ("livedag.dataflow", ["DataFlowKernel", "DataFlowKernelLoader"]),
        ("livedag.executors", ["ThreadPoolExecutor", "HighThroughputExecutor"]),
    ],
)
def test_parsl_import_paths(module: str, names: list[str]) -> None:
    mod = importlib.import_module(module)
    for name in names:
        assert getattr(mod, name) is not None
    for name in getattr(mod, "__all__", ()):
        assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which does not exist"
