"""Pools on the interchange's own machine: a Unix socket instead of zmq.

    interchange: Peers ── Listener (abstract Unix socket, random name)
                            ──accept──> one Stream per pool, known by an identity
    pool: Stream.connect(name) ──the pipes' records (pack_frames / FrameReader)──> interchange

Why: a zmq message crosses two more threads than a socket write (the sender's and the
receiver's I/O threads), and on a virtual machine every wake-up costs. Measured on the
2-vCPU VM (`bench.relay_floor --link unix` vs `--link zmq`): the round trip kernel ->
interchange -> pool -> worker and back with no work is ~67 µs over a Unix socket,
~160 µs with the zmq hop. Pools off the machine, and any pool that cannot reach the
socket, use zmq (with CurveZMQ off loopback) as before.

The messages are the same as on zmq, as records. Trust is the same as on loopback TCP,
plus one check: a connection from another user is refused before it is read (SO_PEERCRED),
the socket's name is random per run, and a pool must still `Register` with the run's
secret first. Until it has, a peer's records are limited to `UNREGISTERED_LIMIT` bytes,
so a stray client cannot make the interchange allocate what its first bytes claim.
Linux only (abstract socket names); elsewhere every pool uses zmq.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from livedag.executors.htex.protocol import FrameReader, ProtocolError, SendBuffer

SOCKET_BUFFER = 4 << 20  # bytes asked for (the system caps it: net.core.wmem_max)
UNREGISTERED_LIMIT = 1 << 20  # bytes per record before a peer has registered
SUPPORTED = sys.platform.startswith("linux")
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
POLLIN, POLLOUT, POLLERR = select.POLLIN, select.POLLOUT, select.POLLERR  # = zmq's


class Stream:
    """One end of a connection: records in (FrameReader), records out (SendBuffer)."""

    def __init__(self, sock: socket.socket, *, limit: int | None = None) -> None:
        sock.setblocking(False)
        # Room for a 1 MiB argument or result in one write and one wake-up of the reader
        # (Linux's default is ~200 KiB: five of each), as the pipes get (PIPE_SIZE).
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        self.sock = sock
        self.fd = sock.fileno()
        self.reader = FrameReader(limit)
        self.out = SendBuffer()
        self.closed = False

    @classmethod
    def connect(cls, name: str) -> Stream:
        """Connect to the interchange's socket `name` (OSError if it is not there)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect("\0" + name)
        except OSError:
            sock.close()
            raise
        return cls(sock)

    def send(self, frames: list[bytes], poller: Any) -> None:
        """Queue one message and write what the socket takes now; if some of it still
        waits, `poller` is asked for POLLOUT too (see on_poll)."""
        self.out.add_record(frames)
        if self.flush():
            poller.register(self.fd, POLLIN | POLLOUT)

    def on_poll(self, events: int, poller: Any) -> list[list[bytes]]:
        """What one poll found: write what waits (POLLIN only again once all is
        written), and return the records that came. `closed` says if the peer left;
        ProtocolError for a record over the reader's limit."""
        if events & POLLOUT and not self.flush():
            poller.register(self.fd, POLLIN)
        if events & (POLLIN | POLLERR):
            return self.receive() or []
        return []

    def flush(self) -> bool:
        if self.closed:
            self.out.clear()
            return False
        try:
            self.out.write_to(self.fd)
        except OSError:  # the peer is gone
            self.out.clear()
            self.closed = True
        return bool(self.out)

    def drain(self, timeout: float) -> None:
        """Write what waits, for at most `timeout` seconds (last words before closing)."""
        deadline = time.monotonic() + timeout
        while self.out and not self.closed and (left := deadline - time.monotonic()) > 0:
            select.select([], [self.fd], [], left)
            self.flush()

    def receive(self) -> list[list[bytes]] | None:
        """The complete records that have come; None once the peer has closed.
        ProtocolError for a record over the reader's limit."""
        records: list[list[bytes]] = []
        for _ in range(64):  # bounded: a fast sender must not starve the other sockets
            try:
                got = self.reader.read(self.fd)
            except BlockingIOError:
                return records
            except OSError:  # reset by the peer
                got = None
            if got is None:
                self.closed = True
                return records or None
            records += got
        return records

    def close(self) -> None:
        self.closed = True
        self.out.clear()
        with contextlib.suppress(OSError):
            self.sock.close()


class Listener:
    """The interchange's listening socket, under a random abstract name."""

    def __init__(self) -> None:
        self.name = f"livedag-{os.getpid()}-{secrets.token_hex(8)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind("\0" + self.name)
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()

    def accept(self) -> list[tuple[Stream | None, str]]:
        """The connections waiting: a Stream each, or None and why it was refused."""
        out: list[tuple[Stream | None, str]] = []
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return out
            except OSError as exc:  # e.g. too many open files: say so, keep listening
                out.append((None, f"accept failed: {exc}"))
                return out
            pid, uid, _ = _PEERCRED.unpack(
                conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
            if uid != os.getuid():
                conn.close()
                out.append((None, f"a connection from user id {uid} (pid {pid}), not ours"))
                continue
            out.append((Stream(conn, limit=UNREGISTERED_LIMIT), f"pid {pid}"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Peers:
    """The interchange's side: its Listener and the connections of pools, each known by
    an identity as a zmq peer is (b"local-N"), so the interchange handles both alike.

    `poller` is the interchange's (zmq.Poller: register/unregister raw fds); `on_message`
    gets (identity, frames) of each record, `on_closed` the identity of a connection that
    closed, `on_rogue` (identity, what) for a connection dropped for what it sent.
    """

    def __init__(self, poller: Any, *, on_message: Callable[[bytes, list[bytes]], None],
                 on_closed: Callable[[bytes], None], on_rogue: Callable[[bytes, str], None],
                 log: Callable[[str], None]) -> None:
        self.listener = Listener()
        self.poller = poller
        self.on_message, self.on_closed, self.on_rogue, self.log = (
            on_message, on_closed, on_rogue, log)
        self.by_fd: dict[int, tuple[bytes, Stream]] = {}
        self.by_identity: dict[bytes, Stream] = {}
        self.count = 0
        poller.register(self.listener.fd, POLLIN)

    @property
    def name(self) -> str:
        return self.listener.name

    def handle(self, events: dict[Any, int]) -> None:
        """What the poll found for the listener and the connections."""
        if self.listener.fd in events:
            self._accept()
        for fd in [fd for fd in events if fd in self.by_fd]:
            self._on_events(fd, events[fd])

    def stream_of(self, identity: bytes) -> Stream | None:
        """The connection of `identity`, or None if it is not one of ours."""
        return self.by_identity.get(identity)

    def send(self, identity: bytes, frames: list[bytes]) -> bool | None:
        """Send a message to `identity`: None if it is not one of ours (a zmq peer, or
        one whose connection has closed), False if its connection is closing (as a send
        to a gone zmq peer fails)."""
        stream = self.by_identity.get(identity)
        if stream is None or stream.closed:
            return None if stream is None else False  # closing: lost when its end is read
        stream.send(frames, self.poller)
        return True

    def registered(self, identity: bytes) -> None:
        """A pool registered on this connection: its records may be of any size."""
        stream = self.by_identity.get(identity)
        if stream is not None:
            stream.reader.limit = None

    def _accept(self) -> None:
        for stream, who in self.listener.accept():
            if stream is None:
                self.log(f"local socket: refused {who}")
                continue
            self.count += 1
            identity = f"local-{self.count}".encode()
            self.by_fd[stream.fd] = (identity, stream)
            self.by_identity[identity] = stream
            self.poller.register(stream.fd, POLLIN)

    def _on_events(self, fd: int, events: int) -> None:
        identity, stream = self.by_fd[fd]
        try:
            records = stream.on_poll(events, self.poller)
        except ProtocolError as exc:
            self.on_rogue(identity, f"unreadable message: {exc}; connection closed")
            records = []
            stream.closed = True
        for frames in records:
            self.on_message(identity, frames)
        if stream.closed:
            with contextlib.suppress(KeyError):
                self.poller.unregister(fd)
            del self.by_fd[fd]
            del self.by_identity[identity]  # a send to it now fails as to a gone zmq peer
            stream.close()
            self.on_closed(identity)

    def close(self, timeout: float = 0.5) -> None:
        """Write what waits (Stop messages) for at most `timeout` s, then close all."""
        deadline = time.monotonic() + timeout
        for _, stream in self.by_fd.values():
            stream.drain(max(0.0, deadline - time.monotonic()))
            stream.close()
        self.listener.close()
