"""The kernel's end of its pipes to the interchange: the process is started here, handed
its config, and awaited until it listens; after that, everything the kernel sends goes
through one Outbox, in order. (The executor's receiver thread reads the rest of stdout,
or a thread that waits for a result reads it, inside `interrupts_after`.)

    spawn ──> interchange process: stdin and stdout are our pipes, stderr a file
    connect ──InterchangeConfig──> stdin;  stdout ──Ready(port)──> wait_ready
    submit / cancel / strategy / shutdown ──[executor lock] Outbox.send(item)──┐
        alone (nothing sent for COALESCE_WINDOW) ──write: one record──> stdin ──> interchange
        in a burst ──> queue ──writer thread: all that queued, tasks as one TaskBatch──┘
        more than OUTBOX_LIMIT bytes queued ──> the sender waits for the writer

An item is a record (`pack_frames` of a Cancel, Retire, Shutdown ...) or a task as
(key, payload). stdin is blocking: a write returns when all is written, and the
interchange always reads its pipe, so every wait here ends.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from livedag.executors.htex.blocks import env_with_livedag
from livedag.executors.htex.protocol import (
    FrameReader,
    InterchangeConfig,
    Ready,
    SendBuffer,
    TaskBatch,
    decode,
    pack_frames,
    widen_pipe,
    write_all,
)

# Calls closer together than this are a burst: they queue and go as one batch (see send).
COALESCE_WINDOW = 0.0002
OUTBOX_LIMIT = 8 << 20  # bytes queued for the writer before a submit waits for it

Item = bytes | tuple[tuple[int, int], bytes]


def spawn(stderr_path: str) -> subprocess.Popen[bytes]:
    """Start the interchange: its stdin and stdout are our pipes, its stderr a file."""
    with open(stderr_path, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "livedag.executors.htex.interchange"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
            env=env_with_livedag(), close_fds=True,
            # Out of the kernel's process group, which Jupyter sends SIGINT to when it
            # interrupts a cell: even before the interchange's main() ignores SIGINT.
            # (It still ends with the kernel: at the end of its stdin.)
            start_new_session=True,
        )


def connect(ix: subprocess.Popen[bytes], outbox: Outbox, config: InterchangeConfig) -> None:
    """Point `outbox` at the interchange's stdin, widen both pipes, send its config first."""
    assert ix.stdin is not None and ix.stdout is not None
    outbox.fd = ix.stdin.fileno()
    widen_pipe(outbox.fd)
    widen_pipe(ix.stdout.fileno())
    outbox.write(pack_frames(config.encode()))


def wait_ready(ix: subprocess.Popen[bytes], reader: FrameReader, timeout: float) -> Ready | None:
    """The interchange's Ready (it listens for pools); None if it exits, closes its stdout,
    or says nothing for `timeout` seconds. What follows Ready stays in `reader`."""
    assert ix.stdout is not None
    fd = ix.stdout.fileno()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        data = os.read(fd, 1 << 16) if readable else b""
        if readable and data:
            for frames in reader.feed(data):
                msg = decode(frames)
                if isinstance(msg, Ready):
                    return msg
            continue
        if readable or ix.poll() is not None:
            break
    return None


class Outbox:
    """The ordered writes to the interchange's stdin (`fd`, set once it is started), and
    the writer thread (`run`) that sends bursts. `lock` is the executor's: its callers
    hold it around `send`, so a future is registered before its task can be answered."""

    def __init__(self, lock: threading.Lock) -> None:
        self.fd = -1
        self._lock = lock
        self._items: list[Item] = []
        self._writer_busy = False
        self._writer_wake = threading.Event()
        self._drained = threading.Condition(lock)
        self._bytes = 0
        self._writer_exit = False
        self.last_send = 0.0  # perf_counter() of the latest send (the receiver reads it)

    def send(self, item: Item, at_once: bool = False) -> None:
        """Send a record, or a task as (key, payload), to the interchange, in order.
        The caller holds the executor's lock.

        A call that comes alone (the previous one was more than COALESCE_WINDOW ago) is
        written at once: one call from a cell, or the next step of a chain, waits for
        nothing. Calls that come in a burst queue for the writer thread, which sends all
        that have queued as one TaskBatch: one write, and one wake-up of the interchange,
        per batch instead of per task. `at_once`: written now unless the writer is busy
        (a Forward, whose inputs may finish while it waits for the writer thread: a
        submitting thread holds the GIL for up to 5 ms at a time)."""
        now = time.perf_counter()
        quiet = now - self.last_send >= COALESCE_WINDOW
        self.last_send = now
        if (quiet or at_once) and not self._writer_busy:
            self.write(records([item]))
            return
        self._items.append(item)
        self._bytes += len(item) if isinstance(item, bytes) else len(item[1])
        if not self._writer_busy:
            self._writer_busy = True
            self._writer_wake.set()
        # Back-pressure: a burst of big arguments waits for the pipe instead of piling
        # up here (the interchange always reads its pipe, so this wait ends).
        while self._bytes > OUTBOX_LIMIT and not self._writer_exit:
            self._drained.wait(1.0)

    def run(self) -> None:
        """The writer thread: sends what queued, until close() and the queue is empty."""
        while True:
            self._writer_wake.wait()
            self._writer_wake.clear()
            while True:
                with self._lock:
                    items = self._items
                    if not items:
                        self._writer_busy = False
                        break
                    self._items = []
                    self._bytes = 0
                    self._drained.notify_all()
                # If the interchange is gone, the receiver fails what was outstanding.
                with contextlib.suppress(OSError):
                    self.write(records(items))
            if self._writer_exit:
                return

    def write(self, data: bytes | SendBuffer) -> None:
        if isinstance(data, SendBuffer):
            data.write_to(self.fd)  # a blocking pipe: returns when all is written
        else:
            write_all(self.fd, data)

    def close(self) -> None:
        """The writer leaves once it has sent what is queued."""
        self._writer_exit = True
        self._writer_wake.set()


def records(items: list[Item]) -> SendBuffer:
    """The records for queued items, in order: runs of tasks become one TaskBatch each.
    Big payloads are written from their own bytes (writev), never joined into a copy."""
    out = SendBuffer()
    keys: list[tuple[int, int]] = []
    payloads: list[bytes] = []
    for item in items:
        if isinstance(item, tuple):
            keys.append(item[0])
            payloads.append(item[1])
            continue
        if keys:
            out.add_record(TaskBatch(keys, payloads).encode())
            keys, payloads = [], []
        out.append(item)
    if keys:
        out.add_record(TaskBatch(keys, payloads).encode())
    return out


@contextlib.contextmanager
def interrupts_after() -> Iterator[None]:
    """On the main thread: a SIGINT (Jupyter's "interrupt the kernel", Ctrl-C) that comes
    during the block is raised again when the block is done, so a KeyboardInterrupt never
    cuts the handling of the interchange's messages in two (a future set, its callbacks
    not run: a task that never ends). Elsewhere, and where handlers cannot be set, it
    does nothing: signals only ever interrupt the main thread."""
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main thread (or interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)  # now, to the handler the user had
