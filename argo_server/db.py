"""Engines and transactions for SQLite, PostgreSQL and MySQL/MariaDB.

Writes go through :meth:`Database.write`, one short transaction per call. On SQLite a write
transaction starts with ``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of failing
when a read lock cannot be upgraded; reads use a second engine with a plain ``BEGIN``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Error codes of a deadlock / serialization failure, after which the whole transaction is retried.
_RETRYABLE_PG = {"40001", "40P01"}
_RETRYABLE_MYSQL = {1213, 1205}


#: Pages of WAL after which a committing writer checkpoints it itself (SQLite's default is 1000). The
#: server checkpoints from a background thread instead (:meth:`Database.checkpoint`), so that no commit
#: waits for the copy and its fsync.
WAL_AUTOCHECKPOINT_PAGES = 16384

#: SQLite's ``synchronous`` settings the server takes (``sqlite_synchronous``). With ``full`` (the
#: default) every commit syncs the WAL before it returns, so a job a client saw created survives an
#: operating-system crash or a power loss; with ``normal`` the WAL is synced only at checkpoints: a
#: commit survives a crash of the server, but an OS crash may lose the last ones (which the relay may
#: already have published). The sync costs 0.1-1.4 ms on this machine's disk, shared by a group commit.
SQLITE_SYNCHRONOUS = ("full", "normal")


def check_sqlite_synchronous(value: object) -> None:
    """Raises ValueError, naming the setting, unless ``value`` is one of :data:`SQLITE_SYNCHRONOUS`."""
    if value not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite_synchronous: must be one of {', '.join(SQLITE_SYNCHRONOUS)}, not {value!r}")


def _sqlite_engine(url: str, immediate: bool, synchronous: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=32, max_overflow=32, connect_args={"timeout": 60,
                                                                             "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module (it would otherwise BEGIN lazily).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")  # see SQLITE_SYNCHRONOUS
        cursor.execute("PRAGMA foreign_keys=ON")
        # The server's checkpointer (:meth:`Database.checkpoint`) copies the WAL into the database in
        # the background; this only bounds the WAL if nothing checkpoints (another program writing).
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_engine(url: str, *, immediate: bool = True, sqlite_synchronous: str = "full") -> Engine:
    """Creates an engine for ``url`` with the settings the server relies on."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        check_sqlite_synchronous(sqlite_synchronous)
        return _sqlite_engine(url, immediate, sqlite_synchronous)
    kwargs: dict[str, Any] = {"pool_size": 20, "max_overflow": 20, "pool_pre_ping": True}
    if backend in ("mysql", "mariadb"):
        # REPEATABLE READ (MySQL's default) takes gap locks that make concurrent inserts deadlock.
        kwargs["isolation_level"] = "READ COMMITTED"
    return create_engine(url, **kwargs)


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is a deadlock or serialization failure worth retrying the transaction for."""
    if not isinstance(error, DBAPIError):
        return False
    return (error.orig is not None and _driver_error_retryable(error.orig)) or (
        isinstance(error, OperationalError) and "database is locked" in str(error))


def _driver_error_retryable(orig: BaseException) -> bool:
    """The same for a driver's own exception (PostgreSQL SQLSTATE, MySQL error number, SQLite lock)."""
    if getattr(orig, "pgcode", None) in _RETRYABLE_PG:
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in _RETRYABLE_MYSQL:
        return True
    return type(orig).__name__ == "OperationalError" and "database is locked" in str(orig)


class Database:
    """The server's database: a write engine, a read engine and the dialect name."""

    def __init__(self, url: str, sqlite_synchronous: str = "full") -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self.engine = make_engine(url, immediate=True, sqlite_synchronous=sqlite_synchronous)
        self.read_engine = (make_engine(url, immediate=False, sqlite_synchronous=sqlite_synchronous)
                            if self.dialect == "sqlite" else self.engine)
        # SQLite has one writer. This process's writers (group commit, relay, status consumer) queue on
        # a lock that wakes the next one as soon as it is free, instead of in SQLite's busy handler,
        # which retries after sleeps of 1, 2, 5, 10, ... ms (bench/server_create.py: the longest wait
        # for the write lock went from ~35 ms to ~13 ms).
        self._write_lock = threading.RLock() if self.dialect == "sqlite" else None

    @property
    def supports_skip_locked(self) -> bool:
        """Whether ``SELECT ... FOR UPDATE SKIP LOCKED`` is available (not on SQLite: one writer)."""
        return self.dialect != "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on error."""
        if self._write_lock is None:
            with self.engine.begin() as connection:
                yield connection
            return
        with self._write_lock, self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction."""
        with self.read_engine.connect() as connection:
            yield connection
            connection.rollback()

    def run(self, work: Callable[[Connection], T], attempts: int = 5) -> T:
        """Runs ``work`` in a write transaction, retrying it after a deadlock or serialization failure."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as connection:
                    return work(connection)
            except DBAPIError as error:
                if attempt == attempts or not is_retryable(error):
                    raise
                log.info("retrying transaction after %s (attempt %d)", type(error.orig).__name__, attempt)
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    def run_raw(self, work: Callable[[Any], T], attempts: int = 5) -> T:
        """Runs ``work(cursor)`` in a write transaction on the driver's own connection, retrying it like
        :meth:`run`; the driver's errors reach the caller unwrapped (``self.driver.IntegrityError``...).

        For the hottest write, a CreateJob's group commit: SQLAlchemy's connection, transaction and
        execution objects cost more than the INSERTs on SQLite (measured in-process: 0.66-0.72 ms
        against 0.41-0.43 ms per one-job transaction, and 1.8 against 1.1-1.2 ms when calls come
        6.7 ms apart, as a paced load's do). The statements must be the driver's own SQL."""
        for attempt in range(1, attempts + 1):
            try:
                return self._raw_transaction(work)
            except self.driver.Error as error:
                if attempt == attempts or not _driver_error_retryable(error):
                    raise
                log.info("retrying transaction after %s (attempt %d)", type(error).__name__, attempt)
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    def read_raw(self, work: Callable[[Any], T]) -> T:
        """Runs ``work(cursor)`` in a read-only transaction on the driver's own connection (the read
        engine's on SQLite), for a hot read such as the relay's: see :meth:`run_raw`."""
        connection = self.read_engine.raw_connection()
        try:
            cursor = connection.cursor()
            if self.dialect == "sqlite":
                cursor.execute("BEGIN")
            try:
                return work(cursor)
            finally:
                connection.rollback()
        finally:
            connection.close()

    def checkpoint(self) -> tuple[int, int, int] | None:
        """On SQLite, copies what it can of the WAL into the database without waiting for readers or
        writers (``PRAGMA wal_checkpoint(PASSIVE)``) and returns SQLite's (busy, WAL frames, frames
        checkpointed); None on other databases.

        The server runs it from a background thread (``checkpoint_interval``), outside the write lock.
        Left to SQLite, the writer whose commit crosses the WAL's threshold copies the pages and syncs
        the file inside its commit, holding the write lock. BatchCreateJobs of 1000 jobs through the
        server ran at 8,930-11,950 jobs/s with this thread against 7,883-10,162 without it (six
        interleaved pairs, BENCHMARKS.md)."""
        if self.dialect != "sqlite":
            return None
        connection = self.read_engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            busy, frames, copied = cursor.fetchone() or (0, 0, 0)
            return int(busy), int(frames), int(copied)
        finally:
            connection.close()

    @property
    def driver(self) -> Any:
        """The DB-API module of the write engine (``sqlite3``, ``psycopg2``, ``pymysql``)."""
        return self.engine.dialect.dbapi

    def _raw_transaction(self, work: Callable[[Any], T]) -> T:
        lock = self._write_lock if self._write_lock is not None else contextlib.nullcontext()
        with lock:
            connection = self.engine.raw_connection()  # from the pool, returned (rolled back) by close()
            try:
                cursor = connection.cursor()
                if self.dialect == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")  # the pool's connections manage their transactions
                try:
                    result = work(cursor)
                except BaseException:
                    connection.rollback()
                    raise
                connection.commit()
                return result
            finally:
                connection.close()

    def dispose(self) -> None:
        """Closes every pooled connection."""
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


_INSERT_SQL: dict[tuple[str, tuple[str, ...], str], str] = {}


def param_mark(dialect: Any) -> str:
    """The driver's parameter mark for ``dialect`` (``?`` for sqlite3, ``%s`` for psycopg2 and pymysql)."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def bulk_insert_raw(cursor: Any, dialect: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    """Inserts many rows with a few driver calls, on a driver cursor (a :meth:`Database.run_raw`
    transaction) for ``dialect`` (the engine's): multi-row ``INSERT ... VALUES (...), (...)`` on SQLite
    and PostgreSQL, one ``executemany`` on MySQL (whose driver turns it into multi-row INSERTs itself).

    SQLAlchemy's per-row parameter processing costs more than the database's insert itself (on
    PostgreSQL its "insertmanyvalues" path was 60 % of a batch create), so the statements are the
    driver's own. Every row must have the keys of the first one; values must be plain Python values the
    driver accepts (str, int, bytes, bool, None)."""
    if not rows:
        return
    columns = tuple(rows[0])
    if dialect.name in ("sqlite", "postgresql"):
        for sql, params in _multirow_statements(table, columns, rows, param_mark(dialect)):
            cursor.execute(sql, params)
        return
    cursor.executemany(_single_row_sql(table, columns, dialect), list(map(_values_of(columns), rows)))


def _single_row_sql(table: Table, columns: tuple[str, ...], dialect: Any) -> str:
    """``INSERT INTO table (columns) VALUES (marks)`` for ``executemany``, built once per shape."""
    key = (table.name, columns, dialect.name)
    sql = _INSERT_SQL.get(key)
    if sql is None:
        quote = dialect.identifier_preparer.quote
        mark = param_mark(dialect)
        sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(column) for column in columns)}) "
               f"VALUES ({', '.join([mark] * len(columns))})")
        _INSERT_SQL[key] = sql
    return sql


#: Rows per multi-row INSERT (SQLite allows 32766 variables since 3.32, PostgreSQL 65535).
ROWS_PER_INSERT = 200
_MULTIROW_SQL: dict[tuple[str, tuple[str, ...], int, str], str] = {}


def _multirow_statements(table: Table, columns: tuple[str, ...], rows: list[dict[str, Any]], mark: str
                         ) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``INSERT ... VALUES (...), (...), ...``: one statement per chunk of rows.

    On SQLite: the sqlite3 module releases the GIL around every statement step, and getting it back can
    wait up to the switch interval when other threads run Python; with ``executemany`` (one step per row)
    the group committer did that once per row while holding the database's write lock. One statement per
    table (per 200 rows) keeps it to a few waits per transaction, and costs less CPU than executemany
    (about 70 against 90 µs per job for groups of 3, 20 against 23 µs for batches of 1000). On
    PostgreSQL: one round trip per chunk, parameters interpolated by the driver in C."""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start:start + ROWS_PER_INSERT]
        key = (table.name, columns, len(chunk), mark)
        sql = _MULTIROW_SQL.get(key)
        if sql is None:
            names = ", ".join(f'"{column}"' for column in columns)
            values = "(" + ", ".join([mark] * len(columns)) + ")"
            sql = f'INSERT INTO "{table.name}" ({names}) VALUES ' + ", ".join([values] * len(chunk))
            _MULTIROW_SQL[key] = sql
        yield sql, tuple(chain.from_iterable(map(_values_of(columns), chunk)))


def _values_of(columns: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function returning a row's values of ``columns`` as a tuple (in C: no Python loop per value)."""
    if len(columns) == 1:
        (column,) = columns
        return lambda row: (row[column],)
    return itemgetter(*columns)
