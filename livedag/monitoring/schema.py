"""The layout of `<run_dir>/monitoring.db`, shared by its writer (store.py) and readers.

    run          one row: where and when the run was, its schema version, its end
    tasks        a row per task: what was called and where, its newest state, its last
                 failure (message, traceback, root causes), a cancel reason
    tries        a row per try: launched, started, ended, outcome, host, pid, block,
                 job; its failure; the tails of its stdout and stderr; what it used,
                 as its executor measured it: cpu_time (seconds, user + system),
                 peak_rss (bytes; NULL: not measured), wall_time (seconds)
    state_log    the state changes, a row per written batch, as packed columns
    state_codes  the names of the state codes in state_log
    resubmits    a row per resubmit
    blocks       a row per block state change

Every event has a `seq` (tasks.seq, state_log's seq column, fail_seq, ...): its place
in the order the engine published the events, which replay() puts them back in.
"""

from __future__ import annotations

import array
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

from livedag.task import TaskState

DB_NAME = "monitoring.db"
# 1 had a `states` table with a row per state change; 2 had no resource columns in tries
SCHEMA_VERSION = 3

# The state-event log: one row per batch; each column a little-endian array with one
# item per state change, in publication order: seq int64 ('q'), task_id int64 ('q'),
# state uint8 ('B', the row of `state_codes` that names it), try_number int32 ('i'),
# time float64 ('d', seconds since the epoch). read.state_changes() unpacks it.
STATE_LOG = (("seq", "q"), ("task_id", "q"), ("state", "B"), ("try_number", "i"),
             ("time", "d"))
STATE_CODES = tuple(st.value for st in TaskState)  # stored in the database too

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    run_dir TEXT NOT NULL,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    livedag_version TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    end_seq INTEGER
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    executor TEXT NOT NULL,
    origin TEXT,
    args TEXT NOT NULL DEFAULT '',
    depends_on TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    ended REAL,
    state TEXT NOT NULL DEFAULT 'pending',
    tries INTEGER NOT NULL DEFAULT 0,
    fail_state TEXT NOT NULL DEFAULT '',
    exc_type TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    traceback TEXT NOT NULL DEFAULT '',
    root_cause_ids TEXT NOT NULL DEFAULT '[]',
    fail_seq INTEGER,
    cancel_reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS tries (
    task_id INTEGER NOT NULL,
    try_number INTEGER NOT NULL,
    launched REAL,
    started REAL,
    ended REAL,
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    block_id TEXT,
    job_id TEXT,
    outcome TEXT NOT NULL DEFAULT '',
    exc_type TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    traceback TEXT NOT NULL DEFAULT '',
    will_retry INTEGER NOT NULL DEFAULT 0,
    fail_seq INTEGER,
    stdout TEXT NOT NULL DEFAULT '',
    stderr TEXT NOT NULL DEFAULT '',
    cpu_time REAL,
    peak_rss INTEGER,
    wall_time REAL,
    resources_seq INTEGER,
    PRIMARY KEY (task_id, try_number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_log (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    seq BLOB NOT NULL,
    task_id BLOB NOT NULL,
    state BLOB NOT NULL,
    try_number BLOB NOT NULL,
    time BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state_codes (
    code INTEGER PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resubmits (
    seq INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    try_number INTEGER NOT NULL,
    rearmed TEXT NOT NULL,
    redefined INTEGER NOT NULL,
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    seq INTEGER PRIMARY KEY,
    executor TEXT NOT NULL,
    block_id TEXT NOT NULL,
    job_id TEXT,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    time REAL NOT NULL
);
"""


# Columns added to a table after it was first made: a database made before gets them
# when a recorder opens it (SQLite adds a column without rewriting the table).
ADDED_COLUMNS = (
    ("tries", "cpu_time", "REAL"),
    ("tries", "peak_rss", "INTEGER"),
    ("tries", "wall_time", "REAL"),
    ("tries", "resources_seq", "INTEGER"),
)


def create(conn: sqlite3.Connection) -> None:
    """Make the tables that are missing, and the columns missing from older ones."""
    conn.executescript(SCHEMA)
    for table, column, kind in ADDED_COLUMNS:
        if column not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def db_path(run_dir: str) -> str:
    return os.path.join(run_dir, DB_NAME)


def connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    else:
        # Made on the kernel's thread, then used by the bus thread only (one at a time).
        # A batch uses a few dozen statement shapes (see _insert): keep them all prepared.
        conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False,
                               isolation_level=None, cached_statements=256)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def pack_state_log(flat: Sequence[Any]) -> tuple[Any, ...]:
    """A row of state_log for the state changes laid end to end in `flat` (STATE_LOG's
    columns, a state as its value)."""
    width = len(STATE_LOG)
    columns = []
    for i, (name, code) in enumerate(STATE_LOG):
        values = flat[i::width]
        if name == "state":
            values = [_CODE[v] for v in values]
        packed = array.array(code, values)
        if sys.byteorder == "big":
            packed.byteswap()
        columns.append(packed.tobytes())
    return (flat[0], flat[-width], *columns)


def unpack_state_log(blobs: Sequence[bytes]) -> list[array.array[Any]]:
    """STATE_LOG's columns of one state_log row, as arrays."""
    columns = []
    for blob, (_name, code) in zip(blobs, STATE_LOG, strict=True):
        values = array.array(code)
        values.frombytes(blob)
        if sys.byteorder == "big":
            values.byteswap()
        columns.append(values)
    return columns


_CODE = {value: i for i, value in enumerate(STATE_CODES)}
