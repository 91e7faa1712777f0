"""The static picture: a matplotlib Figure (never pyplot) of the same view model."""

from __future__ import annotations

import sys

from livedag import events as ev
from livedag.jupyter import render
from livedag.jupyter.graph import Graph, make_origin
from livedag.task import TaskState as S

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _graph(n: int, *, aggregate_above: int = 2000) -> Graph:
    g = Graph(aggregate_above=aggregate_above)
    origin = make_origin("c", 1)
    events: list[ev.Event] = []
    for tid in range(n):
        deps = (tid - 1,) if tid % 5 else ()
        events.append(ev.TaskCreated(0, tid, "step", "python", "threads", deps, origin, ""))
    events += [ev.TaskStateChanged(0, 0, S.LAUNCHED, 1), ev.TaskStateChanged(0, 0, S.FAILED, 1),
               ev.TaskFailed(0, 0, 1, S.FAILED, "KeyError", "'x'", "tb")]
    g.apply(events)
    return g


def test_png_of_a_small_graph():
    data = render.png_bytes(_graph(12))
    assert data.startswith(PNG_MAGIC) and len(data) > 2000
    assert "matplotlib.pyplot" not in sys.modules


def test_figure_has_a_legend_with_counts():
    fig = render.figure(_graph(12))
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "failed 1" in texts and "pending 11" in texts


def test_png_of_an_aggregated_graph():
    g = _graph(3000, aggregate_above=1000)
    assert g.aggregated
    assert render.png_bytes(g).startswith(PNG_MAGIC)
    assert render.summary(g).startswith("livedag: 3000 tasks (2999 pending, 1 failed)")
