"""A static picture of the DAG view: the same layout the widget draws, through matplotlib.

    Graph (nodes with layer/row, or aggregated boxes) ──> matplotlib.figure.Figure ──> PNG

For outputs where widgets don't render (a notebook run headless, GitHub, nbconvert) the
widget's output bundle carries this PNG and `Graph.summary()` beside the widget view.
Never pyplot: a Figure made directly has no global state and needs no display.
"""

from __future__ import annotations

import io
from typing import Any

from livedag.jupyter.graph import STATES, Graph

COLORS = {
    "pending": "#cfd4dc", "launched": "#a9cdf3", "running": "#2f7de1", "done": "#2fa84f",
    "failed": "#d93838", "dep_fail": "#f0a020", "cached": "#17a398", "cancelled": "#6b7280",
    "superseded": "#e6e8ec",
}
MAX_DRAWN = 600  # past this, draw the aggregated boxes (a PNG of thousands of dots helps no one)


def figure(graph: Graph, *, width: float = 9.0) -> Any:
    """A matplotlib Figure of the graph: nodes by state, edges, cell bands, a legend."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(width, 3.2), dpi=90)
    ax = fig.add_subplot()
    ax.set_axis_off()
    if graph.aggregated or len(graph.nodes) > MAX_DRAWN:
        height = _draw_aggregate(ax, graph)
    else:
        height = _draw_nodes(ax, graph)
    fig.set_size_inches(width, min(8.0, max(2.2, 1.0 + 0.22 * height)))
    legend = graph.legend()
    handles = [Patch(color=COLORS[s], label=f"{s.replace('_', ' ')} {legend[s]}")
               for s in STATES if legend.get(s)]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5),
                   fontsize=8, frameon=False)
    total = len(graph.nodes)
    ax.set_title(f"livedag: {total} task{'s' if total != 1 else ''}", fontsize=10, loc="left")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.16)
    return fig


def _draw_nodes(ax: Any, graph: Graph) -> int:
    from matplotlib.collections import LineCollection

    nodes = [n for n in graph.nodes.values() if n.folded_into is None]
    if not nodes:
        ax.text(0.5, 0.5, "no tasks yet", ha="center", va="center", transform=ax.transAxes)
        return 1
    pos = {n.id: (n.layer * 1.5, -n.row) for n in nodes}
    segments = [(pos[d], pos[n.id]) for n in nodes for d in n.deps if d in pos]
    if segments:
        ax.add_collection(LineCollection(segments, colors="#9aa4b2", linewidths=0.6, zorder=1))
    xs = [pos[n.id][0] for n in nodes]
    ys = [pos[n.id][1] for n in nodes]
    colors = [COLORS[n.state] for n in nodes]
    alphas = [0.35 if n.superseded else 1.0 for n in nodes]
    size = 60 if len(nodes) < 80 else 18
    ax.scatter(xs, ys, c=colors, s=size, zorder=2, edgecolors="#555", linewidths=0.3,
               alpha=alphas)
    if len(nodes) <= 60:
        for n in nodes:
            label = f"{n.id} {n.app}" + (f" (+{len(n.blocked)} blocked)" if n.blocked else "")
            ax.annotate(label, pos[n.id], xytext=(5, 3), textcoords="offset points",
                        fontsize=7, alpha=0.4 if n.superseded else 1.0)
    for key, group in graph.groups.items():
        members = [pos[n.id] for n in nodes if n.group == key]
        if members:
            x0 = min(p[0] for p in members)
            y1 = max(p[1] for p in members)
            ax.text(x0 - 0.3, y1 + 0.6, group.label, fontsize=7, color="#4b5563")
    ax.set_xlim(min(xs) - 0.6, max(xs) + 1.6)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 1.2)
    return max(ys) - min(ys) + 1


def _draw_aggregate(ax: Any, graph: Graph) -> int:
    from matplotlib.patches import Rectangle

    # Boxes per (cell, app); the same grouping the widget shows past its threshold.
    boxes: dict[tuple[str, str], dict[str, int]] = {}
    for n in graph.nodes.values():
        counts = boxes.setdefault((n.group, n.app), {})
        counts[n.view_state] = counts.get(n.view_state, 0) + 1
    layer_of: dict[tuple[str, str], int] = {}
    for n in graph.nodes.values():
        key = (n.group, n.app)
        layer_of[key] = min(layer_of.get(key, n.layer), n.layer)
    rows: dict[int, int] = {}
    for key, counts in sorted(boxes.items(), key=lambda kv: layer_of[kv[0]]):
        layer = layer_of[key]
        row = rows.get(layer, 0)
        rows[layer] = row + 1
        x, y = layer * 3.0, -row * 1.4
        total = sum(counts.values())
        off = 0.0
        for s in STATES:
            c = counts.get(s, 0)
            if c:
                w = 2.4 * c / total
                ax.add_patch(Rectangle((x + off, y), w, 0.45, color=COLORS[s]))
                off += w
        label = graph.groups[key[0]].label
        ax.text(x, y + 0.6, f"{key[1]} · {label} · {total}", fontsize=7)
    width = max(layer_of.values(), default=0) * 3.0 + 3.0
    height = max(rows.values(), default=1)
    ax.set_xlim(-0.2, width)
    ax.set_ylim(-height * 1.4 + 0.6, 1.4)
    return height * 2


def png_bytes(graph: Graph, **kwargs: Any) -> bytes:
    fig = figure(graph, **kwargs)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def summary(graph: Graph) -> str:
    return graph.summary()
