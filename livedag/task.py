"""The task record: one per app call, its states and the legal moves between them.

A task moves::

    pending ──> launched ──> running ──> exec_done
       │  │        │            │  └──> joining ──> exec_done | failed   (join apps)
       │  │        │            └─────> failed ──(resubmit)──> pending
       │  │        └──(retry)──────────> pending
       │  ├──> memo_done            (result found in the cache or a checkpoint)
       │  └──> dep_fail ──(resubmit of its root cause)──> pending
       └──> cancelled

This module does no I/O and knows no executor: the DataFlowKernel drives the moves.
State values are Parsl's names, so `future.task_status()` reads the same as in Parsl.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Final

from livedag.errors import InternalConsistencyError

if TYPE_CHECKING:
    from livedag.futures import AppFuture, DataFuture


class TaskState(enum.Enum):
    PENDING = "pending"
    LAUNCHED = "launched"
    RUNNING = "running"
    JOINING = "joining"
    EXEC_DONE = "exec_done"
    MEMO_DONE = "memo_done"
    FAILED = "failed"
    DEP_FAIL = "dep_fail"
    CANCELLED = "cancelled"

    # Members are equal only to themselves, so their identity is a valid hash, and one
    # computed in C: Enum's own hashes the name in Python (~90 ns per set or dict lookup
    # instead of ~20), and the engine and the widget look states up several times a task.
    __hash__ = object.__hash__

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_failure(self) -> bool:
        return self in FAILURE_STATES


# Parsl's name for the enum.
States = TaskState


class StateMembers:
    """TaskState's members as plain class attributes, for the engine's hot paths.

    On Python 3.11 `TaskState.RUNNING` goes through EnumType.__getattr__'s slot: ~70 ns a
    read against ~15 for a plain class attribute, and the kernel reads a dozen states per
    task. `StateMembers.RUNNING is TaskState.RUNNING`.
    """

    PENDING: Final = TaskState.PENDING
    LAUNCHED: Final = TaskState.LAUNCHED
    RUNNING: Final = TaskState.RUNNING
    JOINING: Final = TaskState.JOINING
    EXEC_DONE: Final = TaskState.EXEC_DONE
    MEMO_DONE: Final = TaskState.MEMO_DONE
    FAILED: Final = TaskState.FAILED
    DEP_FAIL: Final = TaskState.DEP_FAIL
    CANCELLED: Final = TaskState.CANCELLED


FINAL_STATES = frozenset(
    {
        TaskState.EXEC_DONE,
        TaskState.MEMO_DONE,
        TaskState.FAILED,
        TaskState.DEP_FAIL,
        TaskState.CANCELLED,
    }
)
FAILURE_STATES = frozenset({TaskState.FAILED, TaskState.DEP_FAIL, TaskState.CANCELLED})

_S = StateMembers
LEGAL_MOVES: dict[TaskState, frozenset[TaskState]] = {
    _S.PENDING: frozenset({_S.LAUNCHED, _S.MEMO_DONE, _S.DEP_FAIL, _S.CANCELLED, _S.FAILED}),
    # A try launched before its inputs were done (forwarding.py) ends as a dependency
    # failure if one of them failed in the kernel after all.
    _S.LAUNCHED: frozenset(
        {_S.RUNNING, _S.EXEC_DONE, _S.FAILED, _S.PENDING, _S.JOINING, _S.CANCELLED,
         _S.DEP_FAIL}
    ),
    _S.RUNNING: frozenset({_S.EXEC_DONE, _S.FAILED, _S.PENDING, _S.JOINING, _S.DEP_FAIL}),
    _S.JOINING: frozenset({_S.EXEC_DONE, _S.FAILED}),
    _S.EXEC_DONE: frozenset(),
    _S.MEMO_DONE: frozenset(),
    # A failed, blocked or cancelled task goes back to pending only through resubmit.
    _S.FAILED: frozenset({_S.PENDING}),
    _S.DEP_FAIL: frozenset({_S.PENDING}),
    _S.CANCELLED: frozenset({_S.PENDING}),
}


class IllegalTransition(InternalConsistencyError):
    """A bug in livedag: the kernel tried a move the state machine does not allow."""


def check_move(task_id: int, old: TaskState, new: TaskState) -> None:
    if new not in LEGAL_MOVES[old]:
        raise IllegalTransition(f"task {task_id}: {old.value} -> {new.value} is not a legal move")


@dataclasses.dataclass(slots=True)
class TryRecord:
    """One attempt at running a task (a retry or a resubmit starts a new one)."""

    number: int
    executor: str
    launched: float = 0.0
    started: float | None = None
    ended: float | None = None
    host: str = ""
    pid: int | None = None
    block_id: str | None = None
    job_id: str | None = None
    outcome: str = ""  # a final state value once the try has ended
    exc_type: str = ""
    message: str = ""
    cpu_time: float | None = None  # seconds, as measured where it ran (TaskResources)
    peak_rss: int | None = None  # bytes; None when the executor cannot tell


class OutputBuffer:
    """Captured text of one stream, bounded: past `limit` characters the head is dropped."""

    __slots__ = ("_chunks", "_size", "dropped", "limit")

    def __init__(self, limit: int = 1 << 20) -> None:
        # A list from the first text on: most tasks print nothing, and an empty tuple is
        # one object fewer for the garbage collector to track per stream per task.
        self._chunks: list[str] | tuple[()] = ()
        self._size = 0
        self.dropped = 0
        self.limit = limit

    def append(self, text: str) -> None:
        if self._chunks:
            self._chunks.append(text)
        else:
            self._chunks = [text]
        self._size += len(text)
        if self._size > self.limit:
            joined = "".join(self._chunks)
            cut = len(joined) - self.limit // 2
            self.dropped += cut
            self._chunks = [joined[cut:]]
            self._size = len(self._chunks[0])

    def text(self) -> str:
        if len(self._chunks) > 1:
            self._chunks = ["".join(self._chunks)]
        body = self._chunks[0] if self._chunks else ""
        if self.dropped:
            return f"[... {self.dropped} characters dropped ...]\n{body}"
        return body

    def clear(self) -> None:
        self._chunks = ()
        self._size = 0
        self.dropped = 0

    def __bool__(self) -> bool:
        return self._size > 0


# What a task that printed nothing holds (shared, never appended to: TaskRecord.capture).
NO_OUTPUT = OutputBuffer(limit=0)


@dataclasses.dataclass(eq=False, slots=True)
class TaskRecord:
    """Everything the kernel knows about one app call.

    `depends_on` holds the futures this task waits for; `dependents` the records that wait
    for this one (kept until the task succeeds, for resubmit). `args`/`kwargs` are released
    once the task succeeds, so a finished task holds no payload; while a try runs on an
    executor that keeps them (`lent`, see Executor.returns_arguments) they are () and {},
    and a try that fails brings them back.
    Parsl's retry handlers read a record with `record["fail_count"]`: item access works.
    """

    id: int
    app_name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    executor: str
    kind: str = "python"  # python | bash | join | internal
    state: TaskState = TaskState.PENDING
    # The links and captures below are () or NO_OUTPUT until a task has some: a kept task
    # is then three objects the garbage collector tracks (record, tries, try) instead of
    # eight, and every full collection walks every kept task.
    depends_on: Sequence[Future[Any]] = ()
    dependents: list[TaskRecord] | tuple[()] = ()
    pending_deps: int = 0
    app_fu: AppFuture | None = None
    outputs: list[DataFuture] | tuple[()] = ()
    origin: str | None = None
    label: str | None = None
    resource_spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    walltime: float | None = None
    memoize: bool = False
    ignore_for_cache: tuple[str, ...] = ()
    hashsum: str | None = None
    fail_count: float = 0
    tries: list[TryRecord] = dataclasses.field(default_factory=list)
    stdout: OutputBuffer = NO_OUTPUT  # see capture()
    stderr: OutputBuffer = NO_OUTPUT
    exception: BaseException | None = None
    root_cause_ids: tuple[int, ...] = ()
    time_invoked: float = dataclasses.field(default_factory=time.time)
    time_returned: float | None = None
    joins: Any = None  # what a join app returned, while it is joining
    exec_fu: Future[Any] | None = None  # the executor's future of the current try
    claimed: bool = False  # the kernel has begun launching this try (cancel() is too late)
    lent: bool = False  # args/kwargs are with the executor (lost, if the try ended so)
    # The current try's inputs still to come when it was launched, by task id (see
    # forwarding.py): their futures stand in for them in arguments given back.
    forwarded: dict[int, Any] | None = None
    # The state observers (events, task_status) see, when it is not `state` (see
    # forwarding.py): PENDING for a try launched ahead of its inputs, until they are done
    # or it starts, as without forwarding; LAUNCHED for a task shown launched whose try
    # was given back, until it is launched again at once.
    shown: TaskState | None = None
    # The arguments in short, as the TaskCreated event gave them (when someone listened):
    # a view opened later shows them for tasks that no longer hold their arguments.
    args_summary: str | None = None
    pending_joins: int = 0

    def capture(self, stream: str, text: str) -> None:
        """Keep what the task printed on `stream` ("stdout" or "stderr")."""
        buf = self.stdout if stream == "stdout" else self.stderr
        if buf is NO_OUTPUT:
            buf = OutputBuffer()
            setattr(self, stream, buf)
        buf.append(text)

    def add_dependent(self, record: TaskRecord) -> None:
        if self.dependents:
            self.dependents.append(record)
        else:
            self.dependents = [record]

    @property
    def try_number(self) -> int:
        return len(self.tries)

    @property
    def current_try(self) -> TryRecord | None:
        return self.tries[-1] if self.tries else None

    @property
    def func_name(self) -> str:
        return self.app_name

    @property
    def status(self) -> TaskState:
        return self.state

    def __getitem__(self, key: str) -> Any:
        # Parsl's TaskRecord is a TypedDict; retry handlers written for it keep working.
        aliases = {"app_fu": "app_fu", "fn_hash": "hashsum", "try_id": "try_number"}
        return getattr(self, aliases.get(key, key))
