"""Parsl's module path for File and DataFuture."""

from livedag.futures import DataFuture, File

__all__ = ["DataFuture", "File"]
