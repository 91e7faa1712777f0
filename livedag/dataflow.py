"""The DataFlowKernel: turns app calls into tasks and runs each one when its inputs are ready.

    app(*args) ─> submit ─> TaskRecord + AppFuture ─> (inputs pending) ─> _dep_done ...
                                                          │ all inputs done
                                                          v
                 memo hit ─> memo_done          _launch_if_ready ─> dep_fail (an input failed)
                                                          │
                                                          v
             executor.submit(TaskCall) ─> exec future ─> _exec_done ─> exec_done|retry|failed
                                                                       └─> joining (join apps)

Completing one future can complete many others (memo hits, dependency failures, lifted
`fut[key]`). Those cascades go through a per-thread work queue (`_soon`) instead of nested
callbacks, so a 10,000-step chain of failures never hits Python's recursion limit.
The kernel publishes events for every move; it never imports the UI, sockets or schedulers.

Nearby: `dependency_resolvers` finds the futures in a call and their values; `steering`
cancels and resubmits tasks on the user's behalf; `loader` holds the loaded kernel
(`livedag.load()`, Parsl's DataFlowKernelLoader).
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import itertools
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from livedag import events as ev
from livedag import forwarding, loader, steering
from livedag.apps import (
    AUTO_LOGNAME,
    SPECIAL_KWARGS,
    AppBase,
    call_kwargs,
    run_bash,
    run_with_walltime,
)
from livedag.config import Config
from livedag.dependency_resolvers import gather, unwrap, without_future_defaults
from livedag.errors import (
    ConfigurationError,
    DependencyError,
    ExecutorError,
    JoinError,
    NoDataFlowKernelError,
    PropagatedException,
    RemoteError,
    RootCause,
    TaskCancelled,
    TaskContext,
    exception_message,
    exception_name,
)
from livedag.executors.base import Executor, InputsNotForwarded, Reports, TaskCall
from livedag.futures import AppFuture, DataFuture, File, LightFuture, record_of
from livedag.serialize import unpack_arguments
from livedag.task import StateMembers, TaskRecord, TaskState, TryRecord, check_move

logger = logging.getLogger("livedag")

INTERNAL = "_livedag_internal"
_S = StateMembers


class _InlineExecutor(Executor):
    """Runs tiny internal tasks (lifted `fut[key]`, `fut.attr`) right where they become ready."""

    label = "_livedag_inline"

    def submit(self, call: TaskCall) -> Future[Any]:
        fut: Future[Any] = LightFuture()
        try:
            fut.set_result(call.fn(*call.args, **call.kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


class DataFlowKernel:
    """Owns the tasks of one loaded Config and the executors that run them."""

    def __init__(self, config: Config | None = None) -> None:
        from livedag.executors.threads import ThreadPoolExecutor

        self.config = config if config is not None else Config()
        if not isinstance(self.config, Config):
            raise ConfigurationError(
                f"livedag.load() takes a livedag.Config, got {type(self.config).__name__}"
            )
        self.run_dir = _make_run_dir(self.config.run_dir)
        self._log_handler = _start_logging(self.config, self.run_dir)
        self.bus = ev.EventBus()
        self._reports = Reports(self._on_executor_event)  # what executors tell the kernel
        # Running and resources straight to the kernel, without Event objects.
        self._reports.running = self._on_running  # type: ignore[method-assign]
        self._reports.used = self._on_used  # type: ignore[method-assign]
        # The run record subscribes before executors start, so it sees their first block
        # events. Duck-typed (a RunRecord from Config.monitoring): no import here.
        if self.config.monitoring is not None:
            self.config.monitoring.attach(self)
        self.tasks: dict[int, TaskRecord] = {}
        self._ids = itertools.count()
        self._last_id = -1
        self._lock = threading.Lock()
        self._tl = threading.local()
        self._closed = False
        self.task_origin: str | None = None  # set by the Jupyter extension per cell
        # A kernel loaded on the user's behalf (by %load_ext livedag) gives way to the
        # user's own livedag.load(config) as long as it has run no task.
        self.replaceable = False
        self.hostname = socket.gethostname()
        self._resolver = self.config.dependency_resolver

        self.memoizer = self.config.memoizer
        memo = self.memoizer
        if memo.checkpoint_files is None and memo.memoize and memo.checkpoint_mode is not None:
            # As in Parsl: with checkpointing on, earlier runs' checkpoints in the same run
            # dir are loaded, so re-running the same calls after a restart reuses results.
            from livedag.memo import get_all_checkpoints

            self.memoizer.checkpoint_files = get_all_checkpoints(self.config.run_dir)
        self.memoizer.start(self.run_dir)

        self.executors: dict[str, Executor] = {}
        self._forwards = False  # an executor forwards results (see forwarding.py)
        internal = ThreadPoolExecutor(
            label=INTERNAL, max_threads=self.config.internal_tasks_max_threads
        )
        self._inline = _InlineExecutor()
        for ex in [*self.config.executors, internal, self._inline]:
            self._start_executor(ex)
        self._user_labels = [ex.label for ex in self.config.executors]
        logger.info("livedag kernel loaded: run dir %s, executors %s", self.run_dir,
                    ", ".join(self._user_labels))
        loader.run_load_hooks(self)

    # ------------------------------------------------------------ executors
    def _start_executor(self, ex: Executor) -> None:
        # The scaling strategy is configured on the kernel (Parsl's Config fields) and
        # carried out by executors that scale.
        for name in ("strategy", "strategy_period", "max_idletime"):
            if hasattr(ex, name):
                setattr(ex, name, getattr(self.config, name))
        try:
            ex.start(self._reports, self.run_dir)
        except Exception as exc:
            for started in [*self.executors.values(), ex]:
                try:
                    started.shutdown()
                except Exception:
                    logger.exception("shutting down executor %r failed", started.label)
            raise ExecutorError(ex.label, f"failed to start: {type(exc).__name__}: {exc}") from exc
        self.executors[ex.label] = ex
        self._forwards = self._forwards or ex.forwards_results

    def add_executors(self, executors: Iterable[Executor]) -> None:
        for ex in executors:
            if ex.label in self.executors:
                raise ConfigurationError(f"an executor labelled {ex.label!r} is already loaded")
            self._start_executor(ex)
            self._user_labels.append(ex.label)

    def _on_executor_event(self, event: ev.Event) -> None:
        """Executors publish what tasks print (and their blocks' moves) here; then it goes
        on the bus. (Running and resources come as calls: _on_running, _on_used.)"""
        kind = type(event)
        if kind is ev.TaskOutput:
            record = self.tasks.get(event.task_id)  # type: ignore[attr-defined]
            if record is not None and record.try_number == event.try_number:  # type: ignore[attr-defined]
                record.capture(event.stream, event.text)  # type: ignore[attr-defined]
        elif kind is ev.TaskStateChanged and event.state is _S.RUNNING:  # type: ignore[attr-defined]
            e: Any = event  # published as an Event by an executor of someone else's
            self._on_running(e.task_id, e.try_number, e.time, e.host, e.pid, e.block_id, e.job_id)
            return
        elif kind is ev.TaskResources:
            e = event
            self._on_used(e.task_id, e.try_number, e.time, e.cpu_time, e.peak_rss, e.wall_time)
            return
        bus = self.bus
        if bus.active:
            bus.log.append(event)  # bus.publish(event), inline (see EventBus)
            if bus.asleep:
                bus.wake()

    def _on_running(self, task_id: int, try_number: int, when: float, host: str = "",
                    pid: int | None = None, block_id: str | None = None,
                    job_id: str | None = None) -> None:
        """An executor says a try started (Reports.running)."""
        record = self.tasks.get(task_id)
        if record is None:
            return
        with self._lock:
            if record.state is not _S.LAUNCHED or record.try_number != try_number:
                return
            record.state = _S.RUNNING
            ahead = record.shown is _S.PENDING
            record.shown = None
        if ahead:
            self._show_launch(record)
        t = record.tries[-1]
        t.started, t.host, t.pid, t.block_id, t.job_id = when, host, pid, block_id, job_id
        bus = self.bus
        if bus.active:  # bus.emit(TaskStateChanged, ...), inline (see EventBus)
            bus.log += (ev.TaskStateChanged, 8, when, task_id, _S.RUNNING, try_number, host,
                        pid, block_id, job_id)
            if bus.asleep:
                bus.wake()

    def _on_used(self, task_id: int, try_number: int, when: float, cpu_time: float,
                 peak_rss: int, wall_time: float) -> None:
        """An executor says what a try used (Reports.used), before its future ends."""
        record = self.tasks.get(task_id)
        if record is not None and len(record.tries) >= try_number:
            t = record.tries[try_number - 1]
            t.cpu_time, t.peak_rss = cpu_time, peak_rss or None
        bus = self.bus
        if bus.active:  # bus.emit(TaskResources, ...), inline (see EventBus)
            bus.log += (ev.TaskResources, 6, when, task_id, try_number, cpu_time, peak_rss,
                        wall_time)
            if bus.asleep:
                bus.wake()

    # ------------------------------------------------------------ submit
    def submit(self, app: AppBase, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AppFuture:
        """Make a task for one app call; it runs when its inputs are ready."""
        if self._closed:
            raise NoDataFlowKernelError(
                f"cannot run {app.__name__!r}: this DataFlowKernel was cleaned up; "
                "call livedag.load() again"
            )
        kw = {**app.kwargs, **kwargs} if app.kwargs else dict(kwargs)
        label = self._pick_executor(app)
        self._last_id = tid = next(self._ids)
        record = TaskRecord(
            id=tid,
            app_name=app.__name__,
            func=app.func,
            args=args,
            kwargs=kw,
            executor=label,
            kind=app.kind,
            memoize=app.cache and self.memoizer.memoize,
            ignore_for_cache=app.ignore_for_cache,
            origin=self.task_origin,
        )
        if kw:
            self._special_kwargs(record, kw)
        fut = AppFuture(record, self)
        record.app_fu = fut
        for df in record.outputs:
            df.app_fut = fut
        return self._enter(record, fut)

    def submit_internal(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> AppFuture:
        """A tiny task of livedag's own (Parsl's lifted `fut[key]` and `fut.attr`)."""
        record = TaskRecord(id=next(self._ids), app_name=name, func=fn, args=args, kwargs={},
                            executor=self._inline.label, kind="internal",
                            origin=self.task_origin)
        fut = AppFuture(record, self)
        record.app_fu = fut
        return self._enter(record, fut)

    def _enter(self, record: TaskRecord, fut: AppFuture) -> AppFuture:
        deps = gather(record.args, record.kwargs, self._resolver)
        self.tasks[record.id] = record
        bus = self.bus
        if bus.active:
            dep_ids = tuple(d.tid for d in deps if isinstance(d, (AppFuture, DataFuture))
                            ) if deps else ()
            record.args_summary = (ev.summarize_args(record.args, record.kwargs)
                                   if record.args or record.kwargs else "")
            # bus.emit(TaskCreated, ...), inline (see EventBus)
            bus.log += (ev.TaskCreated, 8, time.time(), record.id, record.app_name,
                        record.kind, record.executor, dep_ids, record.origin,
                        record.args_summary)
            if bus.asleep:
                bus.wake()
        if deps:
            record.depends_on = deps
            # One extra count while callbacks are added: an input that is already done
            # calls back at once, and must not launch the task before all are counted.
            record.pending_deps = len(deps) + 1
            for d in deps:
                parent = record_of(d)
                if parent is not None and parent.state not in (_S.EXEC_DONE, _S.MEMO_DONE):
                    with self._lock:  # its first dependent makes the list: not twice at once
                        parent.add_dependent(record)
                d.add_done_callback(functools.partial(self._dep_done, record))
            self._dep_done(record, None)
            if record.pending_deps and self._forwards:
                forwarding.try_forward(self, record)
        else:
            self._soon(self._launch_if_ready, record)
        return fut

    def _pick_executor(self, app: AppBase) -> str:
        if app.kind == "join":
            return INTERNAL
        wanted = app.executors
        if wanted == "all":
            labels = self._user_labels
            return labels[0] if len(labels) == 1 else random.choice(labels)
        if isinstance(wanted, str):
            wanted = [wanted]
        unknown = [w for w in wanted if w not in self._user_labels]
        if unknown or not wanted:
            raise ConfigurationError(
                f"app {app.__name__!r} asks for executor(s) {unknown or wanted}, but the loaded "
                f"Config has {self._user_labels}"
            )
        return wanted[0] if len(wanted) == 1 else random.choice(wanted)

    def _special_kwargs(self, record: TaskRecord, kw: dict[str, Any]) -> None:
        if "walltime" in kw:
            record.walltime = kw["walltime"]
        if "label" in kw:
            record.label = kw["label"]
        spec = kw.get("parsl_resource_specification")
        if spec:
            record.resource_spec = dict(spec)
        for stream in ("stdout", "stderr"):
            target = kw.get(stream)
            if type(target) is int and target == AUTO_LOGNAME:
                autopath = self.config.std_autopath or self._default_std_autopath
                kw[stream] = autopath(record, stream)
        outputs = kw.get("outputs")
        if outputs:
            files = [o if isinstance(o, File) else File(o) for o in outputs]
            kw["outputs"] = files
            record.outputs = [DataFuture(None, f, record.id) for f in files]  # type: ignore[arg-type]

    def _default_std_autopath(self, record: TaskRecord, stream: str) -> str:
        label = "" if record.label is None else f"_{record.label}"
        return os.path.join(
            self.run_dir, "task_logs", str(record.id // 10000).zfill(4),
            f"task_{str(record.id).zfill(4)}_{record.app_name}{label}.{stream}",
        )

    # ------------------------------------------------------------ the work queue
    def _soon(self, fn: Callable[..., None], *args: Any) -> None:
        """Run fn(*args) now, or after the step this thread is already in (no recursion)."""
        tl = self._tl
        queue = getattr(tl, "queue", None)
        if queue is not None:
            queue.append((fn, args))
            return
        tl.queue = queue = collections.deque([(fn, args)])
        try:
            while queue:
                f, a = queue.popleft()
                try:
                    f(*a)
                except Exception as exc:  # a bug in livedag: fail the task, keep going
                    logger.exception("livedag internal error in %s", f.__name__)
                    if a and isinstance(a[0], TaskRecord):
                        self._fail(a[0], exc)
        finally:
            tl.queue = None

    # ------------------------------------------------------------ moves
    def _move(self, record: TaskRecord, new: TaskState, when: float | None = None) -> None:
        """`record` is now in state `new` (since `when`, if the caller has the time)."""
        check_move(record.id, record.state, new)
        record.state = new
        record.shown = None  # (a try launched ahead ends shown, whatever its end)
        bus = self.bus
        if bus.active:  # bus.emit(TaskStateChanged, ...), inline (see EventBus)
            bus.log += (ev.TaskStateChanged, 4, when or time.time(), record.id, new,
                        record.try_number)
            if bus.asleep:
                bus.wake()

    def _dep_done(self, record: TaskRecord, _dep: Future[Any] | None) -> None:
        with self._lock:
            record.pending_deps -= 1
            ready = record.pending_deps == 0 and record.state is _S.PENDING
            # Launched ahead, and now really waiting for a worker. (Not if an input
            # failed: the executor gives the try back, and it becomes a dependency
            # failure with nothing shown in between.)
            shown = (record.pending_deps == 0 and record.shown is _S.PENDING
                     and forwarding.inputs_succeeded(record))
            if shown:
                record.shown = None
        if ready:
            self._soon(self._launch_if_ready, record)
        elif shown:
            self._show_launch(record)

    def _show_launch(self, record: TaskRecord) -> None:
        """A try launched ahead of its inputs is shown launched once they are done (or it
        starts): until then it waits for them, as a pending task does."""
        if self.bus.active:
            self.bus.emit(ev.TaskStateChanged, time.time(), record.id, _S.LAUNCHED,
                          record.try_number)

    def _launch_if_ready(self, record: TaskRecord) -> None:
        with self._lock:
            if record.state is not _S.PENDING or record.claimed:
                return
            record.claimed = True
        deps = record.depends_on
        if deps and not all(d.done() for d in deps):
            # Only a counting bug gets here; waiting would block this thread for good.
            logger.error("task %d was woken with inputs still pending; it waits for them",
                         record.id)
            with self._lock:
                record.claimed = False
            return
        failed = [d for d in deps if d.cancelled() or d.exception() is not None]
        if failed:
            self._dep_fail(record, failed)
            return
        args, kwargs = unwrap(record.args, record.kwargs, self._resolver) if deps else (
            record.args, record.kwargs)
        if record.memoize:
            try:
                record.hashsum = self.memoizer.key(record, args, kwargs)
            except ValueError as exc:
                logger.warning("%s; task %d runs without the cache", exc, record.id)
            else:
                hit, value = self.memoizer.lookup(record.hashsum)
                if hit:
                    record.tries.append(TryRecord(len(record.tries) + 1, "cache", time.time()))
                    self._succeed(record, value, _S.MEMO_DONE)
                    return
        self._launch(record, args, kwargs)

    def _launch(self, record: TaskRecord, args: tuple[Any, ...], kwargs: dict[str, Any],
                inputs: dict[int, tuple[Future[Any], int]] | None = None) -> None:
        """Start a try. `inputs`: futures in the arguments whose results the executor
        will put there (forwarding.try_forward)."""
        executor = self.executors[record.executor]
        now = time.time()
        attempt = TryRecord(len(record.tries) + 1, record.executor, now)
        record.tries.append(attempt)
        if record.stdout or record.stderr:
            record.stdout.clear()
            record.stderr.clear()
        fn: Callable[..., Any] = without_future_defaults(record.func)
        plain = record.kind == "python"  # the call carries exactly the task's arguments
        if record.kind == "bash":
            fn = functools.partial(run_bash, fn)
        elif kwargs and not SPECIAL_KWARGS.isdisjoint(kwargs):
            plain = False
            kwargs = call_kwargs(fn, kwargs)
            if record.walltime is not None and record.kind == "python":
                fn = functools.partial(run_with_walltime, record.walltime, record.func)
        call = TaskCall(record.id, attempt.number, record.app_name, fn, args, kwargs,
                        record.resource_spec, inputs)
        record.forwarded = {tid: f for tid, (f, _) in inputs.items()} if inputs else None
        if inputs or record.shown is _S.LAUNCHED:
            # Shown later (_show_launch), or shown already (forwarding.unforward).
            check_move(record.id, record.state, _S.LAUNCHED)
            record.state, record.shown = _S.LAUNCHED, _S.PENDING if inputs else None
        else:
            self._move(record, _S.LAUNCHED, now)
        try:
            exec_fu = executor.submit(call)
        except Exception as exc:  # e.g. an argument that cannot be serialized
            self._try_failed(record, exc)
            return
        record.exec_fu = exec_fu
        if plain and executor.returns_arguments and not exec_fu.done():
            # The executor keeps them now: a big argument is not held twice while its
            # task waits and runs. A try that fails brings them back (_take_back).
            record.lent = True
            record.args, record.kwargs = (), {}
        exec_fu.add_done_callback(functools.partial(self._exec_done, record, attempt.number))
        if record.dependents and self._forwards:
            # Tasks that wait for this one may now go ahead of its result (forwarding.py):
            # those that came before it was launched, or were given back.
            for waiting in record.dependents:
                if waiting.state is _S.PENDING and not waiting.claimed:
                    self._soon(forwarding.try_forward, self, waiting)

    def _exec_done(self, record: TaskRecord, try_number: int, exec_fu: Future[Any]) -> None:
        with self._lock:
            if record.try_number != try_number or record.state not in (_S.LAUNCHED, _S.RUNNING):
                return  # a try that was cancelled or superseded
        record.tries[-1].ended = ended = time.time()
        record.exec_fu = None
        if exec_fu.cancelled():
            return  # cancel() already moved the task
        exc = exec_fu.exception()
        if exc is not None:
            if record.lent:
                self._take_back(record, exec_fu)
            if type(exc) is InputsNotForwarded and not record.lent:
                forwarding.unforward(self, record)
            else:
                self._try_failed(record, exc)
        elif record.forwarded and (failed := forwarding.failed_inputs(record)):
            self._dep_fail(record, failed)
        elif record.kind == "join":
            self._start_join(record, exec_fu.result())
        else:
            self._succeed(record, exec_fu.result(), _S.EXEC_DONE, ended)

    def _succeed(self, record: TaskRecord, value: Any, state: TaskState,
                 when: float | None = None) -> None:
        now = when or time.time()
        self._move(record, state, now)
        attempt = record.tries[-1] if record.tries else None
        if attempt is not None:
            attempt.outcome = state.value
        if state is _S.EXEC_DONE and record.hashsum is not None:
            self.memoizer.update(record.hashsum, value)
        record.time_returned = now
        # A finished task keeps no payload and no links: only its result, in the future.
        record.args = ()
        record.lent = False
        record.forwarded = None
        if record.kwargs:
            record.kwargs = {k: v for k, v in record.kwargs.items() if k in ("stdout", "stderr")}
        record.dependents = ()
        record.depends_on = ()
        fut = record.app_fu
        assert fut is not None
        if self.config.garbage_collect:
            self.tasks.pop(record.id, None)
            # The future keeps its record, not the other way round: a future the user
            # drops then goes at once, with its result, instead of waiting as a cycle
            # for the garbage collector (1 MiB results piled up ~50 MiB between
            # collections).
            record.app_fu = None
        fut.set_result(value)
        for df in record.outputs:
            df.set_result(df.file_obj)

    def _take_back(self, record: TaskRecord, exec_fu: Future[Any]) -> None:
        """A lent try failed or was withdrawn: the arguments its executor gave back become
        the task's again. Without them (lost with the executor) `record.lent` stays set,
        and the task cannot be tried again."""
        packed = getattr(exec_fu, "returned", None)
        if packed is None:
            return
        try:
            record.args, record.kwargs = unpack_arguments(packed, record.forwarded)
        except Exception:
            logger.exception("task %d: its arguments came back from its executor but cannot "
                             "be unpickled here", record.id)
            return
        record.lent = False

    def _try_failed(self, record: TaskRecord, exc: BaseException) -> None:
        attempt = record.tries[-1]
        attempt.outcome = _S.FAILED.value
        attempt.exc_type, attempt.message = exception_name(exc), exception_message(exc)
        self._attach_context(record, exc)
        retries = self.config.retries
        if retries and record.lent:
            exc.add_note(f"[livedag] not retried: the arguments went with this try to "
                         f"executor {record.executor!r}, and did not come back with its "
                         "failure")
        elif retries and not isinstance(exc, TaskCancelled):
            cost = 1.0
            if self.config.retry_handler is not None:
                try:
                    cost = float(self.config.retry_handler(exc, record))
                except Exception as handler_exc:
                    logger.exception("retry_handler raised for task %d", record.id)
                    exc.add_note(f"[livedag] the retry_handler raised {handler_exc!r}; no retry")
                    cost = retries + 1
            record.fail_count += cost
            if record.fail_count <= retries:
                self._publish_failure(record, exc, _S.FAILED, will_retry=True)
                with self._lock:
                    self._move(record, _S.PENDING)
                    record.claimed = False
                self._soon(self._launch_if_ready, record)
                return
        self._fail(record, exc)

    def _fail(self, record: TaskRecord, exc: BaseException) -> None:
        if record.state.is_final:
            return
        self._move(record, _S.FAILED)
        record.exception = exc
        record.time_returned = time.time()
        self._publish_failure(record, exc, _S.FAILED)
        self._set_exception(record, exc)

    def _set_exception(self, record: TaskRecord, exc: BaseException) -> None:
        fut = record.app_fu
        assert fut is not None
        fut.set_exception(exc)
        for df in record.outputs:
            df.set_exception(exc)

    def _attach_context(self, record: TaskRecord, exc: BaseException) -> None:
        attempt = record.tries[-1] if record.tries else None
        ctx = TaskContext(
            task_id=record.id, app_name=record.app_name, try_number=record.try_number,
            executor=record.executor, host=attempt.host if attempt else "",
            pid=attempt.pid if attempt else None,
            captured_stdout=record.stdout.text(), captured_stderr=record.stderr.text(),
        )
        try:
            exc.livedag_task = ctx  # type: ignore[attr-defined]
        except AttributeError:  # an exception type with __slots__
            return
        note = f"[livedag] {ctx.describe()}"
        if ctx.captured_stderr:
            tail = "\n".join(ctx.captured_stderr.rstrip("\n").splitlines()[-10:])
            note += "\n[livedag] last lines the task wrote to stderr:\n" + tail
        exc.add_note(note)

    def _publish_failure(self, record: TaskRecord, exc: BaseException, state: TaskState, *,
                         will_retry: bool = False) -> None:
        if not self.bus.active:
            return
        import traceback

        if isinstance(exc, RemoteError) and exc.traceback_text:
            tb = exc.traceback_text
        else:
            tb = "".join(traceback.format_exception(exc))
        self.bus.publish(ev.TaskFailed(
            time.time(), record.id, record.try_number, state, exception_name(exc),
            exception_message(exc), tb, record.root_cause_ids, will_retry,
        ))

    # ------------------------------------------------------------ dependency failures
    def _dep_fail(self, record: TaskRecord, failed: list[Future[Any]]) -> None:
        error = _propagated(DependencyError, record, failed)
        record.exception = error
        record.time_returned = time.time()
        self._move(record, _S.DEP_FAIL)
        self._publish_failure(record, error, _S.DEP_FAIL)
        self._set_exception(record, error)

    # ------------------------------------------------------------ join apps
    def _start_join(self, record: TaskRecord, returned: Any) -> None:
        if isinstance(returned, Future):
            inner = [returned]
        elif isinstance(returned, list) and all(isinstance(f, Future) for f in returned):
            inner = list(returned)
        else:
            self._try_failed(record, TypeError(
                f"join app {record.app_name!r} must return a Future or a list of Futures, "
                f"it returned {type(returned).__name__}"
            ))
            return
        self._move(record, _S.JOINING)
        record.joins = returned
        record.pending_joins = len(inner) + 1
        for f in inner:
            f.add_done_callback(functools.partial(self._joined, record))
        self._joined(record, None)

    def _joined(self, record: TaskRecord, _inner: Future[Any] | None) -> None:
        with self._lock:
            record.pending_joins -= 1
            if record.pending_joins:
                return
        self._soon(self._finish_join, record)

    def _finish_join(self, record: TaskRecord) -> None:
        returned = record.joins
        record.joins = None
        inner = [returned] if isinstance(returned, Future) else returned
        failed = [f for f in inner if f.cancelled() or f.exception() is not None]
        if not failed:
            values = [f.result() for f in inner]
            self._succeed(record, values[0] if isinstance(returned, Future) else values,
                          _S.EXEC_DONE)
            return
        error = _propagated(JoinError, record, failed)
        self._fail(record, error)

    # ------------------------------------------------------------ cancel and resubmit
    def cancel(self, fut: AppFuture, reason: str = "cancelled by the user") -> bool:
        """Cancel a task that has not started. Its dependents end as dependency failures."""
        return steering.cancel(self, fut, reason)

    def resubmit(
        self, target: AppFuture | TaskRecord | int, *, use_latest_definition: bool = True
    ) -> AppFuture:
        """Run a failed (or cancelled) task again and re-arm the tasks it blocked.

        The existing futures go back to pending and later hold the new outcome; the try
        history is kept. With `use_latest_definition`, an app redefined since (same name in
        `__main__`, e.g. a notebook cell run again) runs with its newest function. For a
        dependency failure, its root-cause tasks are resubmitted.
        """
        return steering.resubmit(self, target, use_latest_definition=use_latest_definition)

    # ------------------------------------------------------------ lifecycle
    def wait_for_current_tasks(self) -> None:
        """Block until every task submitted so far has ended."""
        while True:
            # Read once: a task that succeeds meanwhile drops its link (see _succeed).
            pending = [f for r in list(self.tasks.values())
                       if (f := r.app_fu) is not None and not f.done()]
            if not pending:
                return
            concurrent.futures.wait(pending)

    def cleanup(self) -> None:
        """Shut the executors down and release the run; tasks not finished then fail."""
        if self._closed:
            return
        self._closed = True
        try:
            self.memoizer.close()
        except Exception:
            logger.exception("writing the checkpoint failed")
        for label, ex in list(self.executors.items()):
            try:
                ex.shutdown()
            except Exception:
                logger.exception("shutting down executor %r failed", label)
        for record in list(self.tasks.values()):
            fut = record.app_fu
            if fut is not None and not fut.done():
                record.state = _S.FAILED
                self._set_exception(record, ExecutorError(
                    record.executor,
                    f"task {record.id} {record.app_name!r} had not finished when the kernel was "
                    "cleaned up (call livedag.wait_for_current_tasks() before cleanup)",
                ))
        if self.bus.active:
            self.bus.publish(ev.KernelChanged(time.time(), "cleanup", self.run_dir))
            self.bus.flush(5)
        self.bus.close()
        if self._log_handler is not None:
            logging.getLogger("livedag").removeHandler(self._log_handler)
            self._log_handler.close()
        loader.forget(self)

    def checkpoint(self) -> str | None:
        return self.memoizer.checkpoint()

    @property
    def task_count(self) -> int:
        """How many tasks this kernel has made."""
        return self._last_id + 1

    def __enter__(self) -> DataFlowKernel:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        mode = self.config.exit_mode
        if mode == "skip":
            return
        if mode == "wait" and exc_type is None:
            self.wait_for_current_tasks()
        self.cleanup()

    def __repr__(self) -> str:
        return f"<DataFlowKernel run_dir={self.run_dir!r} executors={self._user_labels}>"


def _propagated(
    kind: type[PropagatedException], record: TaskRecord, failed: list[Future[Any]]
) -> PropagatedException:
    """The error of a task whose inputs (or joined futures) failed: each failed input
    with its task, and the root causes behind them (through dependency failures of
    their own), once each; its __cause__ is the first root exception. Sets the task's
    root_cause_ids."""
    pairs: list[tuple[BaseException, int | str | None]] = []
    roots: dict[int, RootCause] = {}
    root_exc: BaseException | None = None
    for d in failed:
        parent = record_of(d)
        exc: BaseException
        if d.cancelled():
            tid = parent.id if parent else -1
            name = parent.app_name if parent else "<future>"
            exc = parent.exception if parent and parent.exception else TaskCancelled(tid, name)
        else:
            exc = d.exception()  # type: ignore[assignment]
        pairs.append((exc, parent.id if parent else None))
        if isinstance(exc, PropagatedException) and exc.root_causes:
            for rc in exc.root_causes:
                roots.setdefault(rc.task_id, rc)
            if root_exc is None:
                root_exc = exc.__cause__
        else:
            rc = RootCause(parent.id if parent else -1,
                           parent.app_name if parent else "<future>",
                           exception_name(exc), exception_message(exc))
            roots.setdefault(rc.task_id, rc)
            if root_exc is None:
                root_exc = exc
    error = kind(pairs, record.id, app_name=record.app_name, root_causes=list(roots.values()))
    error.__cause__ = root_exc
    record.root_cause_ids = tuple(roots)
    return error


def _make_run_dir(base: str) -> str:
    os.makedirs(base, exist_ok=True)
    numbers = [int(n) for n in os.listdir(base) if n.isdigit()]
    n = max(numbers) + 1 if numbers else 0
    while True:
        path = os.path.join(os.path.abspath(base), f"{n:03d}")
        try:
            os.makedirs(path)
            return path
        except FileExistsError:  # another kernel took this number first
            n += 1


def _start_logging(config: Config, run_dir: str) -> logging.Handler | None:
    if not config.initialize_logging:
        return None
    handler = logging.FileHandler(os.path.join(run_dir, "livedag.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    log = logging.getLogger("livedag")
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


# ---------------------------------------------------------------- the loaded kernel
# Its own module; here too, where Parsl code and earlier livedag code import them.
DataFlowKernelLoader = loader
on_load = loader.on_load
current_or_none = loader.current_or_none
load = loader.load
current_dfk = dfk = loader.current_dfk
clear = loader.clear
wait_for_current_tasks = loader.wait_for_current_tasks
resubmit = loader.resubmit
