"""Memoization: a task whose function and arguments were seen before reuses the result.

    ready task ──key(func source, args)──> table hit? ──yes──> memo_done (no executor)
                                                      └─no──> run; on success: table[key] = result
                                                                 └─> checkpoint file (run dir)

The key covers the function's *source*, so redefining an app in a notebook invalidates its
cache; failures are never stored. Checkpoints are pickles appended to
`<run_dir>/checkpoint/tasks.pkl`; a later run loads them (checkpoint_files) and reuses
results after a restart.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from livedag.errors import BadCheckpoint, ConfigurationError

if TYPE_CHECKING:
    from livedag.task import TaskRecord

logger = logging.getLogger(__name__)

CheckpointMode = Literal["task_exit", "periodic", "dfk_exit", "manual"]
_MODES = (None, "task_exit", "periodic", "dfk_exit", "manual")


def _source_of(func: Callable[..., Any]) -> bytes:
    try:
        return inspect.getsource(func).encode()
    except (OSError, TypeError):
        # No source (built in a REPL, or C): the code object is the next best identity.
        code = getattr(func, "__code__", None)
        if code is not None:
            return bytes(code.co_code) + repr(code.co_consts).encode()
        return repr(func).encode()


class BasicMemoizer:
    """Parsl's memoizer, with the same parameters; keys include the function's source."""

    def __init__(
        self,
        *,
        checkpoint_files: Sequence[str] | None = None,
        checkpoint_period: str | None = None,
        checkpoint_mode: CheckpointMode | None = None,
        memoize: bool = True,
    ) -> None:
        if checkpoint_mode not in _MODES:
            raise ConfigurationError(
                f"checkpoint_mode={checkpoint_mode!r}: expected one of "
                f"{', '.join(repr(m) for m in _MODES)}"
            )
        if checkpoint_period is not None:
            if checkpoint_mode != "periodic":
                raise ConfigurationError(
                    f"checkpoint_period={checkpoint_period!r} has no effect unless "
                    "checkpoint_mode='periodic'"
                )
            _parse_period(checkpoint_period)
        self.checkpoint_files = checkpoint_files
        self.checkpoint_period = checkpoint_period
        self.checkpoint_mode = checkpoint_mode
        self.memoize = memoize
        self.run_dir = ""
        self._table: dict[str, Any] = {}
        self._pending: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._sources: dict[Any, bytes] = {}
        self._timer: threading.Timer | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self, run_dir: str) -> None:
        self.run_dir = run_dir
        for path in self.checkpoint_files or ():
            self._load(path)
        if self.checkpoint_mode == "periodic" and self.checkpoint_period:
            self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.checkpoint_mode in ("dfk_exit", "periodic", "task_exit"):
            self.checkpoint()

    def _schedule(self) -> None:
        assert self.checkpoint_period is not None
        self._timer = threading.Timer(_parse_period(self.checkpoint_period), self._tick)
        self._timer.daemon = True
        self._timer.start()

    def _tick(self) -> None:
        self.checkpoint()
        self._schedule()

    # ------------------------------------------------------------ keys and table
    def key(self, task: TaskRecord, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        func = task.func
        source = self._sources.get(func)
        if source is None:
            source = _source_of(func)
            self._sources[func] = source
        kw = {k: v for k, v in kwargs.items() if k not in task.ignore_for_cache}
        h = hashlib.sha256()
        h.update(task.app_name.encode())
        h.update(source)
        try:
            from livedag.serialize import dumps

            h.update(dumps(_stable((args, sorted(kw.items())))))
        except Exception as exc:
            raise ValueError(f"arguments of task {task.id} cannot be hashed for the cache: {exc}") \
                from exc
        return h.hexdigest()

    def lookup(self, key: str) -> tuple[bool, Any]:
        if key in self._table:
            return True, self._table[key]
        return False, None

    def update(self, key: str, value: Any) -> None:
        self._table[key] = value
        if self.checkpoint_mode is not None:
            with self._lock:
                self._pending.append((key, value))
            if self.checkpoint_mode == "task_exit":
                self.checkpoint()

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self) -> str | None:
        """Append results not yet written to the run dir's checkpoint; return its path."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending or not self.run_dir:
            return None
        path = os.path.join(self.run_dir, "checkpoint", "tasks.pkl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab") as f:
            for key, value in pending:
                try:
                    pickle.dump({"hash": key, "result": value, "time": time.time()}, f)
                except Exception as exc:  # an unpicklable result is simply not checkpointed
                    logger.warning("result for cache key %s not checkpointed: %s", key[:12], exc)
        return path

    def _load(self, path: str) -> None:
        file = os.path.join(path, "tasks.pkl") if os.path.isdir(path) else path
        if not os.path.exists(file):
            return
        try:
            with open(file, "rb") as f:
                while True:
                    try:
                        entry = pickle.load(f)
                    except EOFError:
                        break
                    self._table[entry["hash"]] = entry["result"]
        except Exception as exc:
            raise BadCheckpoint(f"checkpoint file {file!r} cannot be read: {exc}") from exc


def _stable(value: Any) -> Any:
    """The value with sets and dicts in a fixed order: a set of strings iterates in a
    different order in every process (hash randomisation), and a key must not change
    across a restart."""
    if isinstance(value, (set, frozenset)):
        return ("<set>", sorted((_stable(v) for v in value), key=repr))
    if isinstance(value, dict):
        return ("<dict>", sorted(((_stable(k), _stable(v)) for k, v in value.items()), key=repr))
    if type(value) in (list, tuple):
        return type(value)(_stable(v) for v in value)
    return value


def _parse_period(text: str) -> float:
    try:
        h, m, s = (int(x) for x in text.split(":"))
    except ValueError:
        raise ConfigurationError(
            f"checkpoint_period={text!r}: expected 'HH:MM:SS', e.g. '00:10:00'"
        ) from None
    return float(h * 3600 + m * 60 + s)


def get_all_checkpoints(rundir: str = "runinfo") -> list[str]:
    """Every checkpoint directory of earlier runs under `rundir` (oldest first)."""
    if not os.path.isdir(rundir):
        return []
    found = []
    for name in sorted(os.listdir(rundir)):
        cp = os.path.join(os.path.abspath(rundir), name, "checkpoint")
        if os.path.isdir(cp):
            found.append(cp)
    return found


def get_last_checkpoint(rundir: str = "runinfo") -> list[str]:
    """The newest earlier run's checkpoint directory, as a one-item list (or empty)."""
    return get_all_checkpoints(rundir)[-1:]
