"""The messages between the executor, the interchange and the worker pools, and their framing.

    kernel ──pipe (interchange stdin)──> interchange ──zmq ROUTER/DEALER──> pool ──pipe──> worker
    kernel <─pipe (interchange stdout)── interchange <─────────────────────  pool <─pipe── worker
                                          (a pool on the interchange's machine: a Unix
                                           socket instead of zmq, see streams.py)

Every message is a dataclass that turns into a list of byte frames (`encode`) and back
(`decode`). Headers are JSON; task payloads and results are extra frames carried as opaque
bytes: only a worker unpickles a call, only the kernel unpickles an outcome, and nothing in
this module ever unpickles, so a peer that sends garbage gets a ProtocolError, not code
execution. On a pipe (or a Unix socket), a message travels as one record: its frames,
length-prefixed (`pack_frames`, `FrameReader`). On zmq it is the same record as one part, with one
exception: a frame of BIG_FRAME bytes or more (an argument, a result) follows the record
as a part of its own, so that nobody copies it into the record (`zmq_parts`,
`unpack_parts`). Small frames never get parts of their own: every part is a zmq call.

Hot messages are batches (`TaskBatch`, `Report`): one header for many tasks, so a busy
system pays for JSON and syscalls per batch, not per task.
"""

from __future__ import annotations

import array
import collections
import contextlib
import dataclasses
import fcntl
import json
import math
import os
import struct
from collections.abc import Sequence
from typing import Any, ClassVar

# Bumped whenever a message changes shape; a pool of another version is refused at
# registration instead of failing later on a KeyError.
PROTOCOL_VERSION = 8

# Bytes asked of a pipe per read(). Not more: os.read allocates the full size first, and
# a 1 MiB allocation per read costs ten times the read itself.
READ_SIZE = 1 << 16

# Sizes are 64-bit: a 4 GiB argument, result or batch of them is a size like any other
# (with 32-bit sizes, packing one raised struct.error on a thread that had to live).
_U64 = struct.Struct("<Q")
_MAX_FRAMES = 1 << 20
_APART_SIZE = (1 << 64) - 1  # a frame's size in a record: "this frame is the next zmq part"


class ProtocolError(ValueError):
    """A message that is not one of ours (garbage, a stray client, a version mismatch)."""


# Bytes a pipe holds (Linux's default is 64 KiB): a 1 MiB argument or result then crosses
# in one write and one wake-up of the reader, instead of sixteen of each.
PIPE_SIZE = 1 << 20
IOV_MAX = 512  # buffers per writev
BIG_RECORD = 1 << 18  # bytes: a record this big is read into a buffer of its own
BIG_FRAME = 1 << 16  # bytes: a frame of a big record this big stays a view, not a copy


def widen_pipe(fd: int) -> None:
    """Give a pipe PIPE_SIZE bytes of room, where the system allows it."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is not None:
        # Over /proc/sys/fs/pipe-max-size it fails, and the default size still works.
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setsize, PIPE_SIZE)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to a blocking fd (a pipe takes a big record in pieces)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class SendBuffer:
    """Records waiting for a non-blocking pipe, written as they are (writev), never moved.

    (A bytearray with `del buf[:n]` after each partial write moves everything behind it:
    a 1 MiB result through a 64 KiB pipe moved 8 MiB.)
    """

    def __init__(self) -> None:
        self._chunks: collections.deque[memoryview] = collections.deque()
        self.size = 0

    def __bool__(self) -> bool:
        return self.size > 0

    def append(self, data: bytes) -> None:
        if data:
            self._chunks.append(memoryview(data))
            self.size += len(data)

    def add_record(self, frames: list[bytes]) -> None:
        """Queue one record (pack_frames' bytes; big frames are not copied)."""
        for part in record_parts(frames):
            self.append(part)

    def write_to(self, fd: int) -> None:
        """Write what the pipe takes now; the rest waits. OSError (but not
        BlockingIOError) means the reader is gone."""
        chunks = self._chunks
        while chunks:
            batch = [chunks[i] for i in range(min(len(chunks), IOV_MAX))]
            try:
                n = os.writev(fd, batch)
            except BlockingIOError:
                return
            self.size -= n
            while n:
                head = chunks[0]
                if n >= len(head):
                    n -= len(head)
                    chunks.popleft()
                else:
                    chunks[0] = head[n:]
                    n = 0

    def clear(self) -> None:
        self._chunks.clear()
        self.size = 0


# --- framing ------------------------------------------------------------------------
#
# A record: u64 size of the rest | u64 frame count n | n x u64 frame sizes | the frames'
# bytes, one after the other. All sizes come first, so one struct call packs or reads
# them (a record is packed or split a dozen times per task on its way). A size of
# _APART_SIZE marks a frame that is not in the record: on zmq it is the next part.

_SIZES: dict[int, struct.Struct] = {}


def _sizes(count: int) -> struct.Struct:
    """The struct of `count` u64 (cached: most records have the same few counts)."""
    packer = _SIZES.get(count)
    if packer is None:
        packer = struct.Struct(f"<{count}Q")
        if len(_SIZES) < 64:
            _SIZES[count] = packer
    return packer


def _head(sizes: list[int], inline: int) -> bytes:
    """A record's first bytes: its size, its frame count and the frames' sizes, for a
    record that carries `inline` bytes of frames itself."""
    count = len(sizes)
    return _sizes(count + 2).pack(8 + 8 * count + inline, count, *sizes)


def pack_frames(frames: list[bytes]) -> bytes:
    """One record of these frames."""
    sizes = [len(f) for f in frames]
    return b"".join([_head(sizes, sum(sizes)), *frames])


def record_parts(frames: list[bytes]) -> list[bytes]:
    """pack_frames as a list of parts for SendBuffer: big frames are not copied."""
    sizes = [len(f) for f in frames]
    total = sum(sizes)
    if total < BIG_FRAME:
        return [b"".join([_head(sizes, total), *frames])]
    return [_head(sizes, total), *frames]


class FrameReader:
    """Turns a byte stream (reads of any size) back into lists of frames.

    A record over BIG_RECORD bytes is read straight into a buffer of its own size, and
    its big frames are handed out as views of that buffer: a 1 MiB argument or result is
    copied once, by the read, instead of three times. Frames under BIG_FRAME bytes are
    always bytes.
    """

    def __init__(self, limit: int | None = None) -> None:
        self._buf = bytearray()  # the start of a record whose rest has not come yet
        self._big: bytearray | None = None  # the record being read into its own buffer
        self._filled = 0
        # The largest record accepted (ProtocolError past it), for a peer not yet trusted:
        # its first 8 bytes must not make us allocate what they claim.
        self.limit = limit

    def _refuse(self, size: int) -> None:
        raise ProtocolError(f"a record of {size} bytes (at most {self.limit} accepted)")

    def read(self, fd: int) -> list[list[bytes]] | None:
        """Read what `fd` has and return the complete records; None at end of file.
        BlockingIOError when a non-blocking fd has nothing."""
        buf = self._buf
        if self._big is None and len(buf) >= 8:
            size: int = _U64.unpack_from(buf, 0)[0]
            if self.limit is not None and size > self.limit:
                self._refuse(size)
            if size >= BIG_RECORD:
                self._big = bytearray(8 + size)
                self._big[: len(buf)] = buf
                self._filled = len(buf)
                buf.clear()
        if self._big is not None:
            return self._read_big(fd)
        data = os.read(fd, READ_SIZE)
        if not data:
            return None
        return self.feed(data)

    def _read_big(self, fd: int) -> list[list[bytes]] | None:
        big = self._big
        assert big is not None
        view = memoryview(big)
        while self._filled < len(big):
            n = os.readv(fd, [view[self._filled :]])
            if n == 0:
                return None
            self._filled += n
        self._big = None
        return [_split(view, 8, len(big), view_from=BIG_FRAME)]

    def feed(self, data: bytes) -> list[list[bytes]]:
        buf, limit = self._buf, self.limit
        if buf:  # a record was cut between reads
            buf += data
            if len(buf) < 8:
                return []  # its rest has still not come
            (size,) = _U64.unpack_from(buf, 0)
            if limit is not None and size > limit:
                self._refuse(size)
            if len(buf) - 8 < size:
                return []
            data = bytes(buf)
            buf.clear()
        out: list[list[bytes]] = []
        pos, end = 0, len(data)
        while end - pos >= 8:
            (size,) = _U64.unpack_from(data, pos)
            if limit is not None and size > limit:
                self._refuse(size)
            if end - pos - 8 < size:
                break
            out.append(_split(data, pos + 8, pos + 8 + size))
            pos += 8 + size
        if pos < end:
            buf += memoryview(data)[pos:]
        return out


def unpack_record(data: bytes | memoryview) -> list[bytes]:
    """The frames of one record received whole (a one-part zmq message)."""
    return unpack_parts([data])


def zmq_parts(frames: list[bytes]) -> list[bytes]:
    """One message as zmq parts: a record of its frames, where each frame of BIG_FRAME
    bytes or more is only a size of _APART_SIZE and travels as a zmq part of its own,
    after the record. zmq then sends a big argument or result from the buffer it is in
    (copy=False) instead of from a copy joined into one record; small frames still
    share one part."""
    sizes = [len(f) for f in frames]
    if max(sizes, default=0) < BIG_FRAME:
        return [b"".join([_head(sizes, sum(sizes)), *frames])]
    small = [f for f in frames if len(f) < BIG_FRAME]
    big = [f for f in frames if len(f) >= BIG_FRAME]
    marked = [size if size < BIG_FRAME else _APART_SIZE for size in sizes]
    return [b"".join([_head(marked, sum(len(f) for f in small)), *small]), *big]


def unpack_parts(parts: Sequence[bytes | memoryview], views: bool = False) -> list[bytes]:
    """The frames of a message received as zmq parts (see zmq_parts). Frames are copies,
    except big frames sent apart (always the received buffers) and, with `views`, every
    frame (a view into the record, for a process that forwards what it never reads)."""
    data = parts[0]
    if len(data) < 8 or _U64.unpack_from(data, 0)[0] != len(data) - 8:
        raise ProtocolError(f"not a record ({len(data)} bytes)")
    return _split(data, 8, len(data), view_from=0 if views else math.inf, apart=parts[1:])


def record_kind(data: bytes | memoryview) -> bytes:
    """The first frame (the message kind) of a whole record, without unpacking the rest."""
    try:
        count, size = struct.unpack_from("<QQ", data, 8)
    except struct.error:
        return b""
    first = 16 + 8 * count
    if count == 0 or size == _APART_SIZE or first + size > len(data):
        return b""
    return bytes(data[first : first + min(size, 32)])


def _split(buf: bytes | bytearray | memoryview, start: int, end: int,
           view_from: float = math.inf,
           apart: Sequence[bytes | memoryview] = ()) -> list[bytes]:
    """The frames of the record body buf[start:end]: copies, except frames of at least
    `view_from` bytes, which are views of `buf`, and frames sent `apart` (zmq_parts)."""
    try:
        (count,) = _U64.unpack_from(buf, start)
        if count > _MAX_FRAMES:
            raise ProtocolError(f"record claims {count} frames")
        pos = start + 8 + 8 * count
        if pos > end:
            raise ProtocolError("truncated record: its frame sizes run past its end")
        sizes = _sizes(count).unpack_from(buf, start + 8)
    except struct.error as exc:
        raise ProtocolError(f"truncated record: {exc}") from exc
    sliced = type(buf) is bytes  # slicing bytes copies once; other buffers need bytes()
    frames: list[bytes] = []
    taken = 0
    for size in sizes:
        if size == _APART_SIZE:
            if taken >= len(apart):
                raise ProtocolError("record names more parts than came with it")
            frames.append(apart[taken])  # type: ignore[arg-type]
            taken += 1
            continue
        stop = pos + size
        if stop > end:
            raise ProtocolError("frame runs past the end of its record")
        if size >= view_from:
            # A view of the record's own buffer, which nothing else uses. (Typed as
            # bytes: readers of big frames only pickle.loads or forward them.)
            frames.append(memoryview(buf)[pos:stop])  # type: ignore[arg-type]
        elif sliced:
            frames.append(buf[pos:stop])  # type: ignore[arg-type]
        else:
            frames.append(bytes(buf[pos:stop]))
        pos = stop
    if pos != end:
        raise ProtocolError(f"{end - pos} bytes after the last frame of a record")
    if taken != len(apart):
        raise ProtocolError(f"{len(apart) - taken} zmq parts more than the record names")
    return frames


# --- messages -----------------------------------------------------------------------

_REGISTRY: dict[bytes, type[Message]] = {}


class Message:
    """Base of all messages: `kind` is the first frame; the JSON header the second."""

    __slots__ = ()
    kind: ClassVar[bytes] = b""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _REGISTRY[cls.kind] = cls

    def encode(self) -> list[bytes]:
        header = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return [self.kind, json.dumps(header).encode()]

    @classmethod
    def from_frames(cls, frames: list[bytes]) -> Message:
        if len(frames) != 2:
            raise ProtocolError(f"{cls.__name__} takes 2 frames, got {len(frames)}")
        header = _json(frames[1])
        if not isinstance(header, dict):
            raise ProtocolError(f"{cls.__name__} header is not an object")
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            allowed = _FIELD_TYPES.get(str(f.type))
            value = header.get(f.name)
            if f.name in header and allowed and (
                not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
            ):
                raise ProtocolError(f"{cls.__name__}.{f.name}: {type(value).__name__} value")
        try:
            return cls(**header)
        except TypeError as exc:
            raise ProtocolError(f"{cls.__name__}: {exc}") from exc


# What a JSON header may hold for each annotated field type (anything else is refused
# before a message object exists, so no handler sees a string where it counts on an int).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str | None": (str, type(None)),
    "list[int]": (list,),
    "list[tuple[int, int]]": (list,),
}


def decode(frames: list[bytes]) -> Message:
    """The message these frames carry, or ProtocolError."""
    if not frames:
        raise ProtocolError("empty message")
    cls = _REGISTRY.get(frames[0])
    if cls is None:
        raise ProtocolError(f"unknown message kind {frames[0][:20]!r}")
    return cls.from_frames(frames)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from exc


# kernel -> interchange ---------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class InterchangeConfig(Message):
    """The first record the kernel writes to the interchange's stdin (never on argv)."""

    kind: ClassVar[bytes] = b"config"
    label: str
    secret: str
    bind_address: str
    port_range: list[int]
    heartbeat_period: float
    heartbeat_threshold: float
    cert_dir: str | None
    log_path: str
    debug: bool = False
    # Also listen on a Unix socket for pools on this machine (streams.py).
    local_socket: bool = False


@dataclasses.dataclass(slots=True)
class TaskBatch(Message):
    """Tasks to run: ids and try numbers in the header, one opaque payload frame each."""

    kind: ClassVar[bytes] = b"tasks"
    ids: list[tuple[int, int]]  # (task_id, try_number)
    payloads: list[bytes]

    def encode(self) -> list[bytes]:
        return [self.kind, _pack_ints(self.ids), *self.payloads]

    @classmethod
    def from_frames(cls, frames: list[bytes]) -> TaskBatch:
        if len(frames) < 2:
            raise ProtocolError("task batch without a header")
        ids = _unpack_ints(frames[1], 2)
        if len(ids) != len(frames) - 2:
            raise ProtocolError("task batch: header does not match its payloads")
        return cls(ids, frames[2:])


@dataclasses.dataclass(slots=True)
class Returned(TaskBatch):
    """The interchange gives payloads back to the kernel: of tries that failed (their
    result said so, their worker died, their pool was lost) and of tries withdrawn by a
    Cancel. The kernel lets go of a task's arguments once they are packed (see
    HighThroughputExecutor.returns_arguments) and takes them from here to try again."""

    kind: ClassVar[bytes] = b"returned"


# The per-task parts of hot messages are flat arrays of 64-bit ints, not JSON: a busy
# pipeline decodes them for every task, and array/zip do that in C.
def _pack_ints(rows: list[Any]) -> bytes:
    flat = array.array("q")
    for row in rows:
        flat.extend(row)
    return flat.tobytes()


def _unpack_ints(data: bytes, width: int) -> list[Any]:
    if len(data) % (8 * width):
        raise ProtocolError(f"an int array of {len(data)} bytes is not rows of {width}")
    flat = array.array("q")
    flat.frombytes(data)
    it = iter(flat)
    return list(zip(*([it] * width), strict=True))


@dataclasses.dataclass(slots=True)
class Forward(Message):
    """Kernel -> interchange: a task whose inputs include the results of tries the
    interchange holds (queued, parked or at a pool): `waits`. It is parked until each of
    them succeeds, then queued with their results (see `forwarded_payload`), so a chain
    of tasks runs without a trip to the kernel between steps. If one of them fails, is
    lost or withdrawn, or is not here (its result has passed already), the task is given
    back (Returned, then Unforwarded) and the kernel launches it the ordinary way."""

    kind: ClassVar[bytes] = b"forward"
    key: tuple[int, int]
    waits: list[tuple[int, int]]
    payload: bytes

    def encode(self) -> list[bytes]:
        return [self.kind, _pack_ints([self.key, *self.waits]), self.payload]

    @classmethod
    def from_frames(cls, frames: list[bytes]) -> Forward:
        if len(frames) != 3:
            raise ProtocolError(f"forward takes 3 frames, got {len(frames)}")
        keys = _unpack_ints(frames[1], 2)
        if len(keys) < 2:
            raise ProtocolError("forward: a task and at least one try it waits for")
        return cls(keys[0], keys[1:], frames[2])


# A forwarded payload starts where a pack_call payload has the size of its function's
# pickle, with a size no pickle has; then a record of the original payload and, for each
# input, its task id and its result (pack_result bytes, as the worker sent them).
FORWARDED = b"\xff" * 8


def forwarded_payload(original: bytes, inputs: list[tuple[int, bytes]]) -> bytes:
    frames = [original]
    for tid, outcome in inputs:
        frames += [str(tid).encode(), outcome]
    return FORWARDED + pack_frames(frames)


def split_forwarded(payload: bytes) -> tuple[bytes, dict[int, bytes]] | None:
    """(original payload, {input task id: its result bytes}) of a forwarded payload;
    None for any other payload."""
    if payload[:8] != FORWARDED:
        return None
    frames = unpack_record(memoryview(payload)[8:])
    if not frames or len(frames) % 2 != 1:
        raise ProtocolError("a forwarded payload without its inputs")
    return frames[0], {int(frames[i]): frames[i + 1] for i in range(1, len(frames), 2)}


def original_payload(payload: bytes) -> bytes:
    """The payload the kernel packed (what goes back to it), forwarded or not."""
    split = split_forwarded(payload)
    return payload if split is None else split[0]


@dataclasses.dataclass(slots=True)
class Cancel(Message):
    kind: ClassVar[bytes] = b"cancel"
    task_id: int
    try_number: int


@dataclasses.dataclass(slots=True)
class Retire(Message):
    """Kernel -> interchange: send the pools of this block no more tasks; stop each one
    when it has none left (scaling in). Each answers with a ManagerGone(lost=False)."""

    kind: ClassVar[bytes] = b"retire"
    block_id: str


@dataclasses.dataclass(slots=True)
class Shutdown(Message):
    kind: ClassVar[bytes] = b"shutdown"
    reason: str = ""


# interchange -> kernel ---------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Ready(Message):
    """The interchange is listening for pools on `port` (and, for pools on its own
    machine, on the Unix socket named `local_socket`, when not empty)."""

    kind: ClassVar[bytes] = b"ready"
    port: int
    pid: int
    local_socket: str = ""


@dataclasses.dataclass(slots=True)
class ManagerJoined(Message):
    kind: ClassVar[bytes] = b"joined"
    manager: str
    host: str
    pid: int
    block_id: str
    workers: int
    capacity: int
    log_path: str


@dataclasses.dataclass(slots=True)
class ManagerGone(Message):
    """A pool was declared lost (silent too long) or left; `tasks` were running there."""

    kind: ClassVar[bytes] = b"gone"
    manager: str
    reason: str
    last_heard: float  # seconds since its last message
    tasks: list[tuple[int, int]]
    lost: bool = True


@dataclasses.dataclass(slots=True)
class Unforwarded(Message):
    """Interchange -> kernel: these Forward tasks were given back before they ran (their
    payloads came just before, in a Returned): an input of theirs failed, was lost or
    withdrawn, or had passed already. The kernel launches them itself once the inputs
    are done."""

    kind: ClassVar[bytes] = b"unforwarded"
    ids: list[tuple[int, int]]

    def encode(self) -> list[bytes]:
        return [self.kind, _pack_ints(self.ids)]

    @classmethod
    def from_frames(cls, frames: list[bytes]) -> Unforwarded:
        if len(frames) != 2:
            raise ProtocolError(f"unforwarded takes 2 frames, got {len(frames)}")
        return cls(_unpack_ints(frames[1], 2))


@dataclasses.dataclass(slots=True)
class CancelReply(Message):
    kind: ClassVar[bytes] = b"cancelled"
    task_id: int
    try_number: int
    withdrawn: bool


# pool <-> interchange ----------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Register(Message):
    """A pool's first message. Nothing else from a peer is read before this checks out."""

    kind: ClassVar[bytes] = b"register"
    secret: str
    version: int
    host: str
    pid: int
    block_id: str
    workers: int
    capacity: int
    python: str
    log_path: str


@dataclasses.dataclass(slots=True)
class Heartbeat(Message):
    kind: ClassVar[bytes] = b"hb"


@dataclasses.dataclass(slots=True)
class Goodbye(Message):
    """Pool -> interchange: I am leaving on my own, for this reason (with its evidence)."""

    kind: ClassVar[bytes] = b"bye"
    reason: str


@dataclasses.dataclass(slots=True)
class Stop(Message):
    """Interchange -> pool: exit now (shutdown, or the pool was already declared lost)."""

    kind: ClassVar[bytes] = b"stop"
    reason: str


@dataclasses.dataclass(slots=True)
class WorkerDeath:
    """What a pool saw when a worker process died; the kernel makes a WorkerLost of it."""

    task_id: int
    try_number: int
    host: str
    pid: int
    exitcode: int | None
    signal: str
    cause: str
    stderr_tail: str
    log_path: str


@dataclasses.dataclass(slots=True)
class Report(Message):
    """Everything a pool has to say since its last report, in the order it happened.

    `started`: (task, try, worker pid); `outputs`: (task, try, stream) with one frame of
    raw bytes each; `results`: (task, try) with one frame each (pack_result/pack_failure
    bytes, opaque here) and `usage`: (cpu seconds, peak RSS bytes, wall seconds) of each
    result, 0 where unknown; `failed`: the results that are failures (the interchange
    gives those tries' payloads back); `deaths`: workers that died while running a task;
    `unforwarded`: tasks parked here (Forward) that will not run here, because an input
    failed or died, or was not here (the interchange gives them back to the kernel).
    Outputs of a task always come before its result, in this report or an earlier one.
    """

    kind: ClassVar[bytes] = b"report"
    started: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)
    outputs: list[tuple[int, int, str]] = dataclasses.field(default_factory=list)
    output_data: list[bytes] = dataclasses.field(default_factory=list)
    results: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    result_data: list[bytes] = dataclasses.field(default_factory=list)
    usage: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)
    failed: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    deaths: list[WorkerDeath] = dataclasses.field(default_factory=list)
    unforwarded: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    manager: str = ""  # filled in by the interchange when it forwards to the kernel
    lookahead: int = 0  # extra tasks the pool would like queued beyond its capacity

    def __bool__(self) -> bool:
        return bool(self.started or self.outputs or self.results or self.deaths
                    or self.unforwarded)

    def encode(self) -> list[bytes]:
        # JSON only for what is rare (output, failures, deaths); starts and results are
        # int arrays.
        header = [self.manager, self.lookahead, self.outputs,
                  [dataclasses.astuple(d) for d in self.deaths], self.failed, self.unforwarded]
        usage = array.array("d")
        for row in self.usage:
            usage.extend(row)
        return [self.kind, json.dumps(header).encode(), _pack_ints(self.started),
                _pack_ints(self.results), usage.tobytes(), *self.output_data,
                *self.result_data]

    @classmethod
    def from_frames(cls, frames: list[bytes]) -> Report:
        if len(frames) < 5:
            raise ProtocolError("report: too few frames")
        header = _json(bytes(frames[1]))
        try:
            manager, lookahead, outputs, deaths, failed, unforwarded = header
            results = _unpack_ints(frames[3], 2)
            usage = array.array("d")
            usage.frombytes(frames[4])
            n_out = len(outputs)
            if len(frames) != 5 + n_out + len(results) or len(usage) != 3 * len(results):
                raise ProtocolError("report: header does not match its frames")
            return cls(
                started=_unpack_ints(frames[2], 3),
                outputs=[(int(t), int(n), str(s)) for t, n, s in outputs],
                output_data=frames[5 : 5 + n_out],
                results=results,
                result_data=frames[5 + n_out :],
                usage=list(zip(usage[0::3], usage[1::3], usage[2::3], strict=True)),
                failed=[(int(t), int(n)) for t, n in failed],
                unforwarded=[(int(t), int(n)) for t, n in unforwarded],
                deaths=[WorkerDeath(*d) for d in deaths],
                manager=str(manager),
                lookahead=int(lookahead),
            )
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"report: malformed header: {exc}") from exc
