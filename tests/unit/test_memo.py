"""livedag.memo: keys cover the app's source and arguments; checkpoints survive a restart."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from livedag.errors import BadCheckpoint
from livedag.memo import BasicMemoizer, get_all_checkpoints, get_last_checkpoint
from livedag.task import TaskRecord


def _record(func: Callable[..., Any], *, name: str = "f", ignore: tuple[str, ...] = ()) -> Any:
    return TaskRecord(id=0, app_name=name, func=func, args=(), kwargs={}, executor="t",
                      ignore_for_cache=ignore)


def _key(func: Callable[..., Any], *args: Any, name: str = "f",
         ignore: tuple[str, ...] = (), **kwargs: Any) -> str:
    return BasicMemoizer().key(_record(func, name=name, ignore=ignore), args, kwargs)


def _first(x: int, y: int = 0) -> int:
    return x + y


def test_same_function_and_arguments_give_the_same_key() -> None:
    assert _key(_first, 1, y=2) == _key(_first, 1, y=2)


def test_different_arguments_give_different_keys() -> None:
    assert _key(_first, 1) != _key(_first, 2)
    assert _key(_first, 1, y=2) != _key(_first, 1, y=3)
    assert _key(_first, 1) != _key(_first, 1, y=0)  # as called, not as defaulted


def test_keyword_order_does_not_matter() -> None:
    assert _key(_first, 1, y=2, z=3) == _key(_first, 1, z=3, y=2)


def test_app_name_is_part_of_the_key() -> None:
    assert _key(_first, 1, name="a") != _key(_first, 1, name="b")


def test_redefining_the_function_with_new_source_changes_the_key() -> None:
    def f(x: int) -> int:
        return x + 1

    old = _key(f, 1)

    def f(x: int) -> int:  # type: ignore[no-redef]  # redefined on purpose
        return x + 2

    assert _key(f, 1) != old


def test_the_same_source_defined_again_keeps_the_key() -> None:
    keys = set()
    for _ in range(2):
        def g(x: int) -> int:  # a new function object each time, as a re-run cell makes
            return x * 2

        keys.add(_key(g, 1))
    assert len(keys) == 1


def test_ignore_for_cache_leaves_keyword_out_of_the_key() -> None:
    assert _key(_first, 1, y=2, ignore=("y",)) == _key(_first, 1, y=99, ignore=("y",))


def test_unhashable_arguments_say_which_task() -> None:
    import threading

    with pytest.raises(ValueError, match="arguments of task 0 cannot be hashed for the cache"):
        _key(_first, threading.Lock())


def test_lookup_and_update() -> None:
    memo = BasicMemoizer()
    assert memo.lookup("k") == (False, None)
    memo.update("k", [1, 2])
    assert memo.lookup("k") == (True, [1, 2])


def test_task_exit_checkpoint_is_read_back_by_a_new_memoizer(tmp_path: Any) -> None:
    base = tmp_path / "runinfo"
    run = base / "000"
    run.mkdir(parents=True)
    memo = BasicMemoizer(checkpoint_mode="task_exit")
    memo.start(str(run))
    memo.update("key-1", {"answer": 42})
    assert (run / "checkpoint" / "tasks.pkl").exists()  # written at once

    assert get_all_checkpoints(str(base)) == [str(run / "checkpoint")]
    later = BasicMemoizer(checkpoint_files=get_last_checkpoint(str(base)))
    later.start(str(base / "001"))
    assert later.lookup("key-1") == (True, {"answer": 42})


def test_dfk_exit_checkpoint_is_written_at_close(tmp_path: Any) -> None:
    memo = BasicMemoizer(checkpoint_mode="dfk_exit")
    memo.start(str(tmp_path))
    memo.update("k", 1)
    assert not (tmp_path / "checkpoint").exists()
    memo.close()
    later = BasicMemoizer(checkpoint_files=[str(tmp_path / "checkpoint")])
    later.start(str(tmp_path))
    assert later.lookup("k") == (True, 1)


def test_without_checkpoint_mode_nothing_is_written(tmp_path: Any) -> None:
    memo = BasicMemoizer()
    memo.start(str(tmp_path))
    memo.update("k", 1)
    memo.close()
    assert memo.checkpoint() is None
    assert os.listdir(tmp_path) == []


def test_corrupt_checkpoint_is_a_bad_checkpoint(tmp_path: Any) -> None:
    path = tmp_path / "tasks.pkl"
    with open(path, "wb") as f:
        pickle.dump({"hash": "k", "result": 1}, f)
        f.write(b"\x80\x05garbage")
    memo = BasicMemoizer(checkpoint_files=[str(path)])
    with pytest.raises(BadCheckpoint, match=f"checkpoint file {str(path)!r} cannot be read"):
        memo.start(str(tmp_path))


def test_no_checkpoints_in_a_missing_run_dir(tmp_path: Any) -> None:
    assert get_all_checkpoints(str(tmp_path / "nowhere")) == []
    assert get_last_checkpoint(str(tmp_path / "nowhere")) == []


def test_key_of_set_and_dict_arguments_is_the_same_in_every_process():
    # Sets of strings iterate in a per-process order (hash randomisation); a checkpoint
    # written by one run must still be found by the next, so the key cannot depend on it.
    import subprocess
    import sys

    code = (
        "from livedag.memo import BasicMemoizer\n"
        "from livedag.task import TaskRecord\n"
        "def f(x):\n    return x\n"
        "r = TaskRecord(id=1, app_name='f', func=f, args=(), kwargs={}, executor='t')\n"
        "print(BasicMemoizer().key(r, ({'alpha', 'beta', 'gamma', 'delta', 'eps'},"
        " {'b': 1, 'a': frozenset({'x', 'y', 'z'})}), {}))\n"
    )
    keys = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)},
                       timeout=60).stdout.strip()
        for seed in (1, 2, 3, 4)
    }
    assert len(keys) == 1, keys
