"""The latency floor of the ZMQ executor's process layout, with no work done anywhere.

    this process ──pipe──> relay "interchange" ══link══> relay "pool" ──pipe──> echo "worker"
    this process <─pipe─── relay "interchange" <═══════  relay "pool" <─pipe─── echo "worker"

The link between interchange and pool is a Unix socket (`--link unix`: what pools on the
interchange's machine use, see livedag/executors/htex/streams.py) or zmq over TCP
(`--link zmq`: pools on other nodes). Without `--link`, both are measured in turn.

Each relay only moves 100 bytes on (no framing, no pickling, no bookkeeping); the round
trip is what the operating system and libzmq charge for the six hops and their wake-ups
alone. A real task's round trip (bench.htex latency) can approach this, never beat it.
On a virtual machine most of it is the cost of waking an idle virtual CPU.

Run from the repository root:  python3 -m bench.relay_floor [--n 2000] [--link unix|zmq]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import subprocess
import sys
import time


def interchange() -> None:
    import zmq

    sock = zmq.Context().socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    os.write(1, f"{port}\n".encode())
    pool, _ = sock.recv_multipart()
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(0, zmq.POLLIN)
    while True:
        for item, _ in poller.poll():
            if item == 0:
                data = os.read(0, 65536)
                if not data:
                    return
                sock.send_multipart([pool, data])
            else:
                os.write(1, sock.recv_multipart()[1])


def unix_interchange() -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = f"livedag-relay-floor-{os.getpid()}"
    server.bind("\0" + name)
    server.listen(1)
    os.write(1, f"{name}\n".encode())
    conn, _ = server.accept()
    pool = conn.fileno()
    while True:
        for fd in select.select([0, pool], [], [])[0]:
            data = os.read(fd, 65536)
            if not data:
                return
            os.write(pool if fd == 0 else 1, data)


def unix_pool(name: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\0" + name)
    link = sock.fileno()
    worker = subprocess.Popen([sys.executable, "-m", "bench.relay_floor", "--role", "worker"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert worker.stdin is not None and worker.stdout is not None
    to_worker, from_worker = worker.stdin.fileno(), worker.stdout.fileno()
    while True:
        for fd in select.select([link, from_worker], [], [])[0]:
            data = os.read(fd, 65536)
            if not data:
                return
            os.write(to_worker if fd == link else link, data)


def pool(port: str) -> None:
    import zmq

    sock = zmq.Context().socket(zmq.DEALER)
    sock.connect(f"tcp://127.0.0.1:{port}")
    sock.send(b"hello")
    worker = subprocess.Popen([sys.executable, "-m", "bench.relay_floor", "--role", "worker"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert worker.stdin is not None and worker.stdout is not None
    to_worker, from_worker = worker.stdin.fileno(), worker.stdout.fileno()
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(from_worker, zmq.POLLIN)
    while True:
        for item, _ in poller.poll():
            if item is sock:
                os.write(to_worker, sock.recv())
            else:
                data = os.read(from_worker, 65536)
                if not data:
                    return
                sock.send(data)


def echo() -> None:
    while data := os.read(0, 65536):
        os.write(1, data)


def measure(n: int, link: str) -> list[float]:
    prefix = "unix-" if link == "unix" else ""
    ix = subprocess.Popen([sys.executable, "-m", "bench.relay_floor",
                           "--role", f"{prefix}interchange"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert ix.stdin is not None and ix.stdout is not None
    port = ix.stdout.readline().decode().strip()
    relay = subprocess.Popen([sys.executable, "-m", "bench.relay_floor", "--role",
                              f"{prefix}pool", "--port", port])
    out, back = ix.stdin.fileno(), ix.stdout.fileno()
    samples = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            os.write(out, b"x" * 100)
            got = 0
            while got < 100:
                got += len(os.read(back, 65536))
            samples.append((time.perf_counter() - start) * 1e6)
    finally:
        relay.kill()
        ix.kill()
        relay.wait()
        ix.wait()
    return samples[n // 10:]  # the first round trips warm everything up


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.relay_floor")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--link", choices=["unix", "zmq"], action="append",
                        help="the interchange-pool link to measure (default: both)")
    parser.add_argument("--role", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    roles = {"interchange": interchange, "unix-interchange": unix_interchange,
             "pool": lambda: pool(args.port), "unix-pool": lambda: unix_pool(args.port),
             "worker": echo}
    if args.role:
        roles[args.role]()
        return
    for link in args.link or ["unix", "zmq"]:
        samples = measure(args.n, link)
        p95 = statistics.quantiles(samples, n=20)[-1]
        print(f"relay floor over {link:4} (kernel -> interchange -> pool -> worker and back, "
              f"no work): median {statistics.median(samples):,.0f} µs, p95 {p95:,.0f} µs "
              f"over {len(samples)} round trips")


if __name__ == "__main__":
    main()
