"""livedag.config: every field is checked when the Config is made, and the message says
which field is wrong and what would be right."""

from __future__ import annotations

from typing import Any

import pytest

from livedag import SHALLOW_DEPENDENCY_RESOLVER, BasicMemoizer, Config
from livedag.errors import ConfigurationError
from livedag.executors.threads import ThreadPoolExecutor


def test_defaults_are_parsls() -> None:
    config = Config()
    assert [type(ex) for ex in config.executors] == [ThreadPoolExecutor]
    assert config.executors[0].label == "threads"
    assert config.run_dir == "runinfo"
    assert config.exit_mode == "cleanup"
    assert config.retries == 0
    assert config.app_cache is True
    assert config.checkpoint_mode is None
    assert config.dependency_resolver is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"executors": [object()]},
         "Config.executors[0] is a object, not an executor: use "
         "livedag.executors.ThreadPoolExecutor() or HighThroughputExecutor()"),
        ({"executors": [ThreadPoolExecutor(label="a"), ThreadPoolExecutor(label="a")]},
         "Config.executors: two executors are labelled 'a'; each needs its own label"),
        ({"executors": [ThreadPoolExecutor(label="_livedag_internal")]},
         "executor label '_livedag_internal' is reserved for livedag"),
        ({"executors": []}, "Config.executors is empty: give at least one executor"),
        ({"retries": -1}, "Config.retries must be a whole number >= 0, got -1"),
        ({"retries": "3"}, "Config.retries must be a whole number >= 0, got '3'"),
        ({"retries": True}, "Config.retries must be a whole number >= 0, got True"),
        ({"internal_tasks_max_threads": 0},
         "Config.internal_tasks_max_threads must be a whole number >= 1, got 0"),
        ({"exit_mode": "later"},
         "Config.exit_mode='later': expected one of cleanup, skip, wait"),
        ({"strategy": "fast"},
         "Config.strategy='fast': expected one of None, 'none', 'simple', 'htex_auto_scale'"),
        ({"strategy_period": -1}, "Config.strategy_period must be a number of seconds >= 0"),
        ({"max_idletime": "2m"}, "Config.max_idletime must be a number of seconds >= 0"),
        ({"retry_handler": 3}, "Config.retry_handler must be callable(exception, task_record)"),
        ({"run_dir": ""}, "Config.run_dir must be a directory path, got ''"),
        ({"dependency_resolver": "deep"},
         "Config.dependency_resolver must be SHALLOW_DEPENDENCY_RESOLVER or "
         "DEEP_DEPENDENCY_RESOLVER"),
        ({"memoizer": BasicMemoizer(), "checkpoint_mode": "task_exit"},
         "Config: give either memoizer=BasicMemoizer(...) or the older app_cache/"
         "checkpoint_* fields, not both"),
        ({"checkpoint_mode": "sometimes"},
         "checkpoint_mode='sometimes': expected one of None, 'task_exit', 'periodic', "
         "'dfk_exit', 'manual'"),
        ({"checkpoint_period": "00:01:00"},
         "checkpoint_period='00:01:00' has no effect unless checkpoint_mode='periodic'"),
        ({"checkpoint_mode": "periodic", "checkpoint_period": "10 minutes"},
         "checkpoint_period='10 minutes': expected 'HH:MM:SS', e.g. '00:10:00'"),
    ],
)
def test_bad_field_is_named(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Config(**fields)
    assert str(info.value).startswith(message)


def test_thread_pool_size_is_checked() -> None:
    with pytest.raises(ConfigurationError) as info:
        ThreadPoolExecutor(label="pool", max_threads=0)
    assert str(info.value) == (
        "ThreadPoolExecutor 'pool': max_threads must be a whole number >= 1, got 0"
    )


def test_legacy_cache_fields_build_the_memoizer() -> None:
    config = Config(app_cache=False, checkpoint_mode="periodic", checkpoint_period="00:00:30")
    assert isinstance(config.memoizer, BasicMemoizer)
    assert config.app_cache is False
    assert config.checkpoint_mode == "periodic"
    assert config.checkpoint_period == "00:00:30"


def test_good_fields_are_kept() -> None:
    def handler(exc: BaseException, record: Any) -> float:
        return 1.0

    config = Config(retries=3, retry_handler=handler, exit_mode="wait", run_dir="x",
                    dependency_resolver=SHALLOW_DEPENDENCY_RESOLVER, strategy=None)
    assert (config.retries, config.retry_handler, config.exit_mode) == (3, handler, "wait")
    assert "retries=3" in repr(config) and "threads" in repr(config)
