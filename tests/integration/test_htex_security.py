"""Who may talk to the interchange: pools with the run's secret (and keys, off loopback).

A rogue client connects to the worker port, or to the Unix socket of local pools, and
sends garbage, pickles, a fake report and a registration with a wrong secret: the
interchange logs and drops each, never unpickles anything, and tasks keep flowing.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
import zmq
import zmq.auth
from htex_fixtures import Maker, call, executors

from livedag.executors.htex.protocol import (
    PROTOCOL_VERSION,
    FrameReader,
    Register,
    Report,
    pack_frames,
    unpack_record,
)
from livedag.executors.htex.streams import UNREGISTERED_LIMIT
from livedag.providers import LocalProvider

pytestmark = pytest.mark.timeout(60)

@pytest.fixture
def htex(tmp_path: Any) -> Iterator[Maker]:
    yield from executors(tmp_path)



class Boom:
    """Unpickling this would create a file: proof that something unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "w"))


def double(x: int) -> int:
    return 2 * x


def rogue_messages(canary: str) -> list[list[bytes]]:
    evil = pickle.dumps(Boom(canary))
    fake = Report(results=[(1, 1)], result_data=[evil], usage=[(0.0, 0.0, 0.0)]).encode()
    wrong = Register("not-the-secret", PROTOCOL_VERSION, "rogue", 1, "0", 1, 1, "py", "log")
    bad_types = [b"register", json.dumps({"secret": 1, "capacity": "x"}).encode()]
    return [[b"garbage"], [evil], [b"tasks", b"[[1,1]]", evil], fake, wrong.encode(),
            bad_types, [b"\xff" * 100_000]]


def test_rogue_client_is_logged_and_ignored_on_loopback(htex: Any, tmp_path: Any) -> None:
    ex, _ = htex()
    assert ex.submit(call(double, 1)).result(timeout=10) == 2
    listening = [c.laddr for c in psutil.Process(ex._ix.pid).net_connections()  # type: ignore[union-attr]
                 if c.status == psutil.CONN_LISTEN]
    assert [a.ip for a in listening] == ["127.0.0.1"]  # local blocks: loopback only
    canary = str(tmp_path / "unpickled")
    ctx = zmq.Context()
    rogue = ctx.socket(zmq.DEALER)
    try:
        rogue.connect(f"tcp://127.0.0.1:{ex.port}")
        for frames in rogue_messages(canary):
            rogue.send_multipart(frames)
            rogue.send(pack_frames(frames))
            assert ex.submit(call(double, 2)).result(timeout=10) == 4  # service goes on
        time.sleep(0.3)
        # A wrong secret gets a Stop; nothing else gets an answer.
        assert rogue.poll(1000)
        assert unpack_record(rogue.recv())[0] == b"stop"
    finally:
        rogue.close(linger=0)
        ctx.term()
    log = unharmed(ex, canary)
    assert "unreadable message" in log and "wrong secret" in log
    assert "Report before registering" in log


def unharmed(ex: Any, canary: str) -> str:
    """Nothing the rogue sent was unpickled and tasks still run; the interchange's log."""
    assert not os.path.exists(canary)
    futs = [ex.submit(call(double, i)) for i in range(100)]
    assert [f.result(timeout=10) for f in futs] == [2 * i for i in range(100)]
    with open(ex.interchange_log) as f:
        return f.read()


def read_records(sock: socket.socket, timeout: float) -> list[list[bytes]] | None:
    """The records the interchange sent on `sock` within `timeout` s; None if it closed
    the connection."""
    sock.settimeout(timeout)
    reader, got = FrameReader(), []
    try:
        while data := sock.recv(1 << 16):
            got += reader.feed(data)
    except TimeoutError:
        return got
    return None


def test_rogue_client_on_the_local_socket_is_logged_and_ignored(htex: Any,
                                                                 tmp_path: Any) -> None:
    ex, _ = htex()
    assert ex._local_socket, "local blocks get a Unix socket"
    assert ex.submit(call(double, 1)).result(timeout=10) == 2
    canary = str(tmp_path / "unpickled")
    rogue = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        rogue.connect("\0" + ex._local_socket)
        for frames in rogue_messages(canary):
            rogue.sendall(pack_frames(frames))
            assert ex.submit(call(double, 2)).result(timeout=10) == 4  # service goes on
        # A wrong secret gets a Stop; nothing else gets an answer.
        (stop,) = read_records(rogue, 1.0) or [[b"closed"]]
        assert stop[0] == b"stop"
        # A record that claims more than an unregistered peer may send: the connection
        # is closed before anything of that size is allocated.
        rogue.sendall(struct.pack("<Q", 1 << 60) + b"x" * 100)
        assert read_records(rogue, 5.0) is None
    finally:
        rogue.close()
    log = unharmed(ex, canary)
    assert "wrong secret" in log and "Report before registering" in log
    assert f"a record of {1 << 60} bytes (at most {UNREGISTERED_LIMIT} accepted)" in log


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_local_socket_refuses_other_users(htex: Any) -> None:
    ex, _ = htex()
    # A process of another user (nobody) connects and says hello: it is closed at once.
    probe = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        f"s.connect('\\0{ex._local_socket}')\n"
        "s.settimeout(5)\n"
        "try:\n"
        "    s.sendall(b'x' * 64)\n"
        "    print('closed' if s.recv(100) == b'' else 'answered')\n"
        "except OSError as exc:\n"
        "    print('closed', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert out.startswith("closed")
    assert ex.submit(call(double, 3)).result(timeout=10) == 6
    with open(ex.interchange_log) as f:
        assert "user id 65534" in f.read()


def outside_address() -> str | None:
    try:
        import psutil as _p

        for addrs in _p.net_if_addrs().values():
            for a in addrs:
                if a.family == socket.AF_INET and not a.address.startswith("127."):
                    return str(a.address)
    except Exception:
        return None
    return None


@pytest.mark.skipif(outside_address() is None, reason="no non-loopback IPv4 address")
def test_off_loopback_uses_curve_and_refuses_keyless_peers(htex: Any, tmp_path: Any) -> None:
    address = outside_address()
    assert address is not None
    ex, _ = htex(address=address, provider=LocalProvider())
    assert ex.submit(call(double, 5)).result(timeout=15) == 10
    cert_dir = os.path.join(ex.logdir, "certificates")
    assert os.stat(cert_dir).st_mode & 0o777 == 0o700
    for name in os.listdir(cert_dir):
        path = os.path.join(cert_dir, name)
        if os.path.isfile(path):
            assert os.stat(path).st_mode & 0o777 == 0o600, name
    ctx = zmq.Context()
    plain = ctx.socket(zmq.DEALER)
    keyed = ctx.socket(zmq.DEALER)
    try:
        plain.connect(f"tcp://{address}:{ex.port}")
        plain.send_multipart([b"garbage"])
        # A client with its own keys, who knows the server's public key: ZAP refuses it.
        server_pub, _ = zmq.auth.load_certificate(os.path.join(cert_dir, "server.key"))
        keyed.curve_publickey, keyed.curve_secretkey = zmq.curve_keypair()
        keyed.curve_serverkey = server_pub
        keyed.connect(f"tcp://{address}:{ex.port}")
        register = Register("x", PROTOCOL_VERSION, "r", 1, "0", 1, 1, "p", "l")
        keyed.send(pack_frames(register.encode()))
        deadline = time.monotonic() + 5
        log = ""
        while time.monotonic() < deadline:
            with open(ex.interchange_log) as f:
                log = f.read()
            if "refused a peer" in log and "handshake failed" in log:
                break
            time.sleep(0.1)
        assert "refused a peer" in log and "handshake failed" in log, log
    finally:
        plain.close(linger=0)
        keyed.close(linger=0)
        ctx.term()
    assert ex.submit(call(double, 6)).result(timeout=10) == 12
