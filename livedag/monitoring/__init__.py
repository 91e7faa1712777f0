"""The run record: every task, try, state change and block of a run, in SQLite.

    DataFlowKernel ──events──> EventBus ──batch──> Recorder ──> <run_dir>/monitoring.db
                    (store.py; writer.py: a process that writes it;               │
                     fold.py: a batch as rows; schema.py: the tables)             │
    after the kernel is gone (a restart, another process):                        │
        history(run_dir)  ──> [TaskRow(tries=(TryRow, ...))]  (read.py) <─────────┤
        state_changes()   ──> [StateChange(...)], in order               <────────┤
        replay(run_dir)   ──> the events again, in order ──> the DAG view <───────┤
        livedag.plot      ──> timeline(), resources() (livedag/plot.py)   <───────┘

Switched on with `Config(monitoring=True)` (or `monitoring=RunRecord(...)` to change the
limits), or `attach(dfk)` for a kernel already loaded. This package only reads the event
stream: the kernel knows nothing of it beyond calling `config.monitoring.attach(dfk)`.
"""

from __future__ import annotations

from livedag.monitoring.read import (
    NoRunRecord,
    ReadOnlyRunError,
    RecordedRun,
    StateChange,
    TaskRow,
    TryRow,
    find_db,
    history,
    replay,
    state_changes,
)
from livedag.monitoring.store import DB_NAME, Recorder, RunRecord, attach, recorder_of

__all__ = [
    "DB_NAME",
    "NoRunRecord",
    "ReadOnlyRunError",
    "RecordedRun",
    "Recorder",
    "RunRecord",
    "StateChange",
    "TaskRow",
    "TryRow",
    "attach",
    "find_db",
    "history",
    "recorder_of",
    "replay",
    "state_changes",
]
