"""The agent's own SQLite database: every step attempt it accepted, the envelopes it has seen, and
the outbox of status updates not yet confirmed by the broker.

Nothing grows without bound: an update confirmed by the broker is deleted, and ended attempts with
their envelopes are deleted after the agent's ``retention_days`` (:meth:`StateStore.purge_ended`).

SQLite in WAL mode, written through the standard library: the agent's writes are small and batched
(one transaction per engine cycle), and two connections are enough (the engine and the publisher).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    phase TEXT NOT NULL,
    state INTEGER NOT NULL,
    resume_state INTEGER NOT NULL DEFAULT 0,
    sequence INTEGER NOT NULL,
    scheduler_id TEXT NOT NULL DEFAULT '',
    workdir TEXT NOT NULL,
    envelope BLOB NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    terminal INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (step_id, attempt)
);
CREATE INDEX IF NOT EXISTS steps_active ON steps (terminal);
CREATE TABLE IF NOT EXISTS envelopes (
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (step_id, attempt, sequence)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    sent REAL
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent IS NULL;
"""

STEP_COLUMNS = ("step_id", "attempt", "job_id", "step_index", "phase", "state", "resume_state", "sequence",
                "scheduler_id", "workdir", "envelope", "held", "cancel_requested", "terminal", "exit_code",
                "created", "updated")


@dataclass
class StepRow:
    """One step attempt as stored."""

    step_id: str
    attempt: int
    job_id: str
    step_index: int
    phase: str
    state: int
    resume_state: int
    sequence: int
    scheduler_id: str
    workdir: str
    envelope: bytes
    held: bool
    cancel_requested: bool
    terminal: bool
    exit_code: int | None
    created: float
    updated: float


_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def write_lock(path: Path) -> threading.Lock:
    """The lock every write transaction of this process on ``path`` takes first.

    SQLite has one writer; the engine and the publisher write the same file. Waiting on this lock wakes
    the next writer as soon as the lock is free, where SQLite's busy handler sleeps 1, 2, 5, 10, ... ms
    between retries, which the engine would add to the dispatch latency of the assignments it holds."""
    key = str(path.resolve())
    with _write_locks_guard:
        return _write_locks.setdefault(key, threading.Lock())


#: SQLite's ``synchronous`` settings the agent takes (``sqlite_synchronous``). With ``full`` (the default)
#: every commit syncs the WAL before it returns: an envelope the agent acked to the broker after storing
#: it, and a status update it queued, survive an OS crash or a power loss. With ``normal`` the WAL is
#: synced only at checkpoints: a commit survives a crash of the agent, an OS crash may lose the last ones.
SQLITE_SYNCHRONOUS = ("full", "normal")


def connect(path: Path, synchronous: str = "full") -> sqlite3.Connection:
    """Opens (and creates) the agent database in WAL mode."""
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite_synchronous: must be one of {', '.join(SQLITE_SYNCHRONOUS)}, "
                         f"not {synchronous!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.executescript(SCHEMA)
    return conn


class StateStore:
    """The engine's view of the database: steps, seen envelopes, outbox inserts, in transactions."""

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = path
        self.conn = connect(path, synchronous)
        self._lock = write_lock(path)
        self._locked = False

    def begin(self) -> None:
        """Starts a write transaction."""
        self._lock.acquire()
        self._locked = True
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._unlock()
            raise

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            self._lock.release()

    def commit(self) -> None:
        """Commits the current transaction."""
        self.conn.execute("COMMIT")
        self._unlock()

    def rollback(self) -> None:
        """Rolls the current transaction back."""
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self._unlock()

    def seen_envelope(self, step_id: str, attempt: int, sequence: int) -> bool:
        """Records an envelope key; returns True when it was already recorded (a duplicate)."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO envelopes (step_id, attempt, sequence, received) VALUES (?, ?, ?, ?)",
            (step_id, attempt, sequence, time.time()))
        return cur.rowcount == 0

    def latest_attempt(self, step_id: str) -> int:
        """The highest attempt of a step the agent has stored (0 when none)."""
        row = self.conn.execute("SELECT MAX(attempt) FROM steps WHERE step_id = ?", (step_id,)).fetchone()
        return int(row[0] or 0)

    def save_step(self, row: StepRow) -> None:
        """Inserts or replaces a step attempt."""
        values = tuple(getattr(row, column) for column in STEP_COLUMNS)
        placeholders = ", ".join("?" for _ in STEP_COLUMNS)
        self.conn.execute(f"INSERT OR REPLACE INTO steps ({', '.join(STEP_COLUMNS)}) VALUES ({placeholders})",
                          values)

    def add_outbox(self, bodies: Iterable[bytes]) -> None:
        """Queues serialized status updates for the publisher."""
        now = time.time()
        self.conn.executemany("INSERT INTO outbox (body, created) VALUES (?, ?)", ((b, now) for b in bodies))

    def active_steps(self) -> Iterator[StepRow]:
        """Every step attempt not yet terminal (for recovery at start)."""
        cursor = self.conn.execute(f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE terminal = 0")
        for values in cursor.fetchall():
            yield StepRow(*values)

    def get_step(self, step_id: str, attempt: int) -> StepRow | None:
        """One stored step attempt."""
        values = self.conn.execute(
            f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE step_id = ? AND attempt = ?",
            (step_id, attempt)).fetchone()
        return StepRow(*values) if values else None

    def purge_ended(self, older_than: float) -> int:
        """Deletes attempts that ended more than ``older_than`` seconds ago, and the envelopes of steps
        with no active attempt received as long ago; returns the number of attempts deleted."""
        cutoff = time.time() - older_than
        deleted = self.conn.execute("DELETE FROM steps WHERE terminal = 1 AND updated < ?", (cutoff,)).rowcount
        self.conn.execute("DELETE FROM envelopes WHERE received < ? AND step_id NOT IN "
                          "(SELECT step_id FROM steps WHERE terminal = 0)", (cutoff,))
        return int(deleted)

    def close(self) -> None:
        """Closes the connection."""
        self.conn.close()


class OutboxReader:
    """The publisher's connection: reads unsent updates and marks them sent."""

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.conn = connect(path, synchronous)
        self._lock = write_lock(path)

    def unsent(self, limit: int) -> list[tuple[int, bytes]]:
        """Oldest unsent updates, in the order they were produced."""
        return [(int(i), bytes(b)) for i, b in self.conn.execute(
            "SELECT id, body FROM outbox WHERE sent IS NULL ORDER BY id LIMIT ?", (limit,)).fetchall()]

    def mark_sent(self, ids: list[int]) -> None:
        """Deletes updates confirmed by the broker (the server keeps the history)."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in ids))
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def count_unsent(self) -> int:
        """Number of updates still waiting for the broker."""
        return int(self.conn.execute("SELECT COUNT(*) FROM outbox WHERE sent IS NULL").fetchone()[0])

    def close(self) -> None:
        """Closes the connection."""
        self.conn.close()
