"""livedag.plot.timeline: one bar per try, a lane per worker, the colour of its outcome.
(plot.resources: test_resources.py.)"""

from __future__ import annotations

import pytest

import livedag
from livedag.executors.threads import ThreadPoolExecutor
from livedag.monitoring import history
from tests.monitoring.conftest import finish

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.timeout(60)


@livedag.python_app
def fine(x):
    return x


@livedag.python_app
def broken(x):
    raise RuntimeError(x)


def _bars(fig):
    from matplotlib.patches import Rectangle

    (ax,) = fig.axes
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_one_bar_per_try_coloured_by_outcome(load_recorded):
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    from livedag.plot import COLORS, timeline

    dfk = load_recorded(retries=1, executors=[ThreadPoolExecutor(label="threads",
                                                                 max_threads=1)])
    for i in range(3):
        fine(i).result(timeout=10)
    with pytest.raises(RuntimeError):
        broken(1).result(timeout=10)
    run_dir = finish(dfk)
    tasks = history(run_dir)
    fig = livedag.plot.timeline(run_dir)
    assert isinstance(fig, Figure)
    assert timeline is livedag.plot.timeline
    bars = _bars(fig)
    assert len(bars) == sum(len(t.tries) for t in tasks) == 5
    colours = sorted(tuple(b.get_facecolor()) for b in bars)
    expected = [COLORS["exec_done"]] * 3 + [COLORS["retried"], COLORS["failed"]]
    assert colours == sorted(to_rgba(c) for c in expected)
    (ax,) = fig.axes
    (pid,) = {a.pid for t in tasks for a in t.tries}
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{dfk.hostname}:{pid}"]
    fig.savefig(__import__("io").BytesIO(), format="png")  # it draws


def test_lanes_by_executor_and_block(load_recorded):
    from livedag.plot import timeline

    dfk = load_recorded()
    fine(1).result(timeout=10)
    run_dir = finish(dfk)
    for by, lane in (("executor", "threads"), ("block", "threads (no block)")):
        (ax,) = timeline(run_dir, by=by).axes
        assert [t.get_text() for t in ax.get_yticklabels()] == [lane]
    with pytest.raises(ValueError, match="timeline\\(by='host'\\): expected one of worker"):
        timeline(run_dir, by="host")


def test_a_run_without_tries_draws_a_note(load_recorded):
    from livedag.plot import timeline

    run_dir = finish(load_recorded())
    fig = timeline(tasks=history(run_dir))
    assert _bars(fig) == []
    assert "no task has run" in fig.axes[0].texts[0].get_text()


def test_plot_is_the_public_module():
    import livedag.plot as plot_module

    assert livedag.plot is plot_module
    assert plot_module.__all__ == ["resources", "timeline"]
    assert callable(livedag.plot.timeline) and callable(livedag.plot.resources)
