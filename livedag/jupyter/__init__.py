"""livedag in Jupyter: a live DAG widget, cell tagging, readable task errors.

    %load_ext livedag.jupyter   (or `%load_ext livedag` once livedag/__init__.py forwards)
        -> extension.load_ipython_extension: default config, cell tags, %dag, error rendering
    livedag.jupyter.show()      -> the widget for the loaded kernel (widget.DagWidget)

Nothing here is imported by the engine; `import livedag.jupyter` itself is cheap and pulls
in IPython, anywidget and networkx only when something is used.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    from livedag.jupyter.extension import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from livedag.jupyter.extension import unload_ipython_extension as unload

    unload(ipython)


def show(dfk: Any = None, *, run_dir: str | None = None) -> Any:
    """Display (and return) the DAG widget of `dfk` (default: the loaded kernel), or of
    the run recorded in `run_dir` (read-only, e.g. after a kernel restart)."""
    from livedag.jupyter.extension import show as _show

    return _show(dfk, run_dir=run_dir)


__all__ = ["load_ipython_extension", "show", "unload_ipython_extension"]
