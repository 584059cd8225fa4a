"""Upgrading an empty database gives exactly the models, on every database kind."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from argo_server.db import make_engine
from argo_server.schema import schema_differences, upgrade

from .conftest import MYSQL_URL, POSTGRES_URL


def _fresh_url(kind: str, tmp_path: Path) -> tuple[str, sa.Engine | None, str]:
    name = f"argo_test_mig_{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}", None, name
    if kind == "postgresql":
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {name}")
        return f"{POSTGRES_URL}?options=-csearch_path%3D{name}", admin, name
    admin = sa.create_engine(MYSQL_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    return sa.make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False), admin, name


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_upgrade_of_empty_database_matches_models(kind: str, tmp_path: Path) -> None:
    url, admin, name = _fresh_url(kind, tmp_path)
    engine = make_engine(url)
    try:
        upgrade(engine)
        assert schema_differences(engine) == []
        tables = set(sa.inspect(engine).get_table_names())
        assert {"jobs", "steps", "job_events", "outbox", "sites", "job_sites", "alembic_version"} <= tables
        upgrade(engine)  # a second upgrade is a no-op
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
        if admin is not None:
            with admin.begin() as connection:
                connection.exec_driver_sql(f"DROP {'SCHEMA' if kind == 'postgresql' else 'DATABASE'} {name}"
                                           + (" CASCADE" if kind == "postgresql" else ""))
            admin.dispose()


def test_db_upgrade_command(tmp_path: Path) -> None:
    from argo_server.cli import main
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["--database-url", url, "db", "upgrade"]) == 0
    engine = make_engine(url)
    assert schema_differences(engine) == []
    engine.dispose()


def test_sqlite_never_hands_out_an_outbox_id_again(tmp_path: Path) -> None:
    """A relay process reads the rows after the last id it sent: a deleted id must not come back."""
    from argo_server.outbox import outbox_table
    engine = make_engine(f"sqlite:///{tmp_path / 'ids.db'}")
    try:
        upgrade(engine)
        row = {"site": "s", "step_id": "j/0", "message_type": "t", "body": b"", "trace_headers": "",
               "create_time": 0}
        with engine.begin() as connection:
            connection.execute(outbox_table.insert(), [row, row])
            connection.execute(outbox_table.delete())
            connection.execute(outbox_table.insert(), [row])
            assert connection.execute(sa.select(outbox_table.c.id)).scalars().all() == [3]
    finally:
        engine.dispose()


def test_upgrading_an_sqlite_outbox_keeps_its_rows_and_ids(tmp_path: Path) -> None:
    from argo_server.outbox import outbox_table
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade(engine, "0004")
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO outbox (id, site, step_id, message_type, body, trace_headers, create_time) "
                "VALUES (7, 's', 'j/0', 't', x'01', '', 5)")
        upgrade(engine)
        with engine.begin() as connection:
            assert [tuple(r) for r in connection.execute(sa.select(outbox_table.c.id, outbox_table.c.body))] \
                == [(7, b"\x01")]
            sql = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'outbox'").scalar()
            assert "AUTOINCREMENT" in sql
            connection.execute(outbox_table.delete())
            connection.exec_driver_sql(
                "INSERT INTO outbox (site, step_id, message_type, body, trace_headers, create_time) "
                "VALUES ('s', 'j/0', 't', x'02', '', 5)")
            assert connection.execute(sa.select(outbox_table.c.id)).scalar() == 8
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
