"""A worker pool: one per node of a block; starts workers, feeds them, watches them die.

    interchange ══zmq DEALER══> pool ──task pipe──> worker 0..n-1  (one task at a time each)
    interchange <═════════════  pool <─result pipe─ worker
       (or a Unix socket, for a pool on the interchange's machine: streams.py)
                                     <─stdout/stderr pipes─ worker: the running task's output

One thread, one poll loop over the interchange socket and every worker pipe. A pool
holds at most workers + prefetch_capacity + lookahead tasks: the interchange gives it no
more (credit flow control). `lookahead` is 0 while tasks take longer than
`LOOKAHEAD_MAX_TASK`, so Parsl's prefetch_capacity=0 keeps its meaning for the long tasks
it was made for; for short tasks it covers about `LOOKAHEAD_WINDOW` seconds of work per
worker, so workers do not idle while results and new tasks cross the interchange.

What the pool has to say goes into one `Report`, sent at once when it holds a result and
the pool has nothing queued (someone may be waiting on that one result), otherwise at
most `REPORT_DELAY` later, so a busy pool sends one message per hundred tasks, not one
per task.

A worker's stdout/stderr are pipes read here, so what a task prints is attributed to the
task its worker is running, streamed while it runs (at most `OUTPUT_LIMIT` bytes per
stream per task), and the last lines of a dying worker's stderr survive it. When a
worker dies mid-task, the pool reports a `WorkerDeath` (exit status, signal, likely cause,
peak RSS sampled every `SAMPLE_PERIOD`, stderr tail) and starts a replacement.

The pool leaves when the interchange says Stop, when its connection is gone for
`RECONNECT_GRACE` seconds, or when it has heard nothing for heartbeat_threshold seconds.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import psutil
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from livedag.executors.htex import placement, streams
from livedag.executors.htex.forensics import describe_exit, signal_name, tail_lines
from livedag.executors.htex.parking import Key, Parking, Recent
from livedag.executors.htex.protocol import (
    PROTOCOL_VERSION,
    Cancel,
    CancelReply,
    Forward,
    FrameReader,
    Goodbye,
    Heartbeat,
    ProtocolError,
    Register,
    Report,
    SendBuffer,
    Stop,
    TaskBatch,
    WorkerDeath,
    decode,
    forwarded_payload,
    unpack_parts,
    widen_pipe,
    zmq_parts,
)

logger = logging.getLogger("livedag.pool")

OUTPUT_LIMIT = 4 << 20  # bytes forwarded per stream per task; the rest is counted, dropped
CHUNK = 64 << 10  # largest output chunk in one message
SAMPLE_PERIOD = 0.1  # seconds between RSS samples of busy workers
RECONNECT_GRACE = 5.0  # seconds without a connection to the interchange before leaving
STDERR_TAIL = 8 << 10
STARTUP_ATTEMPTS = 3  # workers that die before they are ready, before the pool gives up
LOOKAHEAD_MAX_TASK = 0.05  # seconds: tasks longer than this on average get no lookahead
LOOKAHEAD_WINDOW = 0.002  # seconds of queued work per worker for short tasks
LOOKAHEAD_CAP = 64  # tasks per worker
REPORT_DELAY = 0.001  # seconds a busy pool may hold a report to batch it
REPORT_BATCH = 256  # results that make a report go at once


class WorkerHandle:
    """One worker process as the pool sees it: pipes, the task it runs, its evidence."""

    def __init__(self, rank: int, proc: subprocess.Popen[bytes], task_w: int, result_r: int,
                 log_path: str) -> None:
        self.rank = rank
        self.proc = proc
        self.pid = proc.pid
        self.task_w = task_w
        self.result_r = result_r
        self.out_fd = proc.stdout.fileno()  # type: ignore[union-attr]
        self.err_fd = proc.stderr.fileno()  # type: ignore[union-attr]
        self.log_path = log_path
        self.reader = FrameReader()
        self.wbuf = SendBuffer()
        self.ready = False
        self.task: tuple[int, int] | None = None
        self.started_at = time.monotonic()
        self.task_started = 0.0
        self.peak_rss = 0
        self.ps: psutil.Process | None = None
        self.stderr_tail = bytearray()
        self.sent = {"stdout": 0, "stderr": 0}
        self.dropped = {"stdout": 0, "stderr": 0}
        self.note = ""
        self.tasks_run = 0

    def begin(self, task: tuple[int, int]) -> None:
        self.task = task
        self.task_started = time.monotonic()
        self.peak_rss = 0
        self.sent["stdout"] = self.sent["stderr"] = 0
        self.dropped["stdout"] = self.dropped["stderr"] = 0

    def sample_rss(self) -> None:
        try:
            if self.ps is None:
                self.ps = psutil.Process(self.pid)
            self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
        except psutil.Error:
            pass


def _usage(text: bytes, w: WorkerHandle) -> tuple[float, float, float]:
    """(cpu s, peak RSS bytes, wall s) of the task `w` just finished: the worker's own
    measures, with the peak raised to what this pool's psutil samples saw."""
    try:
        cpu, peak, wall = (float(x) for x in text.split())
    except ValueError:
        cpu, peak, wall = 0.0, 0.0, time.monotonic() - w.task_started
    return (cpu, max(peak, float(w.peak_rss)), wall)


class Pool:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.host = socket.gethostname()
        self.name = f"{self.host}:{os.getpid()}"  # how the interchange and kernel know us
        self.block_id = args.block_id
        self.logdir = args.logdir
        self.hb_period = args.hb_period
        self.hb_threshold = args.hb_threshold
        cores, mem = placement.node_resources()
        count = placement.worker_count(
            max_workers_per_node=args.max_workers, cores_per_worker=args.cores_per_worker,
            mem_per_worker=args.mem_per_worker, accelerators=args.accelerators,
            cores_on_node=cores, mem_available_gb=mem,
        )
        if count < 1:
            logger.warning("the node's resources allow %d workers; starting 1 anyway", count)
        self.size = max(1, count)
        self.capacity = self.size + args.prefetch
        self.workers: dict[int, WorkerHandle] = {}  # by rank
        self.by_fd: dict[int, tuple[WorkerHandle, str]] = {}
        self.idle: collections.deque[WorkerHandle] = collections.deque()
        self.queue: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self.parking = Parking()  # tasks that wait for results of tasks here (Forward)
        self.recent = Recent()  # results lately sent (a Forward may come just after)
        self.respawn_at: dict[int, float] = {}
        self.quick_deaths = 0
        self.ever_ready = False
        self.exit_code = 0
        self.goodbye = ""
        self.report = Report(manager=self.name)
        self.report_since = 0.0  # when the oldest unsent item entered the report
        self.task_time: float | None = None  # moving average of a task's run time
        self.stop_reason = ""
        self.last_heard = time.monotonic()
        self.last_sent = 0.0
        self.disconnected_at: float | None = None
        self.next_sample = 0.0
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.poller = zmq.Poller()
        self.monitor: zmq.Socket[bytes] | None = None
        self.stream: streams.Stream | None = None  # instead of zmq, when on the socket

    # --- connection ---------------------------------------------------------------

    def connect(self) -> None:
        if self.args.local_socket:
            try:
                self.stream = streams.Stream.connect(self.args.local_socket)
            except OSError as exc:
                logger.warning("cannot reach the interchange's local socket (%s); using zmq",
                               exc)
        if self.stream is not None:
            self.poller.register(self.stream.fd, zmq.POLLIN)
            logger.info("connected to the interchange's local socket")
        else:
            self._connect_zmq()
        with open(self.args.secret_file) as f:
            secret = f.read().strip()
        self._send(Register(
            secret=secret, version=PROTOCOL_VERSION, host=self.host, pid=os.getpid(),
            block_id=self.block_id, workers=self.size, capacity=self.capacity,
            python=sys.executable, log_path=self.log_path,
        ).encode())

    def _connect_zmq(self) -> None:
        sock = self.sock
        sock.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
        sock.setsockopt(zmq.SNDHWM, 0)  # never drop: the interchange bounds what we hold
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 2000)
        if self.args.cert_dir:
            certs = self.args.cert_dir
            pub, sec = zmq.auth.load_certificate(os.path.join(certs, "client.key_secret"))
            server_pub, _ = zmq.auth.load_certificate(os.path.join(certs, "server.key"))
            sock.curve_publickey, sock.curve_secretkey = pub, sec
            sock.curve_serverkey = server_pub
        self.monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        address = self.args.addresses.split(",")[0]
        sock.connect(f"tcp://{address}:{self.args.port}")
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self.monitor, zmq.POLLIN)

    def _send(self, frames: list[bytes]) -> None:
        stream = self.stream
        if stream is None:
            self.sock.send_multipart(zmq_parts(frames), copy=False)  # big frames: not copied
        else:
            stream.send(frames, self.poller)
        self.last_sent = time.monotonic()

    def _on_interchange(self) -> None:
        while True:
            try:
                parts = [f.buffer for f in self.sock.recv_multipart(zmq.NOBLOCK, copy=False)]
            except zmq.Again:
                return
            try:
                frames = unpack_parts(parts)
            except ProtocolError as exc:
                logger.error("unreadable message from the interchange: %s", exc)
                frames = []
            if frames:
                self._on_message(frames)
            if not self.sock.poll(0, zmq.POLLIN):
                return  # (asked: a raised zmq.Again costs 3x as much)

    def _on_stream(self, events: int) -> None:
        stream = self.stream
        assert stream is not None
        for frames in stream.on_poll(events, self.poller):
            self._on_message(frames)
        if stream.closed and not self.stop_reason:
            self.stop_reason = "the interchange closed its connection (it exited)"

    def _on_message(self, frames: list[bytes]) -> None:
        self.last_heard = time.monotonic()
        try:
            msg = decode(frames)
        except ProtocolError as exc:
            logger.error("unreadable message from the interchange: %s", exc)
            return
        if isinstance(msg, TaskBatch):
            for (tid, tries), payload in zip(msg.ids, msg.payloads, strict=True):
                self.queue.append((tid, tries, payload))
        elif isinstance(msg, Forward):
            self._forward(msg)
        elif isinstance(msg, Cancel):
            self._withdraw((msg.task_id, msg.try_number))
        elif isinstance(msg, Stop):
            self.stop_reason = f"the interchange said stop: {msg.reason}"

    def _on_monitor(self) -> None:
        assert self.monitor is not None
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self.disconnected_at = self.disconnected_at or time.monotonic()
            elif event["event"] == zmq.EVENT_CONNECTED:
                self.disconnected_at = None

    # --- workers --------------------------------------------------------------------

    @property
    def log_path(self) -> str:
        return os.path.join(self.logdir, "pool.log")

    def spawn(self, rank: int) -> None:
        args = self.args
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        widen_pipe(task_w)
        widen_pipe(result_r)
        log_path = os.path.join(self.logdir, f"worker-{rank}.log")
        env = dict(os.environ)
        env.update(
            PARSL_WORKER_RANK=str(rank), PARSL_WORKER_COUNT=str(self.size),
            PARSL_WORKER_POOL_ID=f"{self.host}-{os.getpid()}", PARSL_WORKER_BLOCK_ID=self.block_id,
        )
        cores = placement.affinity_cores(
            args.cpu_affinity, rank, self.size, sorted(os.sched_getaffinity(0))
        )
        if cores:
            env.update(placement.omp_env(cores))
        if args.accelerators:
            env.update(placement.accelerator_env(args.accelerators[rank % len(args.accelerators)]))
        cmd = [
            sys.executable, "-m", "livedag.executors.htex.worker", "--task-fd", str(task_r),
            "--result-fd", str(result_w), "--pool-pid", str(os.getpid()), "--log", log_path,
        ]
        if cores:
            cmd += ["--cores", ",".join(map(str, cores))]
        if args.debug:
            cmd.append("--debug")
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(task_r, result_w), env=env,
        )
        os.close(task_r)
        os.close(result_w)
        w = WorkerHandle(rank, proc, task_w, result_r, log_path)
        for fd in (task_w, result_r, w.out_fd, w.err_fd):
            os.set_blocking(fd, False)
        for fd, kind in ((result_r, "result"), (w.out_fd, "stdout"), (w.err_fd, "stderr")):
            self.by_fd[fd] = (w, kind)
            self.poller.register(fd, zmq.POLLIN)
        self.workers[rank] = w
        logger.info("started worker %d pid %d", rank, w.pid)

    def _on_fd(self, fd: int, events: int) -> None:
        entry = self.by_fd.get(fd)
        if entry is None:
            return
        w, kind = entry
        if events & zmq.POLLOUT and fd == w.task_w:
            self._write(w)
            return
        if kind == "result":
            try:
                records = w.reader.read(fd)
            except BlockingIOError:
                return
            except OSError:
                records = None
            if records is None:
                self._reap(w)
            else:
                self._on_records(w, records)
            return
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._on_output(w, kind, data)
        else:
            self._forget_fd(fd)  # EOF: the result pipe tells us when the worker is gone

    def _on_records(self, w: WorkerHandle, records: list[list[bytes]]) -> None:
        for frames in records:
            kind = frames[0]
            if kind == b"R" and w.task is not None:
                took = time.monotonic() - w.task_started
                avg = self.task_time
                self.task_time = took if avg is None else 0.8 * avg + 0.2 * took
                self._drain_output(w)
                self.report.results.append(w.task)
                self.report.result_data.append(frames[3])
                self.report.usage.append(_usage(frames[4] if len(frames) > 4 else b"", w))
                failed = len(frames) > 5 and frames[5] == b"F"
                if failed:
                    self.report.failed.append(w.task)
                if not failed:
                    self.recent.add(w.task, frames[3])
                if w.task in self.parking.waiters:
                    self._inputs_done(w.task, None if failed else frames[3])
                self._end_task(w)
                self.idle.append(w)
            elif kind == b"H":
                w.ready = self.ever_ready = True
                self.quick_deaths = 0
                self.idle.append(w)
            elif kind == b"E":
                w.note = frames[1].decode(errors="replace")

    def _forward(self, msg: Forward) -> None:
        """Park a task until its inputs here succeed; with inputs that finished just
        before it came, use their results (`recent`)."""
        recent = self.recent
        inputs = [(w[0], r) for w in msg.waits if (r := recent.get(w)) is not None]
        live = [w for w in msg.waits if w not in recent]
        if len(inputs) + len(live) < len(msg.waits) or not all(self._holds(w) for w in live):
            self.report.unforwarded.append(msg.key)  # an input's result is gone
        elif live:
            self.parking.park(msg.key, live, msg.payload, inputs)
        else:
            self.queue.appendleft((*msg.key, forwarded_payload(msg.payload, inputs)))

    def _withdraw(self, key: Key) -> None:
        """The interchange asks for a parked task back (a Cancel): the tasks parked on it
        go back too (in the report, sent first), then the answer."""
        withdrawn = self.parking.withdraw(key)
        self.report.unforwarded += [k for k, _ in withdrawn[1:]]
        if self.report:
            self._flush_report()
        self._send(CancelReply(*key, withdrawn=bool(withdrawn)).encode())

    def _holds(self, key: Key) -> bool:
        return (key in self.parking or any(w.task == key for w in self.workers.values())
                or any(t[0] == key[0] and t[1] == key[1] for t in self.queue))

    def _inputs_done(self, key: Key, outcome: bytes | None) -> None:
        """Tasks parked on `key`: first in line if it succeeded and they have all their
        inputs; given back if it failed (`outcome` None) or died."""
        if outcome is None:
            self.report.unforwarded += [k for k, _ in self.parking.failed(key)]
            return
        for (tid, tries), payload in self.parking.succeeded(key, outcome):
            self.queue.appendleft((tid, tries, payload))

    def _end_task(self, w: WorkerHandle) -> None:
        assert w.task is not None
        for stream, dropped in w.dropped.items():
            if dropped:
                note = (f"\n[livedag: {dropped} more bytes of {stream} were dropped: a task "
                        f"may send at most {OUTPUT_LIMIT} bytes per stream]\n").encode()
                self.report.outputs.append((*w.task, stream))
                self.report.output_data.append(note)
        w.task = None
        w.tasks_run += 1

    def _on_output(self, w: WorkerHandle, stream: str, data: bytes) -> None:
        if stream == "stderr":
            w.stderr_tail += data
            del w.stderr_tail[:-STDERR_TAIL]
        if w.task is None:
            logger.info("worker %d pid %d %s (outside a task): %s", w.rank, w.pid, stream,
                        data[:2000].decode(errors="replace").rstrip())
            return
        room = OUTPUT_LIMIT - w.sent[stream]
        if len(data) > room:
            w.dropped[stream] += len(data) - max(room, 0)
            data = data[: max(room, 0)]
            if not data:
                return
        w.sent[stream] += len(data)
        report = self.report
        key = (*w.task, stream)
        if report.outputs and report.outputs[-1] == key and len(report.output_data[-1]) < CHUNK:
            report.output_data[-1] += data  # one chunk per burst, not per read
        else:
            report.outputs.append(key)
            report.output_data.append(data)

    def _drain_output(self, w: WorkerHandle) -> None:
        # The worker flushed before writing its result, so everything the task printed is
        # already in these pipes: read it now, and it lands before the result.
        for fd, stream in ((w.out_fd, "stdout"), (w.err_fd, "stderr")):
            if fd not in self.by_fd:
                continue
            while True:
                try:
                    data = os.read(fd, CHUNK)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self._on_output(w, stream, data)

    def _dispatch(self) -> None:
        while self.queue and self.idle:
            w = self.idle.popleft()
            if w.rank not in self.workers or w is not self.workers[w.rank]:
                continue
            tid, tries, payload = self.queue.popleft()
            w.begin((tid, tries))
            self.report.started.append((tid, tries, w.pid))
            w.wbuf.add_record([b"T", str(tid).encode(), str(tries).encode(), payload])
            self._write(w)
            if self.next_sample == 0.0:
                self.next_sample = time.monotonic() + SAMPLE_PERIOD

    def _write(self, w: WorkerHandle) -> None:
        try:
            w.wbuf.write_to(w.task_w)
        except OSError:
            return  # the worker is gone; its result pipe EOF will reap it
        if w.wbuf:
            self.by_fd[w.task_w] = (w, "task")
            self.poller.register(w.task_w, zmq.POLLOUT)
        elif w.task_w in self.by_fd:
            self._forget_fd(w.task_w)

    def _forget_fd(self, fd: int) -> None:
        self.by_fd.pop(fd, None)
        with contextlib.suppress(KeyError):
            self.poller.unregister(fd)

    def _reap(self, w: WorkerHandle) -> None:
        """The worker's result pipe closed: collect its exit and evidence, replace it."""
        self._drain_output(w)
        for fd in (w.result_r, w.out_fd, w.err_fd, w.task_w):
            self._forget_fd(fd)
        try:
            code = w.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            w.proc.kill()  # it closed its pipe but lives on: no use to us
            code = w.proc.wait()
        evidence = tail_lines(bytes(w.stderr_tail))
        cause = describe_exit(code, w.peak_rss, w.note, in_task=w.task is not None)
        logger.warning("worker %d pid %d died (%s)%s; last stderr:\n%s", w.rank, w.pid, cause,
                       f" running task {w.task[0]}" if w.task else "", evidence)
        if w.task is not None:
            if w.task in self.parking.waiters:
                self._inputs_done(w.task, None)
            self.report.deaths.append(WorkerDeath(
                task_id=w.task[0], try_number=w.task[1], host=self.host, pid=w.pid,
                exitcode=code if code is not None and code >= 0 else None,
                signal=signal_name(code), cause=cause, stderr_tail=evidence,
                log_path=self.log_path,
            ))
        for fd in (w.result_r, w.task_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        for stream in (w.proc.stdout, w.proc.stderr):
            if stream is not None:
                stream.close()
        del self.workers[w.rank]
        if not w.ready and not self.ever_ready and self.quick_deaths + 1 >= STARTUP_ATTEMPTS:
            # No worker ever started: the environment is broken, and retrying forever would
            # leave tasks waiting forever. Leave, with the evidence on our stderr, which the
            # provider keeps (the block's .err file) and the kernel reports.
            self.stop_reason = f"workers cannot start ({cause})"
            self.goodbye = (f"{STARTUP_ATTEMPTS} workers in a row died before they were "
                            f"ready: {cause}; last lines of a worker's stderr:\n{evidence}")
            self.exit_code = 1
            sys.stderr.write(f"livedag pool: {STARTUP_ATTEMPTS} workers in a row died before "
                             f"they were ready ({cause}); last lines of a worker's stderr:\n"
                             f"{evidence}\n")
            sys.stderr.flush()
        if not self.stop_reason:
            quick = not w.ready or (time.monotonic() - w.started_at < 1.0 and not w.tasks_run)
            self.quick_deaths = self.quick_deaths + 1 if quick else 0
            # A worker that dies at start-up (a broken environment) is restarted more and
            # more slowly instead of in a tight loop.
            delay = min(10.0, 0.1 * 2 ** self.quick_deaths) if self.quick_deaths else 0.0
            self.respawn_at[w.rank] = time.monotonic() + delay

    @property
    def lookahead(self) -> int:
        avg = self.task_time
        if avg is None or avg >= LOOKAHEAD_MAX_TASK:
            return 0
        per_worker = min(LOOKAHEAD_CAP, math.ceil(LOOKAHEAD_WINDOW / max(avg, 1e-5)))
        return per_worker * self.size

    def _maybe_report(self, now: float) -> None:
        report = self.report
        if not report:
            return
        if not self.report_since:
            self.report_since = now
        done = report.results or report.deaths
        if (len(report.results) < REPORT_BATCH and not report.deaths
                and (self.queue or not done) and now - self.report_since < REPORT_DELAY):
            # Busy, or only news of starts and output: let more join this report. A short
            # task's start then travels with its result, in one message instead of two.
            return
        self._flush_report()

    def _flush_report(self) -> None:
        self.report.lookahead = self.lookahead
        self._send(self.report.encode())
        self.report = Report(manager=self.name)
        self.report_since = 0.0

    # --- the loop -------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        if self.next_sample and now >= self.next_sample:
            busy = False
            for w in list(self.workers.values()):  # _reap removes from it
                if w.task is not None:
                    w.sample_rss()
                    busy = True
                elif w.proc.poll() is not None and w.result_r in self.by_fd:
                    self._reap(w)
            self.next_sample = now + SAMPLE_PERIOD if busy else 0.0
        for rank, at in list(self.respawn_at.items()):
            if now >= at:
                del self.respawn_at[rank]
                self.spawn(rank)
        if now - self.last_sent >= self.hb_period:
            self._send(Heartbeat().encode())
        if now - self.last_heard > self.hb_threshold:
            self.stop_reason = (f"no message from the interchange for {now - self.last_heard:.0f}"
                                f" s (heartbeat_threshold={self.hb_threshold})")
        elif self.disconnected_at and now - self.disconnected_at > RECONNECT_GRACE:
            self.stop_reason = f"lost the connection to the interchange for {RECONNECT_GRACE} s"

    def _timeout_ms(self, now: float) -> int:
        deadlines = [self.last_sent + self.hb_period, self.last_heard + self.hb_threshold]
        if self.next_sample:
            deadlines.append(self.next_sample)
        if self.disconnected_at:
            deadlines.append(self.disconnected_at + RECONNECT_GRACE)
        if self.report_since:
            deadlines.append(self.report_since + REPORT_DELAY)
        deadlines += self.respawn_at.values()
        return max(0, int((min(deadlines) - now) * 1000) + 1)

    def run(self) -> None:
        self.connect()
        for rank in range(self.size):
            self.spawn(rank)
        logger.info("pool of %d workers (capacity %d) on %s, block %s", self.size,
                    self.capacity, self.host, self.block_id)
        while not self.stop_reason:
            try:
                events = self.poller.poll(self._timeout_ms(time.monotonic()))
            except zmq.ZMQError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            stream_fd = self.stream.fd if self.stream is not None else -1
            for item, ev in events:
                if item is self.sock:
                    self._on_interchange()
                elif item is self.monitor:
                    self._on_monitor()
                elif item == stream_fd:
                    self._on_stream(ev)
                else:
                    self._on_fd(item, ev)
            self._dispatch()
            now = time.monotonic()
            self._tick(now)
            self._maybe_report(now)
        logger.info("pool exiting: %s", self.stop_reason)
        self.close()

    def close(self) -> None:
        if self.exit_code or self.stop_reason.startswith("received"):
            # Leaving on our own: say why, so our tasks fail now with the reason instead
            # of after two missed heartbeats.
            with contextlib.suppress(zmq.ZMQError):
                self._send(Goodbye(self.goodbye or self.stop_reason).encode())
            if self.stream is not None:
                self.stream.drain(1.0)  # its last words, before the connection closes
        procs = [w.proc for w in self.workers.values()]
        for p in procs:
            with contextlib.suppress(OSError):
                p.terminate()
        deadline = time.monotonic() + 1.0
        for p in procs:
            try:
                p.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.stream is not None:
            self.stream.close()
        if self.monitor is not None:
            self.monitor.close(linger=0)
        self.sock.close(linger=1000)
        self.ctx.term()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def maybe_float(text: str) -> float | None:
        return None if text in ("", "None") else float(text)

    p = argparse.ArgumentParser(prog="livedag-pool")
    p.add_argument("--addresses", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--block-id", required=True)
    p.add_argument("--logdir", required=True)
    p.add_argument("--secret-file", required=True)
    p.add_argument("--cert-dir", default="")
    p.add_argument("--local-socket", default="")
    p.add_argument("--hb-period", type=float, default=30.0)
    p.add_argument("--hb-threshold", type=float, default=120.0)
    p.add_argument("--max-workers", type=float, default=float("inf"))
    p.add_argument("--cores-per-worker", type=float, default=1.0)
    p.add_argument("--mem-per-worker", type=maybe_float, default=None)
    p.add_argument("--prefetch", type=int, default=0)
    p.add_argument("--cpu-affinity", default="none")
    p.add_argument("--accelerators", nargs="*", default=[])
    p.add_argument("--debug", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.logdir = os.path.join(args.logdir, f"block-{args.block_id}",
                               f"{socket.gethostname()}-{os.getpid()}")
    os.makedirs(args.logdir, exist_ok=True)
    logging.basicConfig(
        filename=os.path.join(args.logdir, "pool.log"),
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    pool = Pool(args)

    def on_term(signum: int, frame: object) -> None:
        pool.stop_reason = f"received {signal.Signals(signum).name}"

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        pool.run()
    except Exception:
        logger.exception("pool failed")
        raise
    sys.exit(pool.exit_code)


if __name__ == "__main__":
    main()
