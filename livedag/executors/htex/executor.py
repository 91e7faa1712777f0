"""HighThroughputExecutor, the kernel side: submits tasks, resolves futures, starts blocks.

    submit(call) ──pack_call──> [lock] Outbox.send: alone ──write──> stdin pipe ──> interchange
                                       in a burst ──> writer thread: one TaskBatch──┘  (pipes.py)
    receiver thread <──stdout pipe── interchange: Report | ManagerJoined | ManagerGone | ...
        Report.started  ──> reports.running(task, try, host, pid, block, job)
        Report.outputs  ──> publish(TaskOutput)                 (incremental UTF-8 decode)
        Report.results  ──> reports.used(task, try, cpu, peak, wall); unpack_outcome
                            ──> future.set_result
                            / set_exception
        Report.deaths   ──> future.set_exception(WorkerLost)                   (losses.py)
        Returned        ──> the payloads of tries about to fail or be withdrawn: kept on
                            their futures (`returned`), so the kernel can try again
        ManagerGone     ──> future.set_exception(ManagerLost) for each task it held
        end of pipe     ──> every outstanding future fails with ExecutorError
    block watcher thread ──provider.status(all jobs)──> BlockChanged; no block left alive
        (e.g. a broken worker_init) ──> every outstanding future fails with ExecutorError
        every strategy_period ──Strategy.plan──> start or retire blocks     (strategy.py)

The interchange is our child and speaks to us only through its pipes; worker pools are
blocks started through the provider. Parameters keep Parsl's names, meanings and defaults;
the ones that have no effect here are listed in `IGNORED_PARAMETERS` (parameters.py).
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import dataclasses
import logging
import math
import os
import secrets
import select
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from livedag.errors import ExecutorError, SerializationError, SubmitError
from livedag.events import TaskOutput
from livedag.executors.base import Executor, InputsNotForwarded, Publish, TaskCall
from livedag.executors.htex import losses, parameters, pipes, security
from livedag.executors.htex.blocks import Blocks, pool_command
from livedag.executors.htex.losses import SCHEDULER_SIGNALS
from livedag.executors.htex.parameters import IGNORED_PARAMETERS
from livedag.executors.htex.pipes import COALESCE_WINDOW, OUTBOX_LIMIT
from livedag.executors.htex.protocol import (
    Cancel,
    CancelReply,
    Forward,
    FrameReader,
    ManagerGone,
    ManagerJoined,
    Report,
    Retire,
    Returned,
    Shutdown,
    Unforwarded,
    WorkerDeath,
    decode,
    pack_frames,
)
from livedag.executors.htex.strategy import Strategy
from livedag.futures import LightFuture
from livedag.providers.base import ExecutionProvider
from livedag.serialize import pack_call, unpack_outcome

# The names this module had before its parts moved out stay importable from here.
__all__ = ["COALESCE_WINDOW", "IGNORED_PARAMETERS", "OUTBOX_LIMIT", "SCHEDULER_SIGNALS",
           "SPIN_WINDOW", "START_TIMEOUT", "HighThroughputExecutor"]

logger = logging.getLogger(__name__)

# A result that comes back within a millisecond should not pay for waking a sleeping
# CPU, which on a virtual machine (most cloud notebooks) costs tens of microseconds for
# each process it crosses. So while few tasks are outstanding, the receiver polls the
# interchange's pipe until SPIN_WINDOW seconds have passed since the latest result or
# task sent, and only then sleeps; busy pipelines never spin (their results arrive back
# to back). One call at a time (bench.htex latency, A/B on a 2-vCPU VM): ~1,000 -> ~830 µs.
SPIN_WINDOW = 0.001
HELPER_CHECK = 0.002  # seconds between the receiver's looks while a waiting thread reads
START_TIMEOUT = 20.0  # seconds for the interchange to report that it listens


@dataclasses.dataclass
class _Manager:
    host: str
    pid: int
    block_id: str
    log_path: str


class HighThroughputExecutor(Executor):
    """Runs tasks in worker pools, one per node of a block, through an interchange process.

    Parameters are Parsl's (see parsl.HighThroughputExecutor), with these differences:

    - heartbeat_threshold: a pool is declared lost (ManagerLost) after
      min(heartbeat_threshold, 2 * heartbeat_period) seconds of silence: a pool's loop never
      blocks on a task, so two missed heartbeats mean it is stopped, dead or cut off. A
      pool that leaves on its own (SIGTERM, workers that cannot start) says so at once.
    - encrypted: CurveZMQ whenever pools connect off loopback. Blocks of a LocalProvider
      (with no `address`) bind to 127.0.0.1 and authenticate with the run's secret only.
    - prefetch_capacity keeps its meaning for tasks longer than ~50 ms; for shorter ones a
      pool asks for a little more work (pool.py, "lookahead") once every pool is full.
    - Local blocks get the kernel's sys.path (PYTHONPATH), so what the notebook imports
      by reference, its workers can import too.
    - Parameters in IGNORED_PARAMETERS are accepted, and have no effect.
    - The kernel keeps no copy of a running task's arguments: the interchange holds the
      packed call until the result passes, and gives it back when a try fails, for
      retries and Resubmit (`returns_arguments`). Parsl keeps both.
    - A task whose inputs are tasks running here is sent at once and parked where they
      are (their pool, else the interchange), and runs with their results as soon as
      they succeed (`forwards_results`, see forwarding.py and parking.py): a chain's
      steps do not wait for a trip to the kernel. Parsl launches each step from the
      kernel.
    """

    returns_arguments = True
    forwards_results = True

    def __init__(
        self,
        label: str = "HighThroughputExecutor",
        provider: ExecutionProvider | None = None,
        launch_cmd: str | None = None,
        interchange_launch_cmd: Sequence[str] | None = None,
        address: str | None = None,
        loopback_address: str = "127.0.0.1",
        worker_port: int | None = None,
        worker_port_range: tuple[int, int] | None = (54000, 55000),
        interchange_port_range: tuple[int, int] | None = (55000, 56000),
        storage_access: list[Any] | None = None,
        working_dir: str | None = None,
        worker_debug: bool = False,
        cores_per_worker: float = 1.0,
        mem_per_worker: float | None = None,
        max_workers_per_node: int | None = None,
        cpu_affinity: str = "none",
        available_accelerators: int | Sequence[str] = (),
        prefetch_capacity: int = 0,
        heartbeat_threshold: int = 120,
        heartbeat_period: int = 30,
        drain_period: int | None = None,
        poll_period: int = 10,
        address_probe_timeout: int | None = None,
        worker_logdir_root: str | None = None,
        manager_selector: Any = None,
        block_error_handler: bool | Callable[..., None] = True,
        encrypted: bool = True,
        remote_monitoring_radio: Any = None,
    ) -> None:
        provider = parameters.default_provider(provider)
        parameters.check(label, cores_per_worker=cores_per_worker,
                         heartbeat_period=heartbeat_period,
                         heartbeat_threshold=heartbeat_threshold)
        self.label = label
        self.provider = provider
        self.launch_cmd = launch_cmd
        self.interchange_launch_cmd = interchange_launch_cmd
        self.address = address
        self.loopback_address = loopback_address
        self.worker_port = worker_port
        self.worker_port_range = worker_port_range
        self.interchange_port_range = interchange_port_range
        self.storage_access = storage_access
        self.working_dir = working_dir
        self.worker_debug = worker_debug
        self.cores_per_worker = cores_per_worker
        self.mem_per_worker = mem_per_worker
        self.max_workers_per_node = max_workers_per_node or math.inf
        self.cpu_affinity = cpu_affinity
        self.available_accelerators = parameters.accelerator_names(available_accelerators)
        self.prefetch_capacity = prefetch_capacity
        self.heartbeat_threshold = heartbeat_threshold
        self.heartbeat_period = heartbeat_period
        self.drain_period = drain_period
        self.poll_period = poll_period
        self.address_probe_timeout = address_probe_timeout
        self.worker_logdir_root = worker_logdir_root
        self.manager_selector = manager_selector
        self.block_error_handler = block_error_handler
        self.encrypted = encrypted
        self.remote_monitoring_radio = remote_monitoring_radio

        self._init_state()

    def _init_state(self) -> None:
        """What the executor tracks while it runs, and the strategy's settings."""
        # The scaling strategy (Parsl's Config fields; the kernel copies them here from its
        # Config before start()). "simple" and "htex_auto_scale" scale out to cover the
        # outstanding tasks, and scale in blocks idle for max_idletime; None/"none" do not.
        self.strategy: str | None = "simple"
        self.strategy_period = 5.0
        self.max_idletime = 120.0
        self._init_run()

    def _init_run(self) -> None:
        """What one start() .. shutdown() tracks."""
        self._lock = threading.Lock()
        self._futures: dict[tuple[int, int], tuple[Future[Any], str]] = {}
        # Forwarded tries whose inputs have not all succeeded yet (how many are left),
        # and the tries waiting for each input: parked tries are not work for blocks.
        self._parked: dict[tuple[int, int], int] = {}
        self._waiting: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._decoders: dict[tuple[int, int, str], Any] = {}
        self._managers: dict[str, _Manager] = {}
        self.blocks: Blocks | None = None
        self._scaling = Strategy()  # when the executor went idle
        self._workers_seen = 0
        self._cancel_replies: dict[tuple[int, int], tuple[threading.Event, list[bool]]] = {}
        self._refusals: dict[tuple[int, int], SubmitError] = {}  # withdrawn to fail them
        self._ix: subprocess.Popen[bytes] | None = None
        self._outbox = pipes.Outbox(self._lock)
        self._receiver: threading.Thread | None = None
        # Who reads the interchange's pipe: the receiver thread, or a thread that waits
        # for a result and reads it itself (wait_here) while `_helpers` > 0.
        self._rx = threading.Condition(threading.RLock())
        self._helpers = 0
        self._rx_pipe: tuple[FrameReader, int] | None = None
        self._rx_eof = False
        self._rx_backlog: collections.deque[list[bytes]] = collections.deque()
        self._rx_handler = 0  # the thread handling what came, while it does
        self._failure: ExecutorError | None = None
        self._stopping = False
        self.port = 0
        self._local_socket = ""  # the interchange's Unix socket for local pools (streams.py)

    # --- paths and facts ------------------------------------------------------------

    @property
    def logdir(self) -> str:
        return os.path.join(self.run_dir, self.label)

    @property
    def worker_logdir(self) -> str:
        if self.worker_logdir_root is not None:
            return os.path.join(self.worker_logdir_root, self.label)
        return self.logdir

    @property
    def loopback_only(self) -> bool:
        return bool(getattr(self.provider, "is_local", False)) and self.address is None

    @property
    def workers_per_node(self) -> float:
        count: float = self.max_workers_per_node
        if self.available_accelerators:
            count = min(count, len(self.available_accelerators))
        return count

    @property
    def interchange_proc(self) -> subprocess.Popen[bytes] | None:
        """The interchange process (Parsl's name), once started."""
        return self._ix

    @property
    def outstanding(self) -> int:
        return len(self._futures)

    @property
    def bad_state_is_set(self) -> bool:
        return self._failure is not None

    @property
    def interchange_log(self) -> str:
        return os.path.join(self.logdir, "interchange.log")

    # --- start ----------------------------------------------------------------------

    def start(self, publish: Publish, run_dir: str) -> None:
        if self._ix is not None:  # its Config is loaded again (a notebook cell run again)
            self.shutdown()
            self._init_run()
        super().start(publish, os.path.abspath(run_dir))
        os.makedirs(self.logdir, exist_ok=True)
        secret = secrets.token_hex(32)
        self._secret_file = security.write_private(os.path.join(self.logdir, "secret"), secret)
        cert_dir = None
        if self.encrypted and not self.loopback_only:
            cert_dir = security.create_certificates(os.path.join(self.logdir, "certificates"))
        self._cert_dir = cert_dir
        config = parameters.interchange_config(self, secret=secret, cert_dir=cert_dir)
        self._ix = pipes.spawn(os.path.join(self.logdir, "interchange.stderr"))
        pipes.connect(self._ix, self._outbox, config)
        reader = FrameReader()
        ready = pipes.wait_ready(self._ix, reader, START_TIMEOUT)
        if ready is None:
            reason = self._interchange_death("did not start")
            self._kill_interchange()
            raise ExecutorError(self.label, reason)
        self.port = ready.port
        self._local_socket = ready.local_socket
        self._receiver = threading.Thread(target=self._receive, args=(reader,),
                                          name=f"livedag-{self.label}-receiver", daemon=True)
        self._receiver.start()
        threading.Thread(target=self._outbox.run, name=f"livedag-{self.label}-writer",
                         daemon=True).start()
        self.provider.script_dir = os.path.join(self.logdir, "submit_scripts")
        self.blocks = Blocks(self.label, self.provider, self.publish,
                             on_all_ended=self._no_blocks_left, on_tick=self._scale,
                             tick_period=float(self.strategy_period))
        try:
            for _ in range(self.provider.init_blocks):
                self.scale_out_one()  # now, not at the first strategy tick
        except BaseException:
            # e.g. SubmitError (a bad partition): the caller gets it; nothing stays up.
            self.shutdown()
            raise
        self.blocks.start()

    def scale_out_one(self) -> str:
        """Start one block through the provider; its block id."""
        assert self.blocks is not None
        return self.blocks.start_one(self._pool_command)

    def _scale(self) -> None:
        """One step of the strategy (on the block watcher's thread)."""
        blocks = self.blocks
        if self.strategy in (None, "none") or blocks is None or self._stopping:
            return
        if blocks.broken():
            return  # no new block until one works: the watcher fails what waits
        start, retire = self._scaling.plan(
            blocks.live(), len(self._futures) - len(self._parked),
            workers_seen=self._workers_seen,
            workers_per_node=self.workers_per_node, provider=self.provider,
            max_idletime=self.max_idletime)
        for block_id in retire:
            if blocks.retire(block_id):  # its pool drains first, then it goes
                with self._lock, contextlib.suppress(OSError):
                    self._outbox.send(pack_frames(Retire(block_id).encode()))
        for _ in range(start):
            try:
                self.scale_out_one()
            except SubmitError as exc:
                self._submit_failed(exc)
                return

    def _submit_failed(self, exc: SubmitError) -> None:
        """The scheduler refused a block. With no block running, nothing can run what
        waits: withdraw it from the interchange, and fail it with the scheduler's own
        words when the interchange has given it back (with its arguments, for a retry or
        Resubmit; the next task tries for a block again)."""
        assert self.blocks is not None
        if self.blocks.live():
            logger.error("%s: a new block was refused: %s", self.label, exc)
            return
        with self._lock:
            for key in self._futures:
                self._refusals[key] = exc
                with contextlib.suppress(OSError):
                    self._outbox.send(pack_frames(Cancel(*key).encode()))

    def _no_blocks_left(self, reasons: str, broken: bool) -> bool:
        """No block runs. Fail what waits when no new block can help (True: done)."""
        if self._managers:
            return False  # their ManagerLost comes first, within two heartbeat periods
        if not broken and self.strategy not in (None, "none"):
            return False  # the strategy starts a new block when a task comes
        self._fail_all(ExecutorError(self.label, f"no block is left to run tasks: {reasons}"))
        return True

    def _pool_command(self, block_id: str) -> str:
        parts = parameters.pool_arguments(self, block_id, port=self.port,
                                          secret_file=self._secret_file, cert_dir=self._cert_dir,
                                          local_socket=self._local_socket)
        return pool_command(parts, local=self.provider.is_local)

    # --- submit ---------------------------------------------------------------------

    def submit(self, call: TaskCall) -> Future[Any]:
        fut = _Try()
        if self._failure is not None or self._ix is None:
            fut.set_exception(self._failure or ExecutorError(self.label, "was not started"))
            return fut
        inputs = call.inputs
        try:
            ids = {id(f): tid for tid, (f, _) in inputs.items()} if inputs else None
            payload = pack_call(call.fn, call.args, call.kwargs, task_id=call.task_id,
                                app_name=call.app_name, inputs=ids)
        except SerializationError as exc:
            fut.set_exception(exc)
            return fut
        key = fut.key = (call.task_id, call.try_number)
        fut.executor = self
        item: pipes.Item = (key, payload)
        if inputs:
            waits = [(tid, tries) for tid, (_, tries) in inputs.items()]
            item = pack_frames(Forward(key, waits, payload).encode())
        with self._lock:
            if self._failure is not None:  # failed since the check above
                fut.set_exception(self._failure)
                return fut
            self._futures[key] = (fut, call.app_name)
            if inputs:
                self._parked[key] = len(waits)
                for w in waits:
                    self._waiting.setdefault(w, []).append(key)
            # If the interchange is gone, the receiver fails this future with the rest.
            with contextlib.suppress(OSError):
                self._outbox.send(item, at_once=bool(inputs))
        if self.blocks is not None and not self.blocks.live():
            self.blocks.nudge()  # every block was scaled in: start one now, not in 5 s
        return fut

    def cancel(self, task_id: int) -> bool:
        """Withdraw the newest try of a task still waiting in the interchange (see
        `_withdraw`)."""
        with self._lock:
            keys = [k for k in self._futures if k[0] == task_id]
        return bool(keys) and self._withdraw(max(keys))

    def _withdraw(self, key: tuple[int, int]) -> bool:
        """Ask the interchange to drop a try it has not given to a pool; True when it did
        (the try's future is then cancelled). A try a pool already holds runs to its end.
        On the receiver thread (a done-callback) the answer could never arrive: False."""
        if threading.current_thread() is self._receiver:
            return False
        with self._lock:
            if key not in self._futures or self._failure is not None:
                return False
            waiter: tuple[threading.Event, list[bool]] = (threading.Event(), [])
            self._cancel_replies[key] = waiter
            try:
                self._outbox.send(pack_frames(Cancel(*key).encode()))
            except OSError:
                del self._cancel_replies[key]
                return False
        waiter[0].wait(5.0)
        return bool(waiter[1] and waiter[1][0])

    # --- receiving ------------------------------------------------------------------

    def _receive(self, reader: FrameReader) -> None:
        assert self._ix is not None and self._ix.stdout is not None
        fd = self._ix.stdout.fileno()
        os.set_blocking(fd, False)
        poll = select.poll()  # not select(): a notebook may hold more than 1024 files
        poll.register(fd, select.POLLIN)
        self._rx_pipe = (reader, fd)
        rx = self._rx
        try:
            while True:
                with rx:
                    while self._helpers and not self._rx_eof:
                        rx.wait(HELPER_CHECK)  # a waiting thread reads for us meanwhile
                    if self._rx_eof:
                        break
                    got = self._read_and_handle(reader, fd)
                if got is None:
                    break
                if not got:
                    self._wait_readable(poll)
        except Exception as exc:
            logger.exception("%s: receiver failed", self.label)
            self._fail_all(ExecutorError(self.label, f"its receiver thread failed: {exc!r}"))
            return
        if not self._stopping:
            self._fail_all(ExecutorError(self.label, self._interchange_death("exited")))

    def _read_and_handle(self, reader: FrameReader, fd: int) -> int | None:
        """Read what the interchange wrote and act on it (the caller holds `_rx`): how
        many records came, None at the end of the pipe."""
        try:
            records = reader.read(fd)
        except BlockingIOError:
            return 0
        if records is None:
            self._rx_eof = True
            return None
        # In order, through one queue: a callback that waits for another result reads
        # and handles on this same thread (the lock is reentrant), after what is queued.
        backlog = self._rx_backlog
        backlog.extend(records)
        outer, self._rx_handler = self._rx_handler, threading.get_ident()
        try:
            while backlog:
                self._handle(decode(backlog.popleft()))
        finally:
            self._rx_handler = outer
        return len(records)

    def wait_here(self, done: Callable[[], bool], timeout: float | None = None) -> None:
        """Called by a thread about to wait for a try of this executor: while few tasks
        are outstanding it reads the interchange's pipe itself for up to SPIN_WINDOW,
        instead of sleeping until the receiver thread wakes it. A result a fraction of a
        millisecond away then costs no hand-over between threads, and the waiting thread
        keeps its CPU busy, so the interchange, the pools and the workers run on the
        other CPUs instead of sharing one with it (on a 2-vCPU VM the scheduler otherwise
        often puts the kernel's main thread on the same CPU as all of them).

        A callback of ours that waits (a done-callback calling result(), on the thread
        that handles what came) is the only one who can read meanwhile: it reads until
        its result is there, or its timeout."""
        pipe = self._rx_pipe
        if pipe is None or self._rx_eof or self._failure is not None:
            return
        nested = self._rx_handler == threading.get_ident()
        if not nested and (not SPIN_WINDOW or threading.current_thread() is self._receiver
                           or len(self._futures) > self._workers_seen):
            return
        limit = math.inf if nested else SPIN_WINDOW
        window = limit if timeout is None else min(limit, timeout)
        if window <= 0:
            return
        reader, fd = pipe
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        rx = self._rx
        deadline = time.perf_counter() + window
        with rx:
            self._helpers += 1
        try:
            while not done() and (now := time.perf_counter()) < deadline:
                # Spin (poll(0) releases the GIL while it asks); nested: sleep in poll.
                if not poll.poll(min(50.0, (deadline - now) * 1000) if nested else 0):
                    continue
                with rx, pipes.interrupts_after():
                    if self._read_and_handle(reader, fd) is None:
                        return  # the receiver ends the executor's futures
        except Exception as exc:
            logger.exception("%s: reading the interchange's pipe failed", self.label)
            self._fail_all(ExecutorError(self.label, f"reading its pipe failed: {exc!r}"))
        finally:
            with rx:
                self._helpers -= 1
                if not done():
                    # Giving up (a longer task, or the pipe's end): the receiver takes
                    # over now, not at its next look. Done: it looks by itself soon, and
                    # in a cell that waits for each result in turn this thread is back
                    # before then, so waking it each time would only cost.
                    rx.notify()

    def _wait_readable(self, poll: select.poll) -> None:
        """Block until the interchange writes to us. While at most one task per worker is
        outstanding (one call at a time from a cell, a chain), first poll until SPIN_WINDOW
        has passed since the latest result or send: a result that is a fraction of a
        millisecond away then does not pay for waking a sleeping CPU (see SPIN_WINDOW).
        That includes the next call of a cell that waits for each result in turn: it is
        sent while we spin, so its result finds us awake too."""
        if not SPIN_WINDOW or len(self._futures) > self._workers_seen:
            poll.poll()
            return
        outbox = self._outbox
        deadline = time.perf_counter() + SPIN_WINDOW
        while not poll.poll(0):  # releases the GIL: the kernel's other threads run
            if self._helpers:
                return  # a waiting thread reads now (wait_here)
            now = time.perf_counter()
            if now >= deadline:
                deadline = outbox.last_send + SPIN_WINDOW  # a task sent while we spun
                if deadline <= now or len(self._futures) > self._workers_seen:
                    poll.poll()
                    return

    def _handle(self, msg: object) -> None:
        if isinstance(msg, Report):
            self._on_report(msg)
        elif isinstance(msg, Returned):
            for key, payload in zip(msg.ids, msg.payloads, strict=True):
                entry = self._futures.get(key)
                if entry is not None:
                    entry[0].returned = bytes(payload)  # type: ignore[attr-defined]
        elif isinstance(msg, Unforwarded):
            self._on_unforwarded(msg)
        elif isinstance(msg, ManagerJoined):
            self._managers[msg.manager] = _Manager(msg.host, msg.pid, msg.block_id, msg.log_path)
            self._workers_seen = max(self._workers_seen, msg.workers)
            assert self.blocks is not None
            self.blocks.joined(msg.block_id)
        elif isinstance(msg, ManagerGone):
            self._on_manager_gone(msg)
        elif isinstance(msg, CancelReply):
            self._on_cancel_reply(msg)

    def _on_cancel_reply(self, msg: CancelReply) -> None:
        key = (msg.task_id, msg.try_number)
        refusal = self._refusals.pop(key, None)
        if msg.withdrawn:
            self._parked.pop(key, None)
            entry = self._futures.pop(key, None)
            if entry is None:
                pass
            elif refusal is not None:
                entry[0].set_exception(losses.block_refused(refusal, *key, entry[1],
                                                            self.label))
            else:
                LightFuture.cancel(entry[0])  # Future's own: the interchange said yes
        waiter = self._cancel_replies.pop(key, None)
        if waiter is not None:
            waiter[1].append(msg.withdrawn)
            waiter[0].set()

    def _on_unforwarded(self, msg: Unforwarded) -> None:
        for key in msg.ids:
            self._parked.pop(key, None)
            entry = self._futures.pop(key, None)
            if entry is not None:
                entry[0].set_exception(InputsNotForwarded(
                    f"task {key[0]} try {key[1]}: given back by the interchange before "
                    "it ran; the kernel launches it once its inputs are done"))

    def _on_report(self, msg: Report) -> None:
        publish, reports, now = self.publish, self.reports, time.time()
        manager = self._managers.get(msg.manager)
        host = manager.host if manager else ""
        block = manager.block_id if manager else None
        job = self.blocks.job_of(block) if self.blocks is not None else None
        if msg.started and block is not None and self.blocks is not None:
            self.blocks.healthy.add(block)
        for tid, tries, pid in msg.started:
            reports.running(tid, tries, now, host, pid, block, job)
        for (tid, tries, stream), data in zip(msg.outputs, msg.output_data, strict=True):
            stream_key = (tid, tries, stream)
            decoder = self._decoders.get(stream_key)
            if decoder is None:
                decoder = self._decoders[stream_key] = _utf8()
            text = decoder.decode(data)
            if text:
                publish(TaskOutput(now, tid, tries, stream, text))
        self._inputs_done(msg)
        futures = self._futures
        for key, data, (cpu, peak, wall) in zip(msg.results, msg.result_data, msg.usage,
                                                 strict=True):
            entry = futures.pop(key, None)
            if self._decoders:
                self._end_output(key)
            if entry is None:
                continue  # cancelled, or already failed as lost: a late result is dropped
            reports.used(key[0], key[1], now, cpu, int(peak), wall)
            fut = entry[0]
            try:
                ok, value = unpack_outcome(data, key[0], entry[1])
            except Exception as exc:
                fut.set_exception(exc)
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        for death in msg.deaths:
            self._on_death(death, block, job)

    def _inputs_done(self, msg: Report) -> None:
        """Forwarded tries whose inputs have now all succeeded leave `_parked`."""
        if not self._waiting:
            return
        failed = set(msg.failed)
        parked = self._parked
        for key in msg.results:
            waiting = self._waiting.pop(key, ())
            if key in failed:
                continue  # the interchange gives those tries back (Unforwarded)
            for w in waiting:
                left = parked.get(w)
                if left is not None:
                    if left > 1:
                        parked[w] = left - 1
                    else:
                        del parked[w]

    def _on_death(self, death: WorkerDeath, block: str | None, job: str | None) -> None:
        key = (death.task_id, death.try_number)
        entry = self._futures.pop(key, None)
        self._end_output(key)
        if entry is None:
            return
        losses.worker_died(death, *entry, block=block, job=job, blocks=self.blocks,
                           interchange_log=self.interchange_log)

    def _end_output(self, key: tuple[int, int]) -> None:
        for stream in ("stdout", "stderr"):
            decoder = self._decoders.pop((*key, stream), None)
            if decoder is not None:
                rest = decoder.decode(b"", final=True)
                if rest:
                    self.publish(TaskOutput(time.time(), key[0], key[1], stream, rest))

    def _on_manager_gone(self, msg: ManagerGone) -> None:
        m = self._managers.pop(msg.manager, None)
        host = m.host if m else msg.manager
        block = m.block_id if m else None
        job = self.blocks.job_of(block) if self.blocks is not None else None
        log = m.log_path if m else self.interchange_log
        if block is not None and self.blocks is not None:
            if block in self.blocks.retiring:
                self.blocks.scaled_in(block)
                return
            self.blocks.lost(block, msg.reason)
        lost: list[losses.LostTask] = []
        for tid, tries in msg.tasks:
            key = (tid, tries)
            entry = self._futures.pop(key, None)
            self._end_output(key)
            if entry is not None:
                lost.append((tid, tries, *entry))
        if lost:
            losses.pool_lost(msg, lost, host=host, block=block, job=job,
                             logs=f"{log} and {self.interchange_log}", blocks=self.blocks)

    def _fail_all(self, error: ExecutorError) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = error
            pending = list(self._futures.values())
            self._futures.clear()
            self._refusals.clear()
            self._parked.clear()
            self._waiting.clear()
        for fut, _ in pending:
            if not fut.done():
                fut.set_exception(error)
        for event, _ in list(self._cancel_replies.values()):
            event.set()

    def _interchange_death(self, what: str) -> str:
        assert self._ix is not None
        return losses.interchange_death(
            self._ix, what, outstanding=self._futures, log=self.interchange_log,
            stderr_log=os.path.join(self.logdir, "interchange.stderr"))

    # --- shutdown -------------------------------------------------------------------

    def shutdown(self) -> None:
        if self._ix is None or self._stopping:
            return
        self._stopping = True
        with self._lock, contextlib.suppress(OSError):
            self._outbox.send(pack_frames(Shutdown("executor shutdown").encode()))
        self._outbox.close()  # the writer leaves once it has sent what is queued
        try:
            self._ix.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self._kill_interchange()
        if self.blocks is not None:
            self.blocks.stop()
        if self._receiver is not None:
            self._receiver.join(timeout=5.0)
        self._fail_all(ExecutorError(self.label, "has shut down"))
        for stream in (self._ix.stdin, self._ix.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _kill_interchange(self) -> None:
        assert self._ix is not None
        self._ix.kill()
        self._ix.wait()

    def __repr__(self) -> str:
        return f"<HighThroughputExecutor {self.label!r} provider={self.provider!r}>"


class _Try(LightFuture):
    """One try on this executor. Its cancel() is the interchange's to grant: cancelling
    only here would leave the task to run, and its result to meet a cancelled future.
    `returned`: the try's payload, given back by the interchange when it failed or was
    withdrawn (see Executor.returns_arguments)."""

    executor: HighThroughputExecutor | None = None
    key: tuple[int, int] = (0, 0)
    returned: bytes | None = None

    def cancel(self) -> bool:
        if self.executor is None or self.done():
            return super().cancel()
        return self.executor._withdraw(self.key)

    def wait_here(self, done: Callable[[], bool], timeout: float | None) -> None:
        if self.executor is not None and not self.done():
            self.executor.wait_here(done, timeout)


_utf8 = codecs.getincrementaldecoder("utf-8")
