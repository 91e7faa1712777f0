"""The run record's writer: a process of its own, so that folding events into rows and
SQLite's work never share the kernel's GIL.

    kernel: Recorder, a bus subscriber ──a frame per batch: the log's items, pickled──> stdin
    writer: frame ──> the log's items ──> Writer.write: fold.Batch, one transaction, COMMIT
            ──> stdout: 8 bytes, the number of batches committed so far (Recorder.flush)

On a thread executor the kernel's tasks hold the GIL almost all the time: a recorder that
folded and wrote in a thread of the kernel took as much of it as the tasks did (bench/
monitoring.py, "+ commit"). Here the kernel's share is a pickle.dumps per batch.

The writer stops at the end of stdin (the record was closed, or the kernel is gone, even
killed: what it had read is committed) and after the batch with the kernel's cleanup. A
frame cut short by a dying kernel is dropped; every batch is one transaction in a WAL
database, so the record holds whole batches only. It runs in a session of its own:
Jupyter interrupts a cell by signalling the kernel's process group.

    python -m livedag.monitoring.writer DB_PATH OUTPUT_CHARS TRACEBACK_CHARS
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import sqlite3
import struct
import sys
from collections.abc import Sequence
from typing import Any

from livedag import events as ev
from livedag.monitoring.fold import Batch, Limits
from livedag.monitoring.schema import connect

FRAME = struct.Struct("<I")  # the length of the pickle that follows
ACK = struct.Struct("<Q")  # batches committed so far


class Writer:
    """One database's writing side: each batch of events, one transaction."""

    def __init__(self, path: str, options: Limits) -> None:
        conn = connect(path)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: store._create made it so
            self.seq = max_seq(conn)
            self.failures = {tid for (tid,) in conn.execute(
                "SELECT task_id FROM tasks WHERE fail_seq IS NOT NULL")}
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self.options = options
        self.waiting: dict[tuple[int, int], float] = {}  # see fold.Batch.waiting
        self.batches = 0

    def write(self, batch: ev.Batch | Sequence[Any]) -> bool:
        """Commit one batch (an events.Batch, or the bus log's items: see fold.Batch.add);
        True if it held the kernel's cleanup."""
        fold = Batch(self.seq, self.options, self.failures, self.waiting)
        fold.add(batch)
        conn = self.conn
        conn.execute("BEGIN")
        try:
            fold.execute(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self.seq = fold.seq
        self.failures = fold.failures
        waiting = self.waiting
        for key in fold.taken:
            del waiting[key]
        waiting.update(fold.launches)
        self.batches += 1
        return fold.cleanup is not None

    def close(self) -> None:
        self.conn.close()


def max_seq(conn: sqlite3.Connection) -> int:
    """The last seq the record holds: a kernel attached again goes on after it."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM tasks), 0), "
        "coalesce((SELECT max(last_seq) FROM state_log), 0), "
        "coalesce((SELECT max(seq) FROM resubmits), 0), "
        "coalesce((SELECT max(seq) FROM blocks), 0), "
        "coalesce((SELECT max(fail_seq) FROM tasks), 0), "
        "coalesce((SELECT max(fail_seq) FROM tries), 0), "
        "coalesce((SELECT max(resources_seq) FROM tries), 0), "
        "coalesce((SELECT max(end_seq) FROM run), 0))"
    ).fetchone()
    return int(row[0])


@dataclasses.dataclass(frozen=True)
class _Limits:
    output_chars: int
    traceback_chars: int


def _read_exactly(stream: object, n: int) -> bytes | None:
    data = stream.read(n)  # type: ignore[attr-defined]  # a BufferedReader: n, or EOF
    return data if len(data) == n else None


def main(argv: list[str] | None = None) -> None:
    # Below the kernel and its tasks: on a busy machine the record catches up when they
    # leave a CPU idle (it commits whole batches, so lagging loses nothing).
    os.nice(19)
    path, output_chars, traceback_chars = (argv or sys.argv[1:])[:3]
    writer = Writer(path, _Limits(int(output_chars), int(traceback_chars)))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the kernel's ack pipe
    try:
        while (head := _read_exactly(stdin, FRAME.size)) is not None:
            frame = _read_exactly(stdin, FRAME.unpack(head)[0])
            if frame is None:
                break  # the kernel died while writing it: only whole batches count
            ended = writer.write(pickle.loads(frame))  # the log's items, as the kernel had them
            try:
                stdout.write(ACK.pack(writer.batches))
                stdout.flush()
            except BrokenPipeError:
                pass  # the kernel is gone: keep committing what it sent
            if ended:
                break
    finally:
        writer.close()
    os._exit(0)  # not the interpreter's teardown: the record is committed


if __name__ == "__main__":
    main()
