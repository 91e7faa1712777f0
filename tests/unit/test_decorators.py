"""livedag.apps without a kernel: the decorators, with and without parentheses, and the
keyword arguments that reach the function."""

from __future__ import annotations

from typing import Any

import pytest

import livedag
from livedag.apps import BashApp, JoinApp, PythonApp, call_kwargs
from livedag.errors import NoDataFlowKernelError


def test_decorators_without_parentheses() -> None:
    @livedag.python_app
    def p(x: int) -> int:
        """Doc of p."""
        return x

    @livedag.bash_app
    def b() -> str:
        return "true"

    @livedag.join_app
    def j() -> Any:
        return None

    assert (type(p), type(b), type(j)) == (PythonApp, BashApp, JoinApp)
    assert (p.__name__, p.__doc__) == ("p", "Doc of p.")
    assert (p.cache, p.executors, p.ignore_for_cache, p.data_flow_kernel) == (False, "all", (),
                                                                               None)


def test_decorators_with_options() -> None:
    kernel = object()

    @livedag.python_app(executors=["gpu"], cache=True, ignore_for_cache=["seed"],
                        data_flow_kernel=kernel)  # type: ignore[arg-type]
    def p(x: int, seed: int = 0) -> int:
        return x

    @livedag.bash_app()
    def b() -> str:
        return "true"

    @livedag.join_app(cache=True)
    def j() -> Any:
        return None

    assert (type(p), type(b), type(j)) == (PythonApp, BashApp, JoinApp)
    assert (p.executors, p.cache, p.ignore_for_cache) == (["gpu"], True, ("seed",))
    assert p.data_flow_kernel is kernel
    assert j.cache is True
    assert repr(p) == "<PythonApp p>"


def test_calling_an_app_before_load_says_to_load() -> None:
    @livedag.python_app
    def p() -> None:
        pass

    for call in (p, livedag.dfk, livedag.wait_for_current_tasks):
        with pytest.raises(NoDataFlowKernelError, match=r"^Must first load config$"):
            call()


def test_bash_app_merges_every_default_python_app_only_special_ones() -> None:
    @livedag.bash_app
    def b(name: str = "world", stdout: Any = None, n: int = 3) -> str:
        return "echo {name}"

    @livedag.python_app
    def p(name: str = "world", walltime: float = 5.0) -> str:
        return name

    assert b.kwargs == {"name": "world", "stdout": None, "n": 3}
    assert p.kwargs == {"walltime": 5.0}


def test_special_keywords_reach_only_functions_that_declare_them() -> None:
    def plain(x: int, outputs: Any = ()) -> None:
        pass

    def takes_all(**kwargs: Any) -> None:
        pass

    kw = {"x": 1, "walltime": 2, "stdout": "o", "outputs": ["f"], "custom": 3}
    assert call_kwargs(plain, kw) == {"x": 1, "outputs": ["f"], "custom": 3}
    assert call_kwargs(takes_all, kw) == kw
