"""The blocks of one executor: started through its provider, watched until they end.

    Blocks.start_one(command) ──provider.script_for, submit──> job id, BlockChanged(pending)
    ManagerJoined (executor) ──> Blocks.joined(block) ──> BlockChanged(running)
    watcher thread ──provider.status(every live job, one call)──> terminal? BlockChanged(state)
        every block failed ──> on_all_ended(reasons): the executor fails what is left
        every strategy period ──> on_tick(): the executor's scaling strategy
    Blocks.retire(block) ... pool drained ──> Blocks.scaled_in(block) ──provider.cancel──>
        BlockChanged(scaled_in)
    Blocks.stop() ──provider.cancel(all jobs)──> BlockChanged(cancelled)
    Blocks.lost(block) / explain(block, callback)  (a pool left, a worker was killed)
        ──> watcher asks provider.status every INQUIRY_POLL s, up to LOST_GRACE s
        ──> callback(final JobStatus or None), BlockChanged(cancelled/timeout/...)

A batch scheduler that ends a job (scancel, qdel, the walltime) signals its processes
first, so the kernel hears "worker killed" or "pool left" before the job's final state
is known: those tasks wait for the provider's word, so their error can say *why* the
block ended (and livedag must not cancel such a job itself: the reason would then read
"cancelled by livedag").

A block that ends before its pool ever connected (a broken worker_init, a Python without
livedag) is reported with the tail of the job's stderr file, so the error says why.
"""

from __future__ import annotations

import logging
import os
import shlex
import site
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from livedag.events import BlockChanged
from livedag.executors.base import Publish
from livedag.executors.htex.forensics import tail_lines
from livedag.providers.base import ExecutionProvider, JobStatus

logger = logging.getLogger(__name__)

LOCAL_POLL = 1.0  # seconds between provider.status() calls for local blocks
# How long the job of a batch block whose pool was lost gets to reach a final state
# (Slurm's job is COMPLETING until its processes are gone, KillWait after the SIGTERM).
LOST_GRACE = 15.0
INQUIRY_POLL = 0.5

Explained = Callable[[JobStatus | None], None]


@dataclass
class _Inquiry:
    """A block whose job's final state is awaited."""

    deadline: float
    callbacks: list[Explained] = field(default_factory=list)
    lost: str | None = None  # its pool was lost, for this reason


class Blocks:
    def __init__(self, label: str, provider: ExecutionProvider, publish: Publish, *,
                 on_all_ended: Callable[[str, bool], bool], on_tick: Callable[[], None],
                 tick_period: float) -> None:
        self.label = label
        self.provider = provider
        self.publish = publish
        self.on_all_ended = on_all_ended
        self.on_tick = on_tick
        self.tick_period = tick_period
        self.jobs: dict[str, str] = {}  # block id -> job id
        self.ended: dict[str, str] = {}  # block id -> why its job ended
        self.connected: set[str] = set()  # blocks whose pool registered at least once
        self.retiring: set[str] = set()  # blocks being scaled in
        self.healthy: set[str] = set()  # blocks whose workers have started a task
        self.final: dict[str, JobStatus] = {}  # block id -> its job's final status
        self._inquiries: dict[str, _Inquiry] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._tick_now = False
        self._to_cancel: list[str] = []
        self.provider_timeout = float(getattr(provider, "cmd_timeout", 30))
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name=f"livedag-{label}-blocks")

    def start(self) -> None:
        self._watcher.start()

    def nudge(self) -> None:
        """Run the strategy now rather than at its next period (a task waits, no block)."""
        self._tick_now = True
        self._wake.set()

    def broken(self) -> bool:
        """Blocks have failed and none ever ran a task: a new one would fail the same way."""
        return not self.healthy and any(b not in self.retiring for b in self.ended)

    def live(self) -> list[str]:
        """Blocks that run or may run soon (not ended, not being scaled in)."""
        return [b for b in self.jobs if b not in self.ended and b not in self.retiring]

    def retire(self, block_id: str) -> bool:
        """Begin scaling in a block. True when its pool must first drain (the caller tells
        the interchange); False when it had no pool yet and was cancelled at once."""
        self.retiring.add(block_id)
        if block_id in self.connected:
            return True
        self.scaled_in(block_id)
        return False

    def scaled_in(self, block_id: str) -> None:
        job_id = self.jobs[block_id]
        self.ended[block_id] = "scaled in"
        try:
            self.provider.cancel([job_id])
        except Exception:
            logger.exception("%s: cancelling block %s failed", self.label, block_id)
        self.publish(BlockChanged(time.time(), self.label, block_id, "scaled_in", job_id,
                                  "idle for max_idletime"))

    def job_of(self, block_id: str | None) -> str | None:
        return self.jobs.get(block_id) if block_id is not None else None

    def start_one(self, command_for: Callable[[str], str]) -> str:
        """Submit one block running `command_for(block_id)`; its block id."""
        block_id = str(len(self.jobs))
        script = self.provider.script_for(command_for(block_id), tasks_per_node=1)
        job_id = self.provider.submit(script, f"{self.label}-block-{block_id}")
        self.jobs[block_id] = job_id
        self.publish(BlockChanged(time.time(), self.label, block_id, "pending", job_id))
        return block_id

    def joined(self, block_id: str) -> None:
        self.connected.add(block_id)
        self.publish(BlockChanged(time.time(), self.label, block_id, "running",
                                  self.jobs.get(block_id)))

    def lost(self, block_id: str, reason: str) -> None:
        """Its pool was lost: the block is over (the strategy may start another); its job
        is cancelled on the watcher's thread, so that a stopped pool does not linger."""
        if block_id in self.ended:
            return
        self.ended[block_id] = f"its worker pool was lost: {reason}"
        if not self.provider.is_local and not self._stop.is_set():
            with self._lock:
                self._inquire(block_id).lost = reason
            self._wake.set()
            return
        self._to_cancel.append(block_id)
        self._wake.set()
        self.publish(BlockChanged(time.time(), self.label, block_id, "failed",
                                  self.jobs.get(block_id), reason))

    def explain(self, block_id: str | None, callback: Explained) -> None:
        """Call `callback` with the final status of the block's job, once the provider
        reports one; with None when it does not within LOST_GRACE s (a job that lives
        on), at once for local blocks, and at stop()."""
        status = self.final.get(block_id) if block_id is not None else None
        if (status is not None or block_id not in self.jobs or self.provider.is_local
                or self._stop.is_set()):
            callback(status)
            return
        assert block_id is not None
        with self._lock:
            self._inquire(block_id).callbacks.append(callback)
        self._wake.set()

    def _inquire(self, block_id: str) -> _Inquiry:
        inquiry = self._inquiries.get(block_id)
        if inquiry is None:
            inquiry = self._inquiries[block_id] = _Inquiry(time.monotonic() + LOST_GRACE)
        return inquiry

    def stop(self) -> None:
        """Cancel every job; no more status polling."""
        self._stop.set()
        self._wake.set()
        if self._watcher.is_alive() and self._watcher is not threading.current_thread():
            # It may be submitting a block right now: let it finish, then cancel that too.
            self._watcher.join(timeout=self.provider_timeout)
        with self._lock:
            waiting, self._inquiries = self._inquiries, {}
        for inquiry in waiting.values():
            self._answer(inquiry, None)
        if not self.jobs:
            return
        try:
            self.provider.cancel(list(self.jobs.values()))
        except Exception:
            logger.exception("%s: cancelling blocks failed", self.label)
        now = time.time()
        for block_id, job_id in self.jobs.items():
            if block_id not in self.ended:
                self.publish(BlockChanged(now, self.label, block_id, "cancelled", job_id))

    def _watch(self) -> None:
        poll = LOCAL_POLL if self.provider.is_local else max(
            LOCAL_POLL, float(self.provider.status_polling_interval))
        next_poll = next_tick = time.monotonic()
        while True:
            wake_at = min(next_poll, next_tick)
            if self._inquiries:
                wake_at = min(wake_at, time.monotonic() + INQUIRY_POLL)
            self._wake.wait(max(0.0, wake_at - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._inquiries:
                self._answer_inquiries()
            while self._to_cancel:
                block_id = self._to_cancel.pop()
                try:
                    self.provider.cancel([self.jobs[block_id]])
                except Exception:
                    logger.exception("%s: cancelling block %s failed", self.label, block_id)
            now = time.monotonic()
            if now >= next_tick or self._tick_now:
                self._tick_now = False
                next_tick = now + self.tick_period
                try:
                    self.on_tick()
                except Exception:
                    logger.exception("%s: scaling strategy failed", self.label)
            if now >= next_poll:
                next_poll = now + poll
                if self._poll():
                    return

    def _poll(self) -> bool:
        """Check every live job; True when every block failed and the tasks were failed."""
        watched = [b for b in self.jobs if b not in self.ended]
        if watched:
            try:
                statuses = self.provider.status([self.jobs[b] for b in watched])
            except Exception:
                logger.exception("%s: provider.status failed", self.label)
                return False
            for block_id, status in zip(watched, statuses, strict=True):
                if status.terminal and not self._stop.is_set():
                    self._ended(block_id, status)
        # No block is left. The executor decides: if none of them ever ran a task, a new
        # one would fail the same way (a broken environment), and without a strategy none
        # will come; then it fails what is waiting. (It declines while a pool of an ended
        # block is still known, so that its tasks fail as ManagerLost first.)
        if self.live() or self._stop.is_set() or self._inquiries:
            return False
        failed = {b: w for b, w in self.ended.items() if b not in self.retiring}
        if not failed:
            return False
        return self.on_all_ended("; ".join(f"block {b}: {w}" for b, w in failed.items()),
                                 self.broken())

    def _ended(self, block_id: str, status: JobStatus) -> None:
        job_id = self.jobs[block_id]
        if block_id in self.retiring:
            self.ended[block_id] = "scaled in"
            return
        why = status.message or f"its job ended ({status.state.name.lower()})"
        if block_id not in self.connected:
            why = f"job {job_id} ended before its worker pool connected: {why}"
        tail = file_tail(status.stderr_path)
        if tail:
            why += f"\n--- last lines of {status.stderr_path} ---\n{tail}"
        self.ended[block_id] = why
        self.final[block_id] = status
        logger.warning("%s: block %s: %s", self.label, block_id, why)
        self.publish(BlockChanged(time.time(), self.label, block_id,
                                  status.state.name.lower(), job_id, why))


    def _answer_inquiries(self) -> None:
        """One provider.status call for every block whose job's end is awaited."""
        with self._lock:
            waiting = list(self._inquiries)
        try:
            statuses: Sequence[JobStatus | None] = self.provider.status(
                [self.jobs[b] for b in waiting])
        except Exception:
            logger.exception("%s: provider.status failed", self.label)
            statuses = [None] * len(waiting)
        now = time.monotonic()
        for block_id, seen in zip(waiting, statuses, strict=True):
            inquiry = self._inquiries.get(block_id)
            if inquiry is None:  # answered by stop()
                continue
            status = seen if seen is not None and seen.terminal else None
            if status is not None:
                self.final[block_id] = status
            elif now < inquiry.deadline:
                continue
            with self._lock:
                if self._inquiries.pop(block_id, None) is None:
                    continue
            if inquiry.lost is not None:
                self._lost_block_ended(block_id, inquiry.lost, status)
            self._answer(inquiry, status)

    def _lost_block_ended(self, block_id: str, reason: str, status: JobStatus | None) -> None:
        job_id = self.jobs[block_id]
        if status is not None:
            why = status.message or f"its job ended ({status.state.name.lower()})"
            self.ended[block_id] = why
            self.publish(BlockChanged(time.time(), self.label, block_id,
                                      status.state.name.lower(), job_id, why))
            return
        # The pool is gone but its job runs on (a hung node, a cut network): end it.
        try:
            self.provider.cancel([job_id])
        except Exception:
            logger.exception("%s: cancelling block %s failed", self.label, block_id)
        why = (f"its worker pool was lost ({reason}) while its job {job_id} still ran; "
               "livedag cancelled the job")
        self.ended[block_id] = why
        self.publish(BlockChanged(time.time(), self.label, block_id, "failed", job_id, why))

    def _answer(self, inquiry: _Inquiry, status: JobStatus | None) -> None:
        for callback in inquiry.callbacks:
            try:
                callback(status)
            except Exception:
                logger.exception("%s: failing a lost task raised", self.label)


def pool_command(parts: Sequence[str], *, local: bool) -> str:
    """The shell command that starts a pool, with the PYTHONPATH it needs."""
    command = " ".join(shlex.quote(p) for p in parts)
    paths = kernel_paths() if local else [p for p in [livedag_root()] if p]
    if paths:
        joined = shlex.quote(os.pathsep.join(paths))
        command = f"PYTHONPATH={joined}${{PYTHONPATH:+:$PYTHONPATH}} {command}"
    return command


def file_tail(path: str | None, lines: int = 15) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8000))
            return tail_lines(f.read(), lines)
    except OSError:
        return ""


def livedag_root() -> str | None:
    """The directory to put on PYTHONPATH so pools find this livedag; None if installed."""
    import livedag

    root = os.path.dirname(os.path.dirname(os.path.abspath(livedag.__file__)))
    installed = {os.path.abspath(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    return None if root in installed else root


def kernel_paths() -> list[str]:
    """The kernel's own sys.path entries (outside the interpreter's install), plus livedag.

    Local blocks run the same interpreter on the same machine: with these, a worker imports
    what the kernel imports (modules next to the notebook, paths the user added before
    start), so a function pickled by reference finds its module.
    """
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    paths = [os.path.abspath(p or os.getcwd()) for p in sys.path]
    paths = [p for p in paths if os.path.isdir(p) and not p.startswith(prefixes)]
    root = livedag_root()
    if root is not None:
        paths.append(root)
    return list(dict.fromkeys(paths))


def env_with_livedag() -> dict[str, str]:
    env = dict(os.environ)
    root = livedag_root()
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env
