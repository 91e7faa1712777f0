"""Parsl's `parsl.app.app` path: the app decorators (defined in `livedag.apps`)."""

from livedag.apps import AppBase, bash_app, join_app, python_app

__all__ = ["AppBase", "bash_app", "join_app", "python_app"]
