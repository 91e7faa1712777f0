"""Parsl's module paths under `parsl.app`, for code that imports from there:
`from livedag.app.app import python_app`, `from livedag.app.errors import BashExitFailure`.
The definitions live in `livedag.apps` and `livedag.errors`."""
