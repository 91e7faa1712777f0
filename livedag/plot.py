"""Pictures of a recorded run (Config(monitoring=True)), drawn with matplotlib.

    import livedag.plot                       # or livedag.plot after `import livedag`
    livedag.plot.timeline()                   # the tries of the run, a lane per worker
    livedag.plot.resources()                  # what each try used

Importing this module loads neither matplotlib nor the run record's reader: each picture
imports them when it is drawn. Figures are matplotlib.figure.Figure (never pyplot: no
global state, no display needed; a notebook shows the returned Figure as a PNG).

    history(run_dir) ──> tries ──> timeline(): one bar per try, a lane per worker or block,
                           │       coloured by the try's outcome
                           └─────> resources(): one point per try, a colour per app: its
                                   CPU time and peak RSS against its start (or task id)

Both read the loaded kernel's run by default when it is recorded, else the newest run
under ./runinfo (see history()).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

__all__ = ["resources", "timeline"]

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from livedag.monitoring.read import TaskRow, TryRow

# A try's outcome -> colour (the DAG picture's colours for the same states).
COLORS = {
    "exec_done": "#2fa84f",
    "memo_done": "#17a398",
    "failed": "#d93838",
    "retried": "#f08a8a",  # failed, and the task was tried again
    "cancelled": "#6b7280",
    "unfinished": "#2f7de1",  # running when the record ends (a killed kernel, or still on)
}
LANES = ("worker", "block", "executor")


def outcome_of(attempt: TryRow) -> str:
    """The legend key of a try."""
    if attempt.outcome == "failed" and attempt.will_retry:
        return "retried"
    if attempt.outcome in COLORS:
        return attempt.outcome
    return "unfinished"


def lane_of(task: TaskRow, attempt: TryRow, by: str) -> str:
    if attempt.outcome == "memo_done":
        return "(cache)"
    if by == "worker":
        if attempt.host or attempt.pid is not None:
            return f"{attempt.host or '?'}:{attempt.pid if attempt.pid is not None else '?'}"
        return f"{task.executor} (no worker)"
    if by == "block":
        if attempt.block_id is None:
            return f"{task.executor} (no block)"
        job = f" job {attempt.job_id}" if attempt.job_id else ""
        return f"{task.executor} block {attempt.block_id}{job}"
    return task.executor


def timeline(run_dir: str | None = None, *, by: str = "worker",
             tasks: Sequence[TaskRow] | None = None, width: float = 9.0) -> Figure:
    """A Gantt chart of a recorded run: one bar per try, from its start (or launch) to its
    end, in a lane per worker (`by="worker"`, host:pid), per block or per executor.

    `run_dir` as for `history()` (default: the newest run under ./runinfo); or give the
    `tasks` history() returned.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if by not in LANES:
        raise ValueError(f"timeline(by={by!r}): expected one of {', '.join(LANES)}")
    if tasks is None:
        from livedag.monitoring.read import history

        tasks = history(run_dir)
    bars = [(lane_of(t, a, by), a, outcome_of(a)) for t in tasks for a in t.tries
            if a.launched is not None or a.started is not None]
    fig = Figure(figsize=(width, 2.0), dpi=90)
    ax = fig.add_subplot()
    if not bars:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no task has run in this record", ha="center", va="center",
                transform=ax.transAxes)
        return fig
    t0 = min(t.created for t in tasks)
    last = max(x for t in tasks for x in _times(t))
    lanes = sorted({lane for lane, _a, _o in bars})
    rows = {lane: i for i, lane in enumerate(lanes)}
    for lane in lanes:
        mine = [(a, o) for name, a, o in bars if name == lane]
        lefts = [_start(a) - t0 for a, _o in mine]
        widths = [max((a.ended if a.ended is not None else last) - _start(a), 0.0)
                  for a, _o in mine]
        ax.barh([rows[lane]] * len(mine), widths, left=lefts, height=0.7,
                color=[COLORS[o] for _a, o in mine], edgecolor="white", linewidth=0.3)
    ax.set_yticks(range(len(lanes)), lanes, fontsize=8)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_xlabel("seconds since the first task was made", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    counts: dict[str, int] = {}
    for _lane, _a, o in bars:
        counts[o] = counts.get(o, 0) + 1
    handles = [Patch(color=COLORS[o], label=f"{o.replace('_', ' ')} {counts[o]}")
               for o in COLORS if counts.get(o)]
    fig.legend(handles=handles, loc="upper right", ncol=min(len(handles), 6), fontsize=8,
               frameon=False)
    ax.set_title(f"livedag: {len(bars)} tr{'ies' if len(bars) != 1 else 'y'} of "
                 f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}, by {by}",
                 fontsize=10, loc="left")
    fig.set_size_inches(width, min(12.0, 1.4 + 0.3 * len(lanes)))
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def _start(attempt: TryRow) -> float:
    value = attempt.started if attempt.started is not None else attempt.launched
    assert value is not None
    return value


def _times(task: TaskRow) -> list[float]:
    out = [task.created]
    if task.ended is not None:
        out.append(task.ended)
    for a in task.tries:
        out += [x for x in (a.launched, a.started, a.ended) if x is not None]
    return out


# measure -> (axis label, unit divisor, what to do when a record has none of it)
MEASURES = {
    "cpu_time": ("CPU time, user + system (s)", 1.0,
                 "no CPU time in this record: its tries ran on an executor that does not "
                 "report it, or before executors reported it"),
    "peak_rss": ("peak RSS (MiB)", float(1 << 20),
                 "no peak RSS in this record: tasks on the thread executor share the "
                 "kernel's process, so it is not measured; run them on "
                 "HighThroughputExecutor to measure it"),
}
AXES_X = ("time", "task")


def resources(run_dir: str | None = None, *, ax: Axes | Sequence[Axes] | None = None,
              measure: str = "both", x: str = "time", tasks: Sequence[TaskRow] | None = None,
              width: float = 9.0) -> Figure:
    """What each try of a recorded run used: one point per try, a colour per app.

    `measure`: "cpu_time" (seconds of CPU, user + system), "peak_rss" (MiB), or "both"
    (two panels, CPU time above). `x`: "time" (the try's start, in seconds since the
    first task was made) or "task" (its task id). `ax`: draw into this Axes (one measure)
    or these two Axes (both) instead of a new Figure. `run_dir` as for `history()`, or
    give the `tasks` history() returned. Returns the Figure; a measure the record holds
    none of is a note in its panel, saying what would measure it.
    """
    names = list(MEASURES) if measure == "both" else [measure]
    if any(name not in MEASURES for name in names):
        raise ValueError(f"resources(measure={measure!r}): expected cpu_time, peak_rss or "
                         "both")
    if x not in AXES_X:
        raise ValueError(f"resources(x={x!r}): expected one of {', '.join(AXES_X)}")
    axes = _resource_axes(ax, len(names), width)
    if tasks is None:
        from livedag.monitoring.read import history

        tasks = history(run_dir)
    t0 = min((t.created for t in tasks), default=0.0)
    apps = sorted({t.app for t in tasks})
    palette = _palette(len(apps))
    for name, axes_ in zip(names, axes, strict=True):
        _resource_panel(axes_, name, tasks, x, t0, {a: palette[i] for i, a in enumerate(apps)})
    axes[-1].set_xlabel("task id" if x == "task" else "seconds since the first task was made",
                        fontsize=8)
    tries = sum(len(t.tries) for t in tasks)
    axes[0].set_title(f"livedag: what {tries} tr{'ies' if tries != 1 else 'y'} of "
                      f"{len(tasks)} task{'s' if len(tasks) != 1 else ''} used",
                      fontsize=10, loc="left")
    from matplotlib.figure import Figure

    fig = axes[0].figure  # a SubFigure when the caller's Axes is in one: its root then
    assert fig is not None
    return fig if isinstance(fig, Figure) else fig.figure


def _resource_axes(ax: Axes | Sequence[Axes] | None, count: int, width: float) -> list[Axes]:
    if ax is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, 1.2 + 2.0 * count), dpi=90)
        made = fig.subplots(count, 1, sharex=True, squeeze=False)
        fig.subplots_adjust(hspace=0.15, left=0.08, right=0.8)
        return [a for (a,) in made]
    given = [ax] if not isinstance(ax, Sequence) else list(ax)
    if len(given) != count:
        raise ValueError(
            f"resources(ax=...): {len(given)} Axes for {count} measure"
            f"{'s' if count != 1 else ''}; pass measure='cpu_time' or 'peak_rss' to draw "
            "into one Axes, or two Axes for both")
    return given


def _palette(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _resource_panel(ax: Axes, name: str, tasks: Sequence[TaskRow], x: str, t0: float,
                    colors: dict[str, Any]) -> None:
    label, unit, missing = MEASURES[name]
    by_app: dict[str, tuple[list[float], list[float]]] = {}
    for t in tasks:
        for a in t.tries:
            value = getattr(a, name)
            start = a.started if a.started is not None else a.launched
            if value is None or (x == "time" and start is None):
                continue
            xs, ys = by_app.setdefault(t.app, ([], []))
            xs.append(float(t.id) if x == "task" else float(start or 0.0) - t0)
            ys.append(value / unit)
    ax.set_ylabel(label, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    if not by_app:
        text = "no task has run in this record" if not any(t.tries for t in tasks) else missing
        ax.text(0.5, 0.5, "\n".join(_wrap(text, 70)), ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
        ax.set_yticks([])
        return
    for app, (xs, ys) in by_app.items():
        ax.scatter(xs, ys, s=14, color=colors[app], label=f"{app} ({len(xs)})", linewidths=0)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)
