"""Pools on the interchange's own machine: a Unix socket instead of zmq.

    interchange: Listener (abstract Unix socket, random name) ──accept──> one Stream per pool
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

from livedag.executors.htex.protocol import FrameReader, SendBuffer

SOCKET_BUFFER = 4 << 20  # bytes asked for (the system caps it: net.core.wmem_max)
UNREGISTERED_LIMIT = 1 << 20  # bytes per record before a peer has registered
SUPPORTED = sys.platform.startswith("linux")
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


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

    def send(self, frames: list[bytes]) -> bool:
        """Queue one message and write what the socket takes now; True while some of it
        still waits (the caller then polls for POLLOUT and calls `flush`)."""
        self.out.add_record(frames)
        return self.flush()

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
