"""Config: Parsl's fields and meanings, checked when it is made, with messages that say
which field is wrong and what would be right."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from livedag.errors import ConfigurationError

if TYPE_CHECKING:
    from livedag.executors.base import Executor
    from livedag.memo import BasicMemoizer

EXIT_MODES = ("cleanup", "skip", "wait")
CHECKPOINT_MODES = (None, "task_exit", "periodic", "dfk_exit", "manual")
STRATEGIES = (None, "none", "simple", "htex_auto_scale")


class Config:
    """What `livedag.load()` needs: executors and how the kernel behaves.

    Every Parsl field is accepted with Parsl's default. The caching fields from before
    Parsl's `memoizer=` (app_cache, checkpoint_files, checkpoint_mode, checkpoint_period)
    are accepted too and build the same memoizer.
    """

    def __init__(
        self,
        executors: Iterable[Executor] | None = None,
        memoizer: BasicMemoizer | None = None,
        dependency_resolver: Any = None,
        exit_mode: str = "cleanup",
        garbage_collect: bool = True,
        internal_tasks_max_threads: int = 10,
        retries: int = 0,
        retry_handler: Callable[[BaseException, Any], float] | None = None,
        run_dir: str = "runinfo",
        std_autopath: Callable[..., str] | None = None,
        strategy: str | None = "simple",
        strategy_period: float = 5,
        max_idletime: float = 120.0,
        monitoring: Any = None,
        usage_tracking: int = 0,
        project_name: str | None = None,
        initialize_logging: Any = True,
        *,
        app_cache: bool | None = None,
        checkpoint_files: Sequence[str] | None = None,
        checkpoint_mode: str | None = None,
        checkpoint_period: str | None = None,
    ) -> None:
        from livedag.executors.threads import ThreadPoolExecutor
        from livedag.memo import BasicMemoizer

        self.executors: list[Executor] = (
            list(executors) if executors is not None else [ThreadPoolExecutor()]
        )
        legacy = (app_cache, checkpoint_files, checkpoint_mode, checkpoint_period)
        if memoizer is not None and any(v is not None for v in legacy):
            raise ConfigurationError(
                "Config: give either memoizer=BasicMemoizer(...) or the older app_cache/"
                "checkpoint_* fields, not both"
            )
        if memoizer is None:
            memoizer = BasicMemoizer(
                checkpoint_files=checkpoint_files,
                checkpoint_period=checkpoint_period,
                checkpoint_mode=checkpoint_mode,  # type: ignore[arg-type]
                memoize=True if app_cache is None else bool(app_cache),
            )
        self.memoizer = memoizer
        self.dependency_resolver = dependency_resolver
        self.exit_mode = exit_mode
        self.garbage_collect = garbage_collect
        self.internal_tasks_max_threads = internal_tasks_max_threads
        self.retries = retries
        self.retry_handler = retry_handler
        self.run_dir = run_dir
        self.std_autopath = std_autopath
        self.strategy = strategy
        self.strategy_period = strategy_period
        self.max_idletime = max_idletime
        self.monitoring = _monitoring(monitoring)
        self.usage_tracking = usage_tracking
        self.project_name = project_name
        self.initialize_logging = initialize_logging
        self._validate()

    # Parsl's older attribute names still read.
    @property
    def app_cache(self) -> bool:
        return self.memoizer.memoize

    @property
    def checkpoint_mode(self) -> str | None:
        return self.memoizer.checkpoint_mode

    @property
    def checkpoint_files(self) -> Sequence[str] | None:
        return self.memoizer.checkpoint_files

    @property
    def checkpoint_period(self) -> str | None:
        return self.memoizer.checkpoint_period

    def _validate(self) -> None:
        from livedag.executors.base import Executor

        labels: set[str] = set()
        for i, ex in enumerate(self.executors):
            if not isinstance(ex, Executor):
                raise ConfigurationError(
                    f"Config.executors[{i}] is a {type(ex).__name__}, not an executor: use "
                    "livedag.executors.ThreadPoolExecutor() or HighThroughputExecutor()"
                )
            if ex.label in labels:
                raise ConfigurationError(
                    f"Config.executors: two executors are labelled {ex.label!r}; "
                    "each needs its own label"
                )
            if ex.label.startswith("_livedag") or ex.label == "_parsl_internal":
                raise ConfigurationError(f"executor label {ex.label!r} is reserved for livedag")
            labels.add(ex.label)
        if not self.executors:
            raise ConfigurationError("Config.executors is empty: give at least one executor")
        _check_int("retries", self.retries, minimum=0)
        _check_int("internal_tasks_max_threads", self.internal_tasks_max_threads, minimum=1)
        if self.exit_mode not in EXIT_MODES:
            raise ConfigurationError(
                f"Config.exit_mode={self.exit_mode!r}: expected one of {', '.join(EXIT_MODES)}"
            )
        if self.strategy not in STRATEGIES:
            raise ConfigurationError(
                f"Config.strategy={self.strategy!r}: expected one of "
                f"{', '.join(repr(s) for s in STRATEGIES)}"
            )
        for name in ("strategy_period", "max_idletime"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"Config.{name} must be a number of seconds >= 0, "
                                         f"got {value!r}")
        if self.retry_handler is not None and not callable(self.retry_handler):
            raise ConfigurationError(
                "Config.retry_handler must be callable(exception, task_record)"
            )
        if not isinstance(self.run_dir, str) or not self.run_dir:
            raise ConfigurationError(
                f"Config.run_dir must be a directory path, got {self.run_dir!r}"
            )
        resolver = self.dependency_resolver
        if resolver is not None and not hasattr(resolver, "traverse_to_gather"):
            raise ConfigurationError(
                "Config.dependency_resolver must be SHALLOW_DEPENDENCY_RESOLVER or "
                "DEEP_DEPENDENCY_RESOLVER (from livedag.dependency_resolvers)"
            )

    def __repr__(self) -> str:
        labels = ", ".join(ex.label for ex in self.executors)
        return f"Config(executors=[{labels}], retries={self.retries}, run_dir={self.run_dir!r})"


def _monitoring(value: Any) -> Any:
    """None/False: no record; True: RunRecord(); a RunRecord as given."""
    if value is None or value is False:
        return None
    from livedag.monitoring.store import RunRecord

    if value is True:
        return RunRecord()
    if isinstance(value, RunRecord):
        return value
    raise ConfigurationError(
        f"Config.monitoring={type(value).__name__}(...): livedag records each run in "
        "<run_dir>/monitoring.db itself; use monitoring=True (or livedag.monitoring."
        "RunRecord(...)) and read it with livedag.history() / livedag.plot.timeline()"
    )


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(
            f"Config.{name} must be a whole number >= {minimum}, got {value!r}"
        )
