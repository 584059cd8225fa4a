"""SQLite's WAL is copied into the database by the server's background checkpointer, not by the commits."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from argobalsam.argo.v1 import argo_service_pb2 as api

from argo_server.config import ServerConfig
from argo_server.db import WAL_AUTOCHECKPOINT_PAGES, Database

from .conftest import one_step_job, start_server, wait_for


def test_the_server_checkpoints_the_wal_in_the_background(server_config: ServerConfig) -> None:
    if not server_config.database_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    path = Path(server_config.database_url.removeprefix("sqlite:///"))
    running = start_server(dataclasses.replace(server_config, checkpoint_interval=0.1))
    try:
        assert "wal-checkpointer" in [loop.name for loop in running.process.supervised]
        before = path.stat().st_size
        batch = api.BatchCreateJobsRequest(requests=[api.CreateJobRequest(job=one_step_job()) for _ in range(1500)])
        running.argo.BatchCreateJobs(batch)
        wal = Path(f"{path}-wal").stat().st_size
        # far below the commits' own threshold: only the checkpointer copies these pages
        assert wal < WAL_AUTOCHECKPOINT_PAGES * 4096
        wait_for(lambda: path.stat().st_size > before + 1_000_000, timeout=10)
    finally:
        running.channel.close()
        running.process.stop(grace=1.0)


def test_checkpoint_copies_the_wal_on_sqlite_only(database_url: str) -> None:
    db = Database(database_url)
    try:
        if db.dialect != "sqlite":
            assert db.checkpoint() is None
            return
        from argo_server.schema import upgrade
        upgrade(db.engine)
        busy, frames, copied = db.checkpoint() or (-1, -1, -1)
        assert busy == 0 and frames == copied and frames > 0
        assert os.path.getsize(database_url.removeprefix("sqlite:///")) > 0
    finally:
        db.dispose()


@pytest.mark.parametrize("value", [0, -1, "fast", True])
def test_a_bad_checkpoint_interval_is_refused_with_its_name(value: object) -> None:
    with pytest.raises(ValueError, match="^checkpoint_interval: must be a positive number of seconds"):
        ServerConfig(checkpoint_interval=value).resolved()  # type: ignore[arg-type]
