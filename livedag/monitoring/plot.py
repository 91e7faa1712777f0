"""Pictures of a recorded run, drawn with matplotlib.figure.Figure (never pyplot: no global
state, no display needed; a notebook shows the returned Figure as a PNG).

    history(run_dir) ──> tries ──> timeline(): one bar per try, a lane per worker or block,
                                   coloured by the try's outcome

No `resources()` yet: CPU time and peak memory per task need workers that sample them
(psutil) and report them with the result; the record holds none so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
