"""The ZMQ executor's pure parts: message framing, decoding garbage, crash wording, sizing."""

from __future__ import annotations

import pickle
import signal

import pytest

from livedag.executors.htex import forensics, placement
from livedag.executors.htex.protocol import (
    Cancel,
    FrameReader,
    ManagerGone,
    ProtocolError,
    Register,
    Report,
    TaskBatch,
    WorkerDeath,
    _split,
    decode,
    pack_frames,
    record_parts,
    unpack_record,
)


def test_frames_survive_any_read_boundaries() -> None:
    records = [[b"a", b"", b"x" * 70000], [b"tasks", b"[]"], [b"\x00\xff"]]
    stream = b"".join(pack_frames(r) for r in records)
    for step in (1, 3, 4096, len(stream)):
        reader = FrameReader()
        got = []
        for i in range(0, len(stream), step):
            got += reader.feed(stream[i : i + step])
        assert got == records


def test_task_batch_round_trip() -> None:
    msg = TaskBatch([(1, 1), (2, 3)], [b"p1", b"p2"])
    back = decode(msg.encode())
    assert isinstance(back, TaskBatch)
    assert back.ids == [(1, 1), (2, 3)] and back.payloads == [b"p1", b"p2"]


def test_report_round_trip_keeps_order_and_deaths() -> None:
    death = WorkerDeath(7, 1, "h", 42, None, "SIGKILL", "killed", "tail", "/log")
    msg = Report(started=[(5, 1, 99)], outputs=[(5, 1, "stdout")], output_data=[b"hi\n"],
                 results=[(5, 1)], result_data=[b"R"], usage=[(0.25, 104857600.0, 0.5)],
                 deaths=[death], manager="m", lookahead=4)
    back = decode(msg.encode())
    assert back == msg


def test_control_messages_round_trip() -> None:
    reg = Register("s", 1, "host", 1, "0", 2, 2, "/py", "/log")
    assert decode(reg.encode()) == reg
    gone = ManagerGone("m", "silent", 3.5, [(1, 1)])
    back = decode(gone.encode())
    assert isinstance(back, ManagerGone) and back.last_heard == 3.5


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"nonsense"],
        [b"register", b"not json"],
        [b"register", b"[1, 2]"],
        [b"register", b'{"secret": "x"}'],
        [b"tasks", b"\x01" * 16],  # header says one payload, none follows
        [b"tasks", b"\x01" * 15, b"p"],
        [b"report", b"{}"],
        [b"report", b"{}", b"", b""],
        [b"report", b'["m", 0, [], []]', b"", b"\x01" * 16, b""],  # a result, no usage
        [b"report", b'["m", 0, [[1, 1, "stdout"]], []]', b"", b""],  # output frame missing
        [b"report", b'["m", 0, [], []]', b"", b"\x01" * 16],  # result frame missing
        [pickle.dumps(object), b"x"],
    ],
)
def test_garbage_is_a_protocol_error_never_a_crash(frames: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        decode(frames)


def test_a_truncated_pipe_record_is_a_protocol_error() -> None:
    # Room for one frame size, a count of five.
    bad = (16).to_bytes(8, "little") + (5).to_bytes(8, "little") + (9).to_bytes(8, "little")
    with pytest.raises(ProtocolError):
        FrameReader().feed(bad)


def test_sigkill_is_described_as_the_oom_killer_with_rss() -> None:
    text = forensics.describe_exit(-signal.SIGKILL, 300 << 20)
    assert "SIGKILL" in text and "out-of-memory" in text and "300.0 MiB" in text


def test_segfault_and_exit_codes_are_described() -> None:
    assert "segmentation fault" in forensics.describe_exit(-signal.SIGSEGV, 0)
    assert "code 3" in forensics.describe_exit(3, 0)
    assert "SystemExit" in forensics.describe_exit(2, 0, "task 1 raised SystemExit(2)")
    # An uncaught KeyboardInterrupt ends Python with SIGINT: the task's words come first.
    text = forensics.describe_exit(-signal.SIGINT, 0, "task 1 raised KeyboardInterrupt()")
    assert text.startswith("task 1 raised KeyboardInterrupt()") and "SIGINT" in text
    assert forensics.signal_name(-signal.SIGTERM) == "SIGTERM"
    assert forensics.signal_name(0) == ""


def test_tail_lines_keeps_the_end() -> None:
    data = b"".join(b"line %d\n" % i for i in range(100))
    assert forensics.tail_lines(data, 3) == "line 97\nline 98\nline 99"


def test_worker_count_follows_parsl_rules() -> None:
    def count(**kw: object) -> int:
        args: dict[str, object] = dict(
            max_workers_per_node=float("inf"), cores_per_worker=1.0, mem_per_worker=None,
            accelerators=(), cores_on_node=8, mem_available_gb=16.0,
        )
        args.update(kw)
        return placement.worker_count(**args)  # type: ignore[arg-type]

    assert count() == 8
    assert count(cores_per_worker=2.0) == 4
    assert count(max_workers_per_node=3) == 3
    assert count(mem_per_worker=5.0) == 3
    assert count(accelerators=("0", "1")) == 2
    assert count(cores_per_worker=0.5) == 16


def test_affinity_strategies() -> None:
    cores = [0, 1, 2, 3]
    assert placement.affinity_cores("none", 0, 2, cores) == []
    assert placement.affinity_cores("block", 1, 2, cores) == [2, 3]
    assert placement.affinity_cores("block-reverse", 0, 2, cores) == [2, 3]
    assert placement.affinity_cores("alternating", 1, 2, cores) == [1, 3]
    assert placement.affinity_cores("list:0-1:2,3", 1, 2, cores) == [2, 3]
    with pytest.raises(ValueError, match="not one of"):
        placement.affinity_cores("diagonal", 0, 2, cores)
    with pytest.raises(ValueError, match="at least one core"):
        placement.affinity_cores("block", 0, 8, cores)


def test_queued_tasks_coalesce_into_batches_and_keep_their_order_with_control_messages() -> None:
    from livedag.executors.htex.pipes import records

    cancel = pack_frames(Cancel(1, 1).encode())
    items: list[bytes | tuple[tuple[int, int], bytes]] = [
        ((1, 1), b"p1"), ((2, 1), b"p2"), cancel, ((3, 1), b"p3"),
    ]
    import os

    r, w = os.pipe()
    try:
        records(items).write_to(w)
        data = os.read(r, 1 << 16)
    finally:
        os.close(r)
        os.close(w)
    messages = [decode(frames) for frames in FrameReader().feed(data)]
    assert [type(m).__name__ for m in messages] == ["TaskBatch", "Cancel", "TaskBatch"]
    first, _, last = messages
    assert isinstance(first, TaskBatch) and isinstance(last, TaskBatch)
    assert (first.ids, first.payloads) == ([(1, 1), (2, 1)], [b"p1", b"p2"])
    assert (last.ids, last.payloads) == ([(3, 1)], [b"p3"])


def test_big_records_cross_a_nonblocking_pipe_in_partial_writes_intact() -> None:
    import os

    from livedag.executors.htex.protocol import SendBuffer, record_parts, widen_pipe

    r, w = os.pipe()
    try:
        widen_pipe(w)
        os.set_blocking(w, False)
        os.set_blocking(r, False)
        records = [[b"R", b"1", b"x" * (3 << 20)], [b"small"],
                   [b"R", b"2", bytes(range(256)) * 9000]]
        out = SendBuffer()
        for frames in records:
            for part in record_parts(frames):
                out.append(part)
        reader = FrameReader()
        got: list[list[bytes]] = []
        writes = 0
        while out or len(got) < len(records):
            out.write_to(w)  # takes what the pipe has room for, keeps the rest in order
            writes += 1
            while True:
                try:
                    batch = reader.read(r)
                except BlockingIOError:
                    break
                assert batch is not None
                got += batch
        assert got == records
        assert writes > 1  # it did take several partial writes
    finally:
        os.close(r)
        os.close(w)


def test_a_report_can_be_checked_in_place_and_forwarded_as_it_came() -> None:
    from livedag.executors.htex.protocol import record_kind, unpack_parts

    big = b"r" * 200_000
    msg = Report(results=[(3, 1)], result_data=[big], usage=[(0.1, 5.0, 0.2)], manager="h:1")
    record = pack_frames(msg.encode())
    assert record_kind(record) == b"report"
    frames = unpack_parts([record], views=True)
    assert all(isinstance(f, memoryview) for f in frames)  # nothing copied
    back = Report.from_frames(frames)  # type: ignore[arg-type]
    assert back.manager == "h:1" and back.results == [(3, 1)]
    assert bytes(back.result_data[0]) == big
    # The kernel reads the same bytes as one record, unchanged.
    assert decode(FrameReader().feed(record)[0]) == msg
    with pytest.raises(ProtocolError):
        unpack_parts([record[:-1]], views=True)


def test_big_frames_travel_as_zmq_parts_of_their_own_and_come_back_in_place() -> None:
    from livedag.executors.htex.protocol import BIG_FRAME, unpack_parts, zmq_parts

    big, small = bytes(range(256)) * (BIG_FRAME // 256), b"header"
    msg = TaskBatch([(1, 1), (2, 1), (3, 1)], [big, small, big + b"!"])
    parts = zmq_parts(msg.encode())
    assert len(parts) == 3  # the record of the small frames, then each big one
    assert parts[1] is big  # sent from the caller's buffer: nothing joined
    back = decode(unpack_parts(parts))
    assert isinstance(back, TaskBatch)
    assert back.ids == msg.ids and [bytes(p) for p in back.payloads] == msg.payloads
    # A small message is one part, the same record a pipe carries.
    assert zmq_parts(Cancel(1, 1).encode()) == [pack_frames(Cancel(1, 1).encode())]


def test_a_record_that_names_parts_it_did_not_bring_is_refused() -> None:
    from livedag.executors.htex.protocol import BIG_FRAME, unpack_parts, zmq_parts

    parts = zmq_parts(TaskBatch([(1, 1)], [bytes(BIG_FRAME)]).encode())
    with pytest.raises(ProtocolError, match="more parts than came"):
        unpack_parts(parts[:1])
    with pytest.raises(ProtocolError, match="parts more than the record names"):
        unpack_parts([*parts, b"stray"])


def test_a_record_with_bytes_after_its_last_frame_is_refused() -> None:
    import struct

    record = pack_frames([b"cancel", b"{}"])
    padded = struct.pack("<Q", len(record) - 8 + 3) + record[8:] + b"xyz"
    with pytest.raises(ProtocolError, match="bytes after the last frame"):
        unpack_record(padded)
    with pytest.raises(ProtocolError, match="bytes after the last frame"):
        FrameReader().feed(padded)


def test_a_record_over_4_gib_keeps_its_sizes() -> None:
    """A 4 GiB argument, result, or batch of them is a size like any other: the record is
    packed and split again (before, packing it raised struct.error, on the kernel's
    writer thread or in the interchange). The big frame is anonymous memory nobody
    touches, so the test spends no RSS on it."""
    import mmap

    big_size = (4 << 30) + 5
    with mmap.mmap(-1, big_size) as big:
        big_view = memoryview(big)
        parts = record_parts([b"tasks", b"ids", big_view])
        assert parts[-1] is big_view  # written from its own buffer, never copied
        head = b"".join(bytes(p) for p in parts[:-1])
        del parts
        big_view.release()
    with mmap.mmap(-1, len(head) + big_size) as record:
        record[: len(head)] = head
        view = memoryview(record)
        kind, ids, body = _split(view, 8, len(view), view_from=1 << 16)
        assert (kind, ids, len(body)) == (b"tasks", b"ids", big_size)
        assert int.from_bytes(view[:8], "little") == len(view) - 8
        body.release()  # type: ignore[attr-defined]
        view.release()
