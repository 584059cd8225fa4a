"""SQLite's commits are synced to disk by default, in the server and in the agent (``sqlite_synchronous``).

With ``full`` a commit returns only once the WAL is synced, so a job a client saw created, an envelope
the agent acked or a status update it queued survives an OS crash or a power loss; ``normal`` syncs only
at checkpoints. The tests count the sync system calls (``strace``) of a child that makes 20 commits.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from argo_server.app import ServerProcess
from argo_server.config import ServerConfig
from argo_server.db import Database
from balsam_agent.config import AgentConfig
from balsam_agent.state import OutboxReader, StateStore

COMMITS = 20

SERVER_CHILD = """
import sys
from argobalsam.argo.v1 import argo_service_pb2 as api, job_pb2
from argo_server import schema
from argo_server.db import Database
from argo_server.store import JobStore
db = Database(sys.argv[1], sys.argv[2])
schema.upgrade(db.engine)
store = JobStore(db, sys.argv[3])
for number in range(int(sys.argv[4])):  # one CreateJob at a time: a commit each
    store.create_job(api.CreateJobRequest(job=job_pb2.Job(owner="alice", steps=[
        job_pb2.Step(target_site="local", executable="/bin/true", executable_args=[str(number)])])))
"""

AGENT_CHILD = """
import sys
from pathlib import Path
from balsam_agent.state import StateStore
store = StateStore(Path(sys.argv[1]), sys.argv[2])
for number in range(int(sys.argv[3])):
    store.begin()
    store.add_outbox([b"update %d" % number])
    store.commit()
"""


def syncs(script: str, *args: str) -> int:
    """fsync/fdatasync calls of a Python child running ``script`` with ``args``."""
    traced = subprocess.run(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", sys.executable, "-c", script,
                             *args], capture_output=True, text=True, timeout=120, check=True)
    return sum(int(match) for match in re.findall(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?f(?:data)?sync$",
                                                  traced.stderr, re.MULTILINE))


needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")


@needs_strace
def test_every_server_commit_is_synced_by_default_and_not_with_normal(tmp_path: Path) -> None:
    counts = {}
    for mode in ("full", "normal"):
        url = f"sqlite:///{tmp_path / mode / 'argo.db'}"
        counts[mode] = syncs(SERVER_CHILD, url, mode, (tmp_path / mode / "data").as_uri(), str(COMMITS))
    assert counts["full"] - counts["normal"] >= COMMITS, counts
    assert counts["normal"] < COMMITS, counts


@needs_strace
def test_every_agent_commit_is_synced_by_default_and_not_with_normal(tmp_path: Path) -> None:
    counts = {mode: syncs(AGENT_CHILD, str(tmp_path / mode / "agent.sqlite"), mode, str(COMMITS))
              for mode in ("full", "normal")}
    assert counts["full"] - counts["normal"] >= COMMITS, counts
    assert counts["normal"] < COMMITS, counts


def _synchronous(connection: object) -> int:
    return int(connection.execute("PRAGMA synchronous").fetchone()[0])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("mode", "pragma"), [("full", 2), ("normal", 1)])
def test_the_server_opens_both_engines_with_its_setting(tmp_path: Path, mode: str, pragma: int) -> None:
    server = ServerProcess(ServerConfig(database_url=f"sqlite:///{tmp_path / 'argo.db'}", sqlite_synchronous=mode,
                                        data_root=(tmp_path / "data").as_uri(), relay="thread"))
    try:
        for engine in (server.db.engine, server.db.read_engine):
            connection = engine.raw_connection()
            try:
                assert _synchronous(connection.cursor()) == pragma
            finally:
                connection.close()
    finally:
        server.db.dispose()


def test_the_default_is_full_in_the_server_and_the_agent(tmp_path: Path) -> None:
    assert ServerConfig().sqlite_synchronous == "full"
    assert AgentConfig.from_mapping("local", {}).sqlite_synchronous == "full"
    db = Database(f"sqlite:///{tmp_path / 'argo.db'}")
    try:
        connection = db.engine.raw_connection()
        assert _synchronous(connection.cursor()) == 2
        connection.close()
    finally:
        db.dispose()


@pytest.mark.parametrize(("mode", "pragma"), [("full", 2), ("normal", 1)])
def test_the_agents_connections_take_its_setting(tmp_path: Path, mode: str, pragma: int) -> None:
    path = tmp_path / "agent.sqlite"
    store, reader = StateStore(path, mode), OutboxReader(path, mode)
    try:
        assert _synchronous(store.conn) == pragma
        assert _synchronous(reader.conn) == pragma
    finally:
        store.close()
        reader.close()


@pytest.mark.parametrize("value", ["off", "FULL", "", 2])
def test_a_bad_sqlite_synchronous_is_refused_with_its_name(tmp_path: Path, value: object) -> None:
    with pytest.raises(ValueError, match="^sqlite_synchronous: must be one of full, normal"):
        ServerConfig(sqlite_synchronous=value).resolved()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^sqlite_synchronous: must be one of full, normal"):
        Database(f"sqlite:///{tmp_path / 'argo.db'}", value)  # type: ignore[arg-type]
    assert not (tmp_path / "argo.db").exists()
