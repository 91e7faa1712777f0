"""The interchange: a broker process between the kernel and the worker pools.

    kernel ──stdin pipe: config, TaskBatch, Forward, Cancel, Shutdown──> interchange
    kernel <─stdout pipe: Ready, ManagerJoined, Report, Returned, Unforwarded, ManagerGone,
                          CancelReply── interchange
    interchange ══ROUTER (tcp, bound on loopback for local blocks)══ pools (DEALER)
    interchange ──Unix socket (streams.py)── pools on this machine, when they can reach it

The kernel talks to the interchange over the pipes it started it with, so nobody else
can submit tasks, and the end of stdin means the kernel is gone: the interchange tells
its pools to stop and exits at once. It ignores SIGINT: Jupyter interrupts a cell by
signalling the kernel's process group, which the interchange is in.

Pools must first `Register` with the run's secret (and, off loopback, pass CurveZMQ
authentication); anything from a peer that has not registered is logged and dropped.
The interchange never unpickles: payloads and results pass through as opaque frames.

The interchange keeps each task's payload until its result passes through: the kernel
let go of the task's arguments when it packed them. A try that fails (its result says
so, its worker died, its pool was lost) or is withdrawn gets its payload sent back to
the kernel (Returned, just before the news), which needs it to try again.

A Forward is a task whose inputs are tries held here: it is parked at the pool that holds
them all (a chain then runs inside that pool), or here, until they succeed (parking.py).
A task parked at a pool takes no slot until its inputs are done.

Flow control is by credit: a pool registers its capacity (workers + prefetch_capacity)
and is never sent more tasks than it has free slots; the rest wait here, in order. A
pool running short tasks also asks for a `lookahead` (see pool.py); those extra slots are
filled only after every pool's own capacity is full, so lookahead never takes a task
from an idle pool. Sockets have
no high-water mark (nothing is ever silently dropped) and ROUTER_MANDATORY makes a send
to a vanished pool an error instead of a silent drop.

A pool that is silent for min(heartbeat_threshold, 2 * heartbeat_period) seconds is
declared lost: its tasks are reported to the kernel (ManagerGone) and it is told to stop
if it ever comes back.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import hmac
import logging
import os
import select
import signal
import sys
import time
from typing import Any

import zmq

from livedag.executors.htex import streams
from livedag.executors.htex.parking import Key, Parking, Recent
from livedag.executors.htex.protocol import (
    PROTOCOL_VERSION,
    Cancel,
    CancelReply,
    Forward,
    FrameReader,
    Goodbye,
    Heartbeat,
    InterchangeConfig,
    ManagerGone,
    ManagerJoined,
    Message,
    ProtocolError,
    Ready,
    Register,
    Report,
    Retire,
    Returned,
    SendBuffer,
    Shutdown,
    Stop,
    TaskBatch,
    Unforwarded,
    decode,
    original_payload,
    record_kind,
    unpack_parts,
    widen_pipe,
    zmq_parts,
)

logger = logging.getLogger("livedag.interchange")

MAX_BATCH = 256  # tasks per message to one pool
ROGUE_LOG_LIMIT = 20  # log lines per unregistered peer, then silence


@dataclasses.dataclass(eq=False)
class Manager:
    """A registered pool."""

    identity: bytes
    name: str
    host: str
    pid: int
    block_id: str
    capacity: int
    log_path: str
    last_heard: float
    in_flight: dict[tuple[int, int], bytes] = dataclasses.field(default_factory=dict)
    # Tasks parked at this pool (they wait for results of tasks in it; see parking.py):
    # not in_flight, so they take no slot until their inputs are done.
    parked: Parking = dataclasses.field(default_factory=lambda: Parking(keep_inputs=False))
    # Tries whose results came from this pool lately (once a Forward has been seen): a
    # Forward that waits for one goes to this pool, which still has the result.
    recent: Recent = dataclasses.field(default_factory=Recent)
    lookahead: int = 0
    retiring: bool = False


class Interchange:
    def __init__(self, config: InterchangeConfig, stdin_fd: int, stdout_fd: int) -> None:
        self.config = config
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.kernel_reader = FrameReader()
        self.kernel_out = SendBuffer()
        self.pending: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self.queued: set[Key] = set()  # the keys in `pending`
        self.parking = Parking()
        self.managers: dict[bytes, Manager] = {}
        self.rogue_logged: collections.Counter[bytes] = collections.Counter()
        self.lost_after = min(config.heartbeat_threshold, 2 * config.heartbeat_period)
        self.next_heartbeat = 0.0
        self.stop_reason = ""
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.poller = zmq.Poller()
        self.auth: Any = None
        self.monitor: zmq.Socket[bytes] | None = None
        # Pools on this machine, connected over the Unix socket (streams.py).
        self.local: streams.Peers | None = None

    def bind(self) -> int:
        sock, cfg = self.sock, self.config
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a gone pool raises, not drops
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 0)
        if cfg.cert_dir:
            self._start_curve(cfg.cert_dir)
        address = f"tcp://{cfg.bind_address}"
        lo, hi = cfg.port_range
        if lo == hi:
            sock.bind(f"{address}:{lo}")
            port = lo
        else:
            port = sock.bind_to_random_port(address, min_port=lo, max_port=hi, max_tries=200)
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self.stdin_fd, zmq.POLLIN)
        if cfg.local_socket and streams.SUPPORTED:
            self.local = streams.Peers(self.poller, on_message=self._on_pool_frames,
                                       on_closed=self._peer_closed, on_rogue=self._rogue,
                                       log=logger.warning)
        return port

    @property
    def local_socket(self) -> str:
        return self.local.name if self.local is not None else ""

    def _start_curve(self, cert_dir: str) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        # ZAP runs in its own thread; it reports refusals at debug level, which we raise
        # to warnings so a rejected peer shows in the log.
        self.auth = ThreadAuthenticator(self.ctx, log=_AuthLog(logger, {}))
        self.auth.start()
        self.auth.configure_curve(domain="*", location=os.path.join(cert_dir, "clients"))
        pub, sec = zmq.auth.load_certificate(os.path.join(cert_dir, "server.key_secret"))
        self.sock.curve_secretkey = sec
        self.sock.curve_publickey = pub
        self.sock.curve_server = True
        # A peer without the run's keys fails the handshake before ZAP sees it: log that.
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )
        self.poller.register(self.monitor, zmq.POLLIN)

    def _on_monitor(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while self.monitor is not None:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            logger.warning("refused a connection: CurveZMQ handshake failed (%s, value %s): "
                           "the peer does not have this run's keys",
                           zmq.Event(event["event"]).name, event["value"])

    # --- kernel side --------------------------------------------------------------

    def to_kernel(self, msg: Message) -> None:
        self.kernel_out.add_record(msg.encode())

    def _flush_kernel(self) -> None:
        try:
            self.kernel_out.write_to(self.stdout_fd)
        except OSError:
            self.stop_reason = "the kernel closed its end of the pipe"
            self.kernel_out.clear()
            return
        if self.kernel_out:
            self.poller.register(self.stdout_fd, zmq.POLLOUT)
        else:
            with contextlib.suppress(KeyError):
                self.poller.unregister(self.stdout_fd)

    def _on_kernel(self) -> None:
        try:
            records = self.kernel_reader.read(self.stdin_fd)
        except BlockingIOError:
            return
        if records is None:
            self.stop_reason = "the kernel is gone (its pipe closed)"
            return
        for frames in records:
            msg = decode(frames)
            if isinstance(msg, TaskBatch):
                for (tid, tries), payload in zip(msg.ids, msg.payloads, strict=True):
                    self.pending.append((tid, tries, payload))
                self.queued.update(msg.ids)
            elif isinstance(msg, Forward):
                self._forward(msg)
            elif isinstance(msg, Cancel):
                self._cancel(msg.task_id, msg.try_number)
            elif isinstance(msg, Retire):
                for m in self.managers.values():
                    m.retiring = m.retiring or m.block_id == msg.block_id
                self._retire_idle()
            elif isinstance(msg, Shutdown):
                self.stop_reason = f"shutdown requested by the kernel: {msg.reason}"

    def _cancel(self, tid: int, tries: int) -> None:
        key = (tid, tries)
        for m in self.managers.values():
            if key in m.parked:  # that pool answers (_pool_withdrew)
                self._send(m.identity, Cancel(tid, tries).encode())
                return
        withdrawn = self.parking.withdraw(key)
        if withdrawn:
            self.to_kernel(Returned([key], [withdrawn[0][1]]))
            self.to_kernel(CancelReply(tid, tries, withdrawn=True))
            self._unforward(withdrawn[1:])
            return
        for i, entry in enumerate(self.pending):
            if entry[0] == tid and entry[1] == tries:
                del self.pending[i]
                self.queued.discard(key)
                self.to_kernel(Returned([key], [original_payload(entry[2])]))
                self.to_kernel(CancelReply(tid, tries, withdrawn=True))
                self._unforward(self.parking.failed(key))
                return
        self.to_kernel(CancelReply(tid, tries, withdrawn=False))

    def _forward(self, msg: Forward) -> None:
        """Park a task until the tries it waits for succeed (see parking.py): at the pool
        that holds them all, else here. Give it back at once if one of them is not
        here: its result has passed already."""
        key, waits = msg.key, msg.waits
        if self.pending:
            self._dispatch()  # inputs that came just before go to a pool first, if they can
        holders = [self._holder(w) for w in waits]
        pools = {h for h in holders if isinstance(h, Manager)}
        if False in holders or ((len(pools) > 1 or None in holders) and any(
                w in m.recent for m in pools for w in waits)):
            # Not here, or a result that passed already while others are elsewhere.
            self._unforward([(key, msg.payload)])
        elif len(pools) == 1 and None not in holders:
            manager = pools.pop()
            if not self._send(manager.identity, msg.encode()):
                self._unforward([(key, msg.payload)])
                return
            live = [w for w in waits if w not in manager.recent]
            if live:
                manager.parked.park(key, live, msg.payload)
            else:
                manager.in_flight[key] = msg.payload  # it runs there at once
        else:
            self.parking.park(key, waits, msg.payload)

    def _holder(self, key: Key) -> Manager | bool | None:
        """The pool that holds this try (runs it, has it queued or parked, or has just
        sent its result), None if the interchange does, False if nobody does."""
        for m in self.managers.values():
            if key in m.in_flight or key in m.parked or key in m.recent:
                return m
        return None if key in self.queued or key in self.parking else False

    def _unforward(self, entries: list[tuple[Key, bytes]]) -> None:
        if entries:
            keys = [k for k, _ in entries]
            self.to_kernel(Returned(keys, [p for _, p in entries]))
            self.to_kernel(Unforwarded(keys))

    # --- pool side ----------------------------------------------------------------

    def _send(self, identity: bytes, frames: list[bytes]) -> bool:
        if self.local is not None and (sent := self.local.send(identity, frames)) is not None:
            return sent
        try:
            # copy=False: zmq sends big frames from their buffers, not from copies.
            self.sock.send_multipart([identity, *zmq_parts(frames)], copy=False)
            return True
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            return False  # gone already; its silence will get it declared lost

    def _on_pools(self) -> None:
        sock = self.sock
        for _ in range(1000):  # bounded, so the kernel pipe gets its turn
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._on_pool_message(frames)
            # Asked, not found out by a raised zmq.Again: that costs 3x as much, once per
            # wake-up, and a wake-up per task is the latency path.
            if not sock.poll(0, zmq.POLLIN):
                return

    def _on_pool_message(self, frames: list[zmq.Frame]) -> None:
        identity = frames[0].bytes
        parts = [f.buffer for f in frames[1:]]  # zmq's own buffers: no copy
        try:
            if not parts:
                raise ProtocolError("an empty zmq message")
            # A report is read in place: it goes on to the kernel as it came, results
            # and all, without a copy or a new encoding.
            report = identity in self.managers and record_kind(parts[0]) == Report.kind
            unpacked = unpack_parts(parts, views=report)
        except ProtocolError as exc:
            self._rogue(identity, f"unreadable message: {exc}")
            return
        self._on_pool_frames(identity, unpacked)

    def _on_pool_frames(self, identity: bytes, frames: list[bytes]) -> None:
        """One message from a pool (or a peer that has yet to register as one)."""
        manager = self.managers.get(identity)
        try:
            if manager is not None and frames and frames[0] == Report.kind:
                report_frames = frames
                report = Report.from_frames(report_frames)
                if report.manager != manager.name:
                    raise ProtocolError(f"a report signed {report.manager!r}")
                manager.last_heard = time.monotonic()
                self._on_report(manager, report, report_frames)
                return
            msg = decode(frames)
        except ProtocolError as exc:
            self._rogue(identity, f"unreadable message: {exc}")
            return
        if manager is None:
            if isinstance(msg, Register):
                try:
                    self._register(identity, msg)
                except Exception as exc:
                    self._rogue(identity, f"registration that broke its handler: {exc!r}")
            else:
                self._rogue(identity, f"{type(msg).__name__} before registering")
            return
        manager.last_heard = time.monotonic()
        try:
            self._on_manager_message(manager, msg)
        except Exception as exc:  # a registered pool sent nonsense: log, carry on
            self._rogue(identity, f"message that broke its handler: {exc!r}")

    def _peer_closed(self, identity: bytes) -> None:
        """A pool's connection closed: it exited or was killed (a pool that leaves on its
        own says Goodbye first, and is gone already). Its tasks are lost now, not after
        two missed heartbeats."""
        m = self.managers.pop(identity, None)
        if m is None:
            return
        silent = time.monotonic() - m.last_heard
        logger.error("pool %s (block %s) lost: its connection closed with %d tasks; see %s",
                     m.name, m.block_id, len(m.in_flight), m.log_path)
        keys = self._pool_gone(m)
        self.to_kernel(ManagerGone(
            m.name, "its connection to the interchange closed: the pool process exited or "
            "was killed", silent, keys))

    def _on_report(self, manager: Manager, msg: Report, frames: list[bytes]) -> None:
        manager.lookahead = max(0, msg.lookahead)
        in_flight = manager.in_flight
        if msg.failed or msg.deaths:
            self._give_back(in_flight, [*msg.failed,
                                        *((d.task_id, d.try_number) for d in msg.deaths)])
        if msg.unforwarded:
            self._unforwarded_by(manager, msg.unforwarded)
        for key in msg.results:
            in_flight.pop(key, None)
        # Noted always: the first Forward may name a result that has just passed.
        failed = set(msg.failed) if msg.failed else ()
        recent = manager.recent
        for key in msg.results:
            if key not in failed:
                recent.add(key, None)
        if manager.parked.waiters:
            # Parked there, and now running there: they take a slot.
            for key in msg.results:
                for ready, payload in manager.parked.succeeded(key, b""):
                    in_flight[ready] = payload
        if self.parking.waiters:
            self._inputs_done(msg)
        self.kernel_out.add_record(frames)  # big frames: written from zmq's buffers
        if manager.retiring and not manager.in_flight:
            self._retire_idle()

    def _unforwarded_by(self, manager: Manager, keys: list[Key]) -> None:
        """A pool will not run these parked tasks: back to the kernel, with what is
        parked on them here."""
        entries: list[tuple[Key, bytes]] = []
        for key in keys:
            payload = manager.parked.pop(key)
            if payload is None:  # its inputs had passed through here: it had a slot
                payload = manager.in_flight.pop(key, None)
            if payload is not None:
                entries += [(key, original_payload(payload)), *self.parking.failed(key)]
        self._unforward(entries)

    def _pool_gone(self, manager: Manager) -> list[Key]:
        """A pool left or was lost: its tries go back to the kernel; those parked there
        never ran, and are given back as unforwarded. The keys of its tries."""
        keys = sorted(manager.in_flight)
        entries: list[tuple[Key, bytes]] = []
        for key, parked in manager.parked.parked.items():
            entries += [(key, parked.payload), *self.parking.failed(key)]
        self._unforward(entries)
        self._give_back(manager.in_flight, keys)
        return keys

    def _inputs_done(self, msg: Report) -> None:
        """Results that parked tasks wait for: those now complete go first in line. (The
        failed results' waiters were given back already.)"""
        waiters = self.parking.waiters
        for key, data in zip(msg.results, msg.result_data, strict=True):
            if key in waiters:
                for ready, payload in self.parking.succeeded(key, data):
                    self.pending.appendleft((*ready, payload))
                    self.queued.add(ready)

    def _give_back(self, in_flight: dict[tuple[int, int], bytes],
                   keys: list[tuple[int, int]]) -> None:
        """Send these tries' payloads back to the kernel (see the module's docstring), and
        the tasks parked on them."""
        found = [k for k in keys if k in in_flight]
        if found:
            self.to_kernel(Returned(found, [original_payload(in_flight.pop(k))
                                            for k in found]))
        if self.parking.waiters:
            for key in keys:
                self._unforward(self.parking.failed(key))

    def _on_manager_message(self, manager: Manager, msg: Message) -> None:
        if isinstance(msg, Goodbye):
            del self.managers[manager.identity]
            logger.warning("pool %s (block %s) left with %d tasks: %s", manager.name,
                           manager.block_id, len(manager.in_flight), msg.reason)
            keys = self._pool_gone(manager)
            self.to_kernel(ManagerGone(manager.name, msg.reason, 0.0, keys, lost=False))
        elif isinstance(msg, CancelReply):
            self._pool_withdrew(manager, msg)
        elif not isinstance(msg, Heartbeat):
            self._rogue(manager.identity, f"unexpected {type(msg).__name__} from a pool")

    def _pool_withdrew(self, manager: Manager, msg: CancelReply) -> None:
        """A pool's answer to a Cancel of a task parked there."""
        key = (msg.task_id, msg.try_number)
        payload = manager.parked.pop(key) if msg.withdrawn else None
        if payload is not None:
            self.to_kernel(Returned([key], [payload]))
            self.to_kernel(CancelReply(*key, withdrawn=True))
            self._unforward(self.parking.failed(key))
        else:
            self.to_kernel(CancelReply(*key, withdrawn=False))

    def _rogue(self, identity: bytes, what: str) -> None:
        self.rogue_logged[identity] += 1
        count = self.rogue_logged[identity]
        if count <= ROGUE_LOG_LIMIT:
            logger.warning("dropped a message from peer %s: %s%s", identity.hex()[:16], what,
                           " (further messages from it are dropped silently)"
                           if count == ROGUE_LOG_LIMIT else "")

    def _register(self, identity: bytes, msg: Register) -> None:
        if not hmac.compare_digest(str(msg.secret).encode(), self.config.secret.encode()):
            self._rogue(identity, f"registration with a wrong secret (claims host {msg.host!r})")
            self._send(identity, Stop("registration refused: wrong secret").encode())
            return
        if msg.version != PROTOCOL_VERSION:
            logger.error("refused pool on %s: protocol %s, ours %s", msg.host, msg.version,
                         PROTOCOL_VERSION)
            self._send(identity, Stop(f"protocol version {msg.version} is not "
                                      f"{PROTOCOL_VERSION}: install the same livedag").encode())
            return
        name = f"{msg.host}:{msg.pid}"
        if self.local is not None:
            self.local.registered(identity)
        self.managers[identity] = Manager(
            identity, name, msg.host, msg.pid, msg.block_id, max(1, msg.capacity), msg.log_path,
            time.monotonic(),
        )
        logger.info("pool %s registered: block %s, %d workers, capacity %d, python %s",
                    name, msg.block_id, msg.workers, msg.capacity, msg.python)
        self.to_kernel(ManagerJoined(name, msg.host, msg.pid, msg.block_id, msg.workers,
                                     msg.capacity, msg.log_path))

    def _dispatch(self) -> None:
        if not self.pending or not self.managers:
            return
        # First every pool's own capacity (most free slots first), then lookahead slots.
        managers = sorted((m for m in self.managers.values() if not m.retiring),
                          key=lambda m: len(m.in_flight) - m.capacity)
        for manager in managers:
            self._fill(manager, manager.capacity - len(manager.in_flight))
        for manager in managers:
            self._fill(manager, manager.capacity + manager.lookahead - len(manager.in_flight))

    def _fill(self, manager: Manager, free: int) -> None:
        pending = self.pending
        while free > 0 and pending:
            n = min(free, MAX_BATCH, len(pending))
            batch = [pending.popleft() for _ in range(n)]
            ids = [(t, k) for t, k, _ in batch]
            payloads = [p for _, _, p in batch]
            if not self._send(manager.identity, TaskBatch(ids, payloads).encode()):
                pending.extendleft(reversed(batch))
                return
            self.queued.difference_update(ids)
            manager.in_flight.update(zip(ids, payloads, strict=True))
            free -= n

    def _retire_idle(self) -> None:
        for identity, m in list(self.managers.items()):
            if m.retiring and not m.in_flight:
                del self.managers[identity]
                logger.info("pool %s (block %s) retired: scaled in", m.name, m.block_id)
                self._send(identity, Stop("scaled in").encode())
                self.to_kernel(ManagerGone(m.name, "scaled in", 0.0, [], lost=False))

    def _check_managers(self, now: float) -> None:
        for identity, m in list(self.managers.items()):
            silent = now - m.last_heard
            if silent <= self.lost_after:
                continue
            del self.managers[identity]
            logger.error("pool %s (block %s) lost: silent for %.1f s with %d tasks; see %s",
                         m.name, m.block_id, silent, len(m.in_flight), m.log_path)
            keys = self._pool_gone(m)
            self.to_kernel(ManagerGone(m.name, f"no heartbeat for {silent:.1f} s", silent, keys))
            self._send(identity, Stop("declared lost after missing heartbeats").encode())

    # --- the loop -----------------------------------------------------------------

    def run(self) -> None:
        while not self.stop_reason:
            if self.kernel_out:
                self._flush_kernel()
            now = time.monotonic()
            if now >= self.next_heartbeat:
                hb = Heartbeat().encode()
                for identity in list(self.managers):
                    self._send(identity, hb)
                self._check_managers(now)
                self.next_heartbeat = now + min(self.config.heartbeat_period, self.lost_after / 4)
            timeout = max(0, int((self.next_heartbeat - now) * 1000) + 1)
            try:
                events = dict(self.poller.poll(timeout))
            except zmq.ZMQError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if self.stdin_fd in events:
                self._on_kernel()
            if self.sock in events:
                self._on_pools()
            if self.monitor is not None and self.monitor in events:
                self._on_monitor()
            if self.local is not None:
                self.local.handle(events)
            self._dispatch()
        logger.info("interchange stopping: %s", self.stop_reason)
        self.close()

    def close(self) -> None:
        stop = Stop(self.stop_reason).encode()
        for identity in list(self.managers):
            self._send(identity, stop)
        # Give the stop messages a moment to leave before the socket goes.
        if self.monitor is not None:
            self.sock.disable_monitor()
            self.monitor.close(linger=0)
        self.sock.close(linger=500)
        if self.local is not None:
            self.local.close()
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()
        if self.kernel_out:
            os.set_blocking(self.stdout_fd, True)
            with contextlib.suppress(OSError):
                self.kernel_out.write_to(self.stdout_fd)


class _AuthLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """pyzmq's authenticator logs refusals at debug level; they are warnings to us."""

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        text = str(msg) % args if args else str(msg)
        if "DENIED" in text:
            self.warning("refused a peer: %s", text)
        else:
            super().debug(text)


def _read_config(fd: int, timeout: float = 30.0) -> InterchangeConfig:
    reader = FrameReader()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            break
        data = os.read(fd, 1 << 16)
        if not data:
            break
        records = reader.feed(data)
        if records:
            msg = decode(records[0])
            if isinstance(msg, InterchangeConfig):
                return msg
            raise ProtocolError(f"expected the config first, got {type(msg).__name__}")
    raise SystemExit("livedag interchange: no configuration on stdin")


def main() -> None:
    # Jupyter's "interrupt the kernel" sends SIGINT to the kernel's whole process group,
    # which this process is in: the interrupt is for the cell, not for the executor's tasks.
    # (The end of stdin still stops us when the kernel goes; SIGTERM and SIGKILL still do.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    config = _read_config(stdin_fd)
    logging.basicConfig(
        filename=config.log_path,
        level=logging.DEBUG if config.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Nothing else may write to our stdout: it is the kernel's message pipe.
    sys.stdout = sys.stderr
    ix = Interchange(config, stdin_fd, stdout_fd)
    try:
        port = ix.bind()
        logger.info("interchange pid %d for %r listening on %s:%d%s", os.getpid(), config.label,
                    config.bind_address, port, " (CurveZMQ)" if config.cert_dir else "")
        ix.to_kernel(Ready(port, os.getpid(), ix.local_socket))
        os.set_blocking(stdin_fd, False)
        os.set_blocking(stdout_fd, False)
        widen_pipe(stdin_fd)
        widen_pipe(stdout_fd)
        ix.run()
    except Exception:
        logger.exception("interchange failed")
        raise


if __name__ == "__main__":
    main()
