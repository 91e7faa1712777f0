"""Parsl's `parsl.app.errors` path: the app error classes (defined in `livedag.errors`)."""

from livedag.errors import (
    AppBadFormatting,
    AppException,
    AppTimeout,
    BadStdStreamFile,
    BashAppNoReturn,
    BashExitFailure,
    MissingOutputs,
)

__all__ = [
    "AppBadFormatting",
    "AppException",
    "AppTimeout",
    "BadStdStreamFile",
    "BashAppNoReturn",
    "BashExitFailure",
    "MissingOutputs",
]
