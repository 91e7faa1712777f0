"""The Unix socket between the interchange and local pools (streams.py), on real sockets
in this process: records both ways, big ones through a small socket buffer, the limit
for peers that have not registered, and a peer that goes away."""

from __future__ import annotations

import select
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from livedag.executors.htex import streams
from livedag.executors.htex.protocol import FrameReader, ProtocolError, pack_frames

pytestmark = pytest.mark.skipif(not streams.SUPPORTED, reason="abstract sockets: Linux")


class Poller:
    """Stands in for the interchange's zmq.Poller: keeps what is registered, and polls
    it with select.poll."""

    def __init__(self) -> None:
        self.flags: dict[int, int] = {}

    def register(self, fd: int, flags: int) -> None:
        self.flags[fd] = flags

    def unregister(self, fd: int) -> None:
        del self.flags[fd]

    def poll(self, timeout_ms: int) -> dict[int, int]:
        p = select.poll()
        for fd, flags in self.flags.items():
            p.register(fd, flags)
        return dict(p.poll(timeout_ms))


class Interchange:
    """What the interchange does with its Peers: it only records."""

    def __init__(self) -> None:
        self.poller = Poller()
        self.messages: list[tuple[bytes, list[bytes]]] = []
        self.closed: list[bytes] = []
        self.rogue: list[str] = []
        self.peers = streams.Peers(
            self.poller, on_message=lambda i, f: self.messages.append((i, [bytes(x) for x in f])),
            on_closed=self.closed.append, on_rogue=lambda i, what: self.rogue.append(what),
            log=self.rogue.append,
        )

    def turn(self, until: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "nothing came"
            self.peers.handle(self.poller.poll(50))


@pytest.fixture
def ix() -> Iterator[Interchange]:
    made = Interchange()
    yield made
    made.peers.close(timeout=0)


def receive_all(stream: streams.Stream, count: int, timeout: float = 5.0) -> list[list[bytes]]:
    got: list[list[bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"{len(got)} of {count} records came"
        select.select([stream.fd], [], [], 0.05)
        got += [[bytes(f) for f in r] for r in stream.receive() or ()]
    return got


def test_records_cross_both_ways_and_big_ones_are_flushed_in_pieces(ix: Interchange) -> None:
    pool = streams.Stream.connect(ix.peers.name)
    ix.turn(lambda: ix.peers.by_identity)
    (identity,) = ix.peers.by_identity
    ix.peers.registered(identity)  # a registered pool may send records of any size

    big = bytes(range(256)) * (64 << 10)  # 16 MiB: more than a socket buffer holds
    pool_poller = Poller()
    pool.send([b"report", b"{}", big], pool_poller)
    assert pool_poller.flags[pool.fd] & select.POLLOUT  # the rest waits for the socket
    while pool.out:  # what the pool's loop does on POLLOUT
        ix.peers.handle(ix.poller.poll(10))
        pool.on_poll(select.POLLOUT, pool_poller)
    assert pool_poller.flags[pool.fd] == select.POLLIN
    ix.turn(lambda: ix.messages)
    assert ix.messages == [(identity, [b"report", b"{}", big])]

    stream = ix.peers.stream_of(identity)
    assert stream is not None
    for i in range(3):
        assert ix.peers.send(identity, [b"tasks", str(i).encode(), big[: 1000 * i]])
    while stream.out:
        ix.peers.handle(ix.poller.poll(10))
        receive_all(pool, 0)
    assert receive_all(pool, 3) == [[b"tasks", str(i).encode(), big[: 1000 * i]]
                                    for i in range(3)]
    pool.close()


def test_a_record_over_the_limit_closes_an_unregistered_peer_before_allocating(
    ix: Interchange,
) -> None:
    rogue = streams.Stream.connect(ix.peers.name)
    ix.turn(lambda: ix.peers.by_identity)
    (identity,) = ix.peers.by_identity
    # Within the limit: handed on (the interchange then checks it is a Register).
    rogue.send([b"garbage"], Poller())
    ix.turn(lambda: ix.messages)
    # A size of 2**60 bytes: refused from its first 8 bytes.
    rogue.out.append(struct.pack("<Q", 1 << 60) + b"x" * 64)
    rogue.flush()
    ix.turn(lambda: ix.closed)
    assert ix.closed == [identity]
    assert ix.rogue == [f"unreadable message: a record of {1 << 60} bytes (at most "
                        f"{streams.UNREGISTERED_LIMIT} accepted); connection closed"]
    assert ix.peers.stream_of(identity) is None
    assert rogue.receive() is None  # the interchange hung up
    rogue.close()


def test_a_peer_that_goes_away_is_reported_once_and_sends_to_it_fail(ix: Interchange) -> None:
    pool = streams.Stream.connect(ix.peers.name)
    ix.turn(lambda: ix.peers.by_identity)
    (identity,) = ix.peers.by_identity
    stream = ix.peers.stream_of(identity)
    assert stream is not None
    pool.send([b"hb", b"{}"], Poller())
    pool.close()  # the pool process is killed: its end closes
    ix.turn(lambda: ix.closed)
    assert ix.messages == [(identity, [b"hb", b"{}"])]  # what it sent first still counts
    assert ix.closed == [identity]
    assert not ix.peers.send(identity, [b"stop", b"{}"])


def test_the_last_words_of_a_closing_end_are_written_before_it_closes(ix: Interchange) -> None:
    pool = streams.Stream.connect(ix.peers.name)
    ix.turn(lambda: ix.peers.by_identity)
    stop = [b"stop", b"x" * (8 << 20)]  # more than the socket holds at once
    assert ix.peers.send(next(iter(ix.peers.by_identity)), stop)
    got: list[list[bytes]] = []
    reader = threading.Thread(target=lambda: got.extend(receive_all(pool, 1)))
    reader.start()
    ix.peers.close(timeout=5.0)  # drains, then closes
    reader.join(10)
    assert got == [stop]
    pool.close()


def test_connect_to_a_name_nobody_listens_on_fails_with_oserror() -> None:
    with pytest.raises(OSError):
        streams.Stream.connect(f"livedag-nobody-{time.monotonic_ns()}")


def test_stream_reader_limit_is_checked_in_every_reading_path() -> None:
    reader = FrameReader(limit=100)
    small = pack_frames([b"a" * 50])
    assert reader.feed(small) == [[b"a" * 50]]
    with pytest.raises(ProtocolError):
        reader.feed(pack_frames([b"b" * 200]))
    split = FrameReader(limit=100)
    head = struct.pack("<Q", 10_000)
    assert split.feed(head[:5]) == []  # a size cut between reads is checked once whole
    with pytest.raises(ProtocolError):
        split.feed(head[5:])

