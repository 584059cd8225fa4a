"""Statements of the hot paths (job creation and reads, status ingestion, lifecycle verbs), run on the
driver's own cursor.

They run inside :meth:`~argo_server.db.Database.run_raw` transactions (reads: ``read_raw``, or the
driver cursor of a read connection): SQLAlchemy's connection, transaction, execution and result
objects cost more than these statements themselves (measured
in-process on SQLite: a job's two SELECTs 0.60 ms through SQLAlchemy against 69 µs on the driver's
cursor, and 2.1 ms against 0.37 ms when calls come 6.7 ms apart, as a paced load's do). The SQL is built
once per shape with the dialect's identifier quoting and parameter marks, so it is the same on SQLite,
PostgreSQL and MySQL. A change's row updates are merged per row and written with one ``executemany``
per table and set of columns (:func:`update_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table

from .db import Database, bulk_insert_raw, param_mark
from .models import Job, JobSite, Step

_jobs = cast(Table, Job.__table__)
_steps = cast(Table, Step.__table__)
_job_sites = cast(Table, JobSite.__table__)
_TABLES = {"jobs": _jobs, "steps": _steps, "job_sites": _job_sites}
#: The columns :func:`update_rows` finds each table's rows by.
_KEYS = {"jobs": ("id",), "steps": ("job_id", "index"), "job_sites": ("job_id",)}


@dataclass(frozen=True)
class DriverTx:
    """A driver cursor inside a write transaction, with what building SQL for it needs."""

    cursor: Any
    dialect: Any

    @classmethod
    def of(cls, cursor: Any, db: Database) -> DriverTx:
        """The transaction of ``cursor`` (from ``db.run_raw``)."""
        return cls(cursor, db.engine.dialect)

    @property
    def mark(self) -> str:
        """The driver's parameter mark."""
        return param_mark(self.dialect)

    def quote(self, name: str) -> str:
        """``name`` quoted as an identifier of this dialect (``index`` is a reserved word)."""
        return cast(str, self.dialect.identifier_preparer.quote(name))

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Inserts ``rows`` into ``table`` with a few statements."""
        bulk_insert_raw(self.cursor, self.dialect, table, rows)

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        """The rows of a query as dicts; binary values as bytes (psycopg2 returns memoryview)."""
        self.cursor.execute(sql, params)
        names = [column[0] for column in self.cursor.description]
        return [{name: bytes(value) if isinstance(value, memoryview) else value
                 for name, value in zip(names, row, strict=True)} for row in self.cursor.fetchall()]


_SQL: dict[tuple[Any, ...], str] = {}


def update_sql(tx: DriverTx, table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    """``UPDATE table SET column = mark, ... WHERE key = mark AND ...`` (parameters: the columns'
    values, then the keys'), built once per shape."""
    sql_key = ("update", tx.dialect.name, table.name, columns, keys)
    sql = _SQL.get(sql_key)
    if sql is None:
        sql = (f"UPDATE {tx.quote(table.name)} SET "
               + ", ".join(f"{tx.quote(column)} = {tx.mark}" for column in columns)
               + " WHERE " + " AND ".join(f"{tx.quote(key)} = {tx.mark}" for key in keys))
        _SQL[sql_key] = sql
    return sql


def update_rows(tx: DriverTx, table: str, rows: list[tuple[str, int, dict[str, Any]]]) -> None:
    """Many row updates of ``table`` (``jobs``, ``job_sites`` or ``steps``), one ``executemany`` per set
    of columns: ``rows`` holds (job id, step index (steps only), values)."""
    target = _TABLES[table]
    keys = _KEYS[table]
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for job_id, index, values in rows:
        columns = tuple(sorted(values))
        key = (job_id, index) if target is _steps else (job_id,)
        groups.setdefault(columns, []).append((*(values[column] for column in columns), *key))
    for columns, params in groups.items():
        tx.cursor.executemany(update_sql(tx, target, columns, keys), params)


def load_job(tx: DriverTx, job_id: str, lock: bool) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A job's row (locked for update when ``lock``) and its steps' rows in index order; (None, [])
    when there is no such job."""
    return load_jobs(tx, [job_id], lock).get(job_id, (None, []))


def _select_sql(tx: DriverTx, table: Table, key: str, count: int, order: tuple[str, ...], lock: bool,
                columns: tuple[str, ...] = ()) -> str:
    """``SELECT columns (default: all) FROM table WHERE key IN (count marks) ORDER BY order``, locking the
    rows when ``lock`` (not on SQLite), built once per shape."""
    locking = lock and tx.dialect.name != "sqlite"  # SQLite's writer holds the whole database already
    sql_key = ("select", tx.dialect.name, table.name, key, columns, count, locking)
    sql = _SQL.get(sql_key)
    if sql is None:
        names = ", ".join(tx.quote(column) for column in columns or [column.name for column in table.columns])
        marks = ", ".join([tx.mark] * count)
        sql = (f"SELECT {names} FROM {tx.quote(table.name)} WHERE {tx.quote(key)} IN ({marks}) "
               f"ORDER BY {', '.join(tx.quote(column) for column in order)}" + (" FOR UPDATE" if locking else ""))
        _SQL[sql_key] = sql
    return sql


def jobs_by_request_id(tx: DriverTx, request_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """The job id and request digest of each job created with one of ``request_ids``."""
    found: dict[str, tuple[str, str | None]] = {}
    columns = ("request_id", "id", "request_digest")
    for start in range(0, len(request_ids), 500):
        chunk = tuple(request_ids[start:start + 500])
        tx.cursor.execute(_select_sql(tx, _jobs, "request_id", len(chunk), ("request_id",), False, columns), chunk)
        found.update((request_id, (job_id, digest)) for request_id, job_id, digest in tx.cursor.fetchall())
    return found


def load_jobs(tx: DriverTx, job_ids: list[str], lock: bool) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Like :func:`load_job` for many jobs with two statements per 500 ids; the jobs are locked in id
    order (absent ids are left out)."""
    found: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    ordered = sorted(set(job_ids))
    for start in range(0, len(ordered), 500):
        chunk = tuple(ordered[start:start + 500])
        for row in tx.rows(_select_sql(tx, _jobs, "id", len(chunk), ("id",), lock), chunk):
            found[row["id"]] = (row, [])
        for step in tx.rows(_select_sql(tx, _steps, "job_id", len(chunk), ("job_id", "index"), False), chunk):
            found[step["job_id"]][1].append(step)
    return found
