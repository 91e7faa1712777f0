"""The executor contract (executors/base.py) as an executor from outside livedag meets it:
one that reports a try's start and resources as Event objects through `publish` alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

import livedag
from livedag import python_app
from livedag.events import TaskResources, TaskStateChanged
from livedag.executors.base import Executor, TaskCall
from livedag.task import TaskState


class EventExecutor(Executor):
    """An executor written against `publish(event)` alone, as one from outside livedag
    may be: it reports running and resources as Event objects, from its own thread."""

    label = "events"

    def submit(self, call: TaskCall) -> Future[Any]:
        fut: Future[Any] = Future()

        def run() -> None:
            self.publish(TaskStateChanged(time.time(), call.task_id, TaskState.RUNNING,
                                          call.try_number, "elsewhere", 4242, "b7", "job-9"))
            value = call.fn(*call.args, **call.kwargs)
            self.publish(TaskResources(time.time(), call.task_id, call.try_number,
                                       0.5, 123 << 20, 0.75))
            fut.set_result(value)

        threading.Thread(target=run).start()
        return fut


def test_an_executor_publishing_running_and_resources_as_events_is_understood(
    tmp_path: Any, recorder: Any
) -> None:
    dfk = livedag.load(livedag.Config(executors=[EventExecutor()], run_dir=str(tmp_path)))
    try:
        dfk.bus.subscribe(recorder)
        fut = python_app(executors=["events"])(lambda: 7)()
        assert fut.result(timeout=10) == 7
        assert dfk.bus.flush(5)
        (attempt,) = fut.task_record.tries
        assert (attempt.host, attempt.pid, attempt.block_id, attempt.job_id) == (
            "elsewhere", 4242, "b7", "job-9")
        assert (attempt.cpu_time, attempt.peak_rss) == (0.5, 123 << 20)
        assert recorder.states(fut.tid) == ["launched", "running", "exec_done"]
        (running,) = [e for e in recorder.of(TaskStateChanged, fut.tid) if e.pid == 4242]
        assert (running.host, running.block_id, running.job_id) == ("elsewhere", "b7", "job-9")
        (used,) = recorder.of(TaskResources, fut.tid)
        assert (used.cpu_time, used.peak_rss, used.wall_time) == (0.5, 123 << 20, 0.75)
    finally:
        livedag.clear()
