"""livedag.futures without a kernel: File, DataFuture, and what an AppFuture shows."""

from __future__ import annotations

import os
import pickle
from concurrent.futures import Future
from typing import Any

import pytest

from livedag.futures import AppFuture, DataFuture, File
from livedag.task import TaskRecord, TaskState


@pytest.mark.parametrize(
    ("url", "scheme", "path"),
    [("/data/in.csv", "file", "/data/in.csv"),
     ("file:///data/in.csv", "file", "/data/in.csv"),
     ("relative/out.txt", "file", "relative/out.txt")],
)
def test_file_local_paths(url: str, scheme: str, path: str) -> None:
    f = File(url)
    assert (f.scheme, f.filepath, os.fspath(f), str(f)) == (scheme, path, path, path)
    assert f.filename == os.path.basename(path)


def test_remote_file_has_no_local_path_and_says_why() -> None:
    f = File("globus://endpoint/data/in.csv")
    assert (f.scheme, f.netloc, f.path) == ("globus", "endpoint", "/data/in.csv")
    with pytest.raises(ValueError, match="no local path for scheme 'globus'"):
        _ = f.filepath


def test_file_equality_hash_and_pickle() -> None:
    f = File("/a/b.txt")
    f.local_path = "/scratch/b.txt"
    back = pickle.loads(pickle.dumps(f))
    assert back == f and hash(back) == hash(f)
    assert back.filepath == "/scratch/b.txt"
    assert f.cleancopy().filepath == "/a/b.txt"
    assert File("/a/b.txt") != File("/a/c.txt")
    assert repr(f) == "<File '/a/b.txt'>"


def test_data_future_is_done_with_its_file() -> None:
    f = File("/out/x.txt")
    df = DataFuture(None, f, 4)  # type: ignore[arg-type]
    assert isinstance(df, Future)
    assert (df.tid, df.filepath, df.filename) == (4, "/out/x.txt", "x.txt")
    assert repr(df) == "<DataFuture '/out/x.txt' of task 4 pending>"
    df.set_result(f)
    assert df.result(timeout=1) is f
    assert repr(df) == "<DataFuture '/out/x.txt' of task 4 finished>"


def _app_future(**fields: Any) -> AppFuture:
    record = TaskRecord(id=7, app_name="fit", func=print, args=(), kwargs={}, executor="t",
                        **fields)
    return AppFuture(record, dfk=None)  # type: ignore[arg-type]


def test_app_future_shows_task_app_and_state() -> None:
    fut = _app_future(state=TaskState.DEP_FAIL)
    assert isinstance(fut, Future)
    assert fut.tid == 7
    assert fut.task_status() == "dep_fail"
    assert repr(fut) == "<AppFuture task 7 'fit' dep_fail>"


def test_app_future_leaves_private_names_alone() -> None:
    # IPython and numpy probe for attributes like these: they must not become tasks.
    fut = _app_future()
    assert not hasattr(fut, "_repr_html_")
    assert not hasattr(fut, "__array__")
