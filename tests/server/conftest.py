"""Fixtures of the server tests: a database of each kind, a running server, a fake agent on the broker.

PostgreSQL tests run in a schema of their own and MariaDB tests in a database of their own (created for
the session, dropped after it), so that other test runs on the same servers do not collide with these.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pika
import pytest
import sqlalchemy as sa
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2, site_service_pb2_grpc
from argobalsam.balsam.v1 import assignment_pb2, status_pb2

from argo_server import topology
from argo_server.app import ServerProcess
from argo_server.config import ServerConfig
from argo_server.db import make_engine
from argo_server.models import Base
from argo_server.schema import upgrade

POSTGRES_URL = os.environ.get("ARGO_TEST_POSTGRES_URL",
                              "postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/argo_test")
MYSQL_URL = os.environ.get("ARGO_TEST_MYSQL_URL", "mysql+pymysql://argo:argo@127.0.0.1:3306/argo_test")
BACKENDS = ["sqlite", "postgresql", "mysql"]


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02,
             message: str = "condition") -> Any:
    """Polls ``condition`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def _server_databases() -> Iterator[dict[str, str]]:
    """Session URLs of an isolated PostgreSQL schema and MariaDB database, migrated once."""
    suffix = uuid.uuid4().hex[:8]
    urls: dict[str, str] = {}
    cleanups: list[Callable[[], None]] = []
    schema = f"srv_{suffix}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    urls["postgresql"] = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"

    def drop_schema() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()

    cleanups.append(drop_schema)
    database = f"argo_test_srv_{suffix}"
    mysql_admin = sa.create_engine(MYSQL_URL)
    with mysql_admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {database}")
    urls["mysql"] = str(sa.make_url(MYSQL_URL).set(database=database).render_as_string(hide_password=False))

    def drop_database() -> None:
        with mysql_admin.begin() as connection:
            connection.exec_driver_sql(f"DROP DATABASE {database}")
        mysql_admin.dispose()

    cleanups.append(drop_database)
    for url in urls.values():
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    try:
        yield urls
    finally:
        for cleanup in cleanups:
            cleanup()


def empty_tables(url: str) -> None:
    """Deletes every row of the server's tables (faster than dropping and migrating again)."""
    engine = make_engine(url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each kind: SQLite file, PostgreSQL, MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'argo.db'}"
    url = request.getfixturevalue("_server_databases")[request.param]
    empty_tables(url)
    return url


class ServerSubprocess:
    """``argo-server`` in a child process (so that it can be killed with SIGKILL)."""

    def __init__(self, database_url: str, amqp_url: str, prefix: str, data_root: str, log_path: Path,
                 *options: str) -> None:
        self.log = log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "argo_server.cli", "--listen", "127.0.0.1:0", "--database-url", database_url,
             "--amqp-url", amqp_url, "--amqp-prefix", prefix, "--data-root", data_root, *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.port = 0
        self._lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self.port or self.process.poll() is not None, timeout=60, message="server start")
        assert self.port, "".join(self._lines)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.argo = argo_service_pb2_grpc.ArgoServiceStub(self.channel)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.log.write(raw)
            line = raw.decode(errors="replace")
            self._lines.append(line)
            match = re.search(r"listening on [\d.]+:(\d+)", line)
            if match:
                self.port = int(match.group(1))

    def kill(self) -> None:
        """SIGKILL: no chance to clean anything up."""
        self.channel.close()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM: graceful stop."""
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def child_pids(pid: int) -> list[int]:
    """The processes ``pid``'s threads started that still run (``/proc/PID/task/*/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


@dataclass
class RunningServer:
    """A server started in this process, with stubs connected to it."""

    process: ServerProcess
    channel: grpc.Channel
    argo: argo_service_pb2_grpc.ArgoServiceStub
    sites: site_service_pb2_grpc.SiteServiceStub
    prefix: str

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return f"127.0.0.1:{self.process.port}"


def start_server(config: ServerConfig) -> RunningServer:
    """Starts a server and connects stubs to it."""
    process = ServerProcess(config)
    port = process.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return RunningServer(process, channel, argo_service_pb2_grpc.ArgoServiceStub(channel),
                         site_service_pb2_grpc.SiteServiceStub(channel), config.amqp_prefix)


@pytest.fixture
def server_config(database_url: str, amqp_url: str, amqp_prefix: str, tmp_path: Path) -> ServerConfig:
    """Configuration of a test server on port 0 with the test's database and broker prefix."""
    return ServerConfig(listen="127.0.0.1:0", database_url=database_url, amqp_url=amqp_url,
                        amqp_prefix=amqp_prefix, data_root=(tmp_path / "data").as_uri(),
                        relay_poll_interval=0.2, site_offline_after=2.0)


@pytest.fixture
def server(server_config: ServerConfig) -> Iterator[RunningServer]:
    """A running server with its relay and status consumer."""
    running = start_server(server_config)
    try:
        yield running
    finally:
        running.channel.close()
        running.process.stop(grace=1.0)


class FakeAgent:
    """Plays an agent on the broker: reads a site's envelopes and publishes reports."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self.prefix = prefix
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        topology.declare_status(self.channel, prefix)
        self._sequences: dict[tuple[str, int], int] = {}
        #: AMQP type of every message taken (envelopes come one per message or in batches).
        self.messages: list[str] = []

    def declare_site(self, site: str) -> None:
        """Declares the site's queue (as the agent does at start)."""
        topology.declare_site_queue(self.channel, self.prefix, site)

    def envelopes(self, site: str) -> list[assignment_pb2.AssignmentEnvelope]:
        """Takes every envelope now in the site's queue."""
        self.declare_site(site)
        found = []
        while True:
            method, properties, body = self.channel.basic_get(topology.assign_queue(self.prefix, site),
                                                              auto_ack=True)
            if method is None:
                return found
            assert properties.content_type == "application/x-protobuf"
            assert properties.delivery_mode == 2
            self.messages.append(properties.type)
            if properties.type == "argobalsam.balsam.v1.AssignmentBatch":
                found.extend(assignment_pb2.AssignmentBatch.FromString(body).envelopes)
            else:
                assert properties.type == "argobalsam.balsam.v1.AssignmentEnvelope"
                found.append(assignment_pb2.AssignmentEnvelope.FromString(body))

    def wait_envelopes(self, site: str, count: int, timeout: float = 15.0) -> list[assignment_pb2.AssignmentEnvelope]:
        """Collects envelopes of ``site`` until there are ``count``."""
        collected: list[assignment_pb2.AssignmentEnvelope] = []

        def enough() -> bool:
            collected.extend(self.envelopes(site))
            return len(collected) >= count

        wait_for(enough, timeout, interval=0.05, message=f"{count} envelopes for {site}")
        return collected

    def report(self, site: str, *updates: status_pb2.StatusUpdate) -> None:
        """Publishes one AgentReport with these status updates."""
        report = status_pb2.AgentReport(site=site, status=status_pb2.StatusBatch(updates=list(updates)))
        self.publish_raw(f"status.{site}", report.SerializeToString())

    def update(self, step_id: str, attempt: int, state: int, sequence: int | None = None,
               **fields: Any) -> status_pb2.StatusUpdate:
        """A StatusUpdate; without ``sequence``, the next one of (step, attempt)."""
        key = (step_id, attempt)
        if sequence is None:
            sequence = self._sequences.get(key, 0) + 1
        self._sequences[key] = max(sequence, self._sequences.get(key, 0))
        return status_pb2.StatusUpdate(step_id=step_id, attempt=attempt, sequence=sequence, state=state, **fields)

    def advance(self, site: str, step_id: str, attempt: int, *states: int) -> None:
        """Reports ``states`` one after the other in one report."""
        self.report(site, *(self.update(step_id, attempt, state) for state in states))

    def heartbeat(self, site: str, stopping: bool = False, **fields: Any) -> None:
        """Publishes a heartbeat."""
        report = status_pb2.AgentReport(site=site, heartbeat=status_pb2.Heartbeat(stopping=stopping, **fields))
        self.publish_raw(f"heartbeat.{site}", report.SerializeToString())

    def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Publishes any body on the status exchange."""
        self.channel.basic_publish(topology.status_name(self.prefix), routing_key, body,
                                   pika.BasicProperties(delivery_mode=2, content_type=topology.PROTOBUF))

    def dead_letters(self) -> list[bytes]:
        """Takes every message now in ``<prefix>.dead``."""
        bodies = []
        while True:
            method, _properties, body = self.channel.basic_get(topology.dead_name(self.prefix), auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body)

    def close(self) -> None:
        """Closes the connection."""
        if self.connection.is_open:
            self.connection.close()


@pytest.fixture
def agent(amqp_url: str, amqp_prefix: str) -> Iterator[FakeAgent]:
    """A fake agent on the test's broker prefix."""
    fake = FakeAgent(amqp_url, amqp_prefix)
    try:
        yield fake
    finally:
        fake.close()


def one_step_job(site: str = "local", owner: str = "alice", **fields: Any) -> job_pb2.Job:
    """A minimal valid job of one step."""
    return job_pb2.Job(owner=owner, steps=[job_pb2.Step(target_site=site, executable="/bin/true")], **fields)


def two_step_job(owner: str = "alice") -> job_pb2.Job:
    """The seed's shape: step 0 on ``local`` produces a file step 1 on ``vesta`` reads."""
    return job_pb2.Job(owner=owner, input_url="gsiftp://in.example/data", output_url="gsiftp://out.example/res",
                       steps=[job_pb2.Step(target_site="local", executable="alpgen", input_files=["grid.dat"],
                                           output_files=["events.unw"]),
                              job_pb2.Step(target_site="vesta", executable="pythia",
                                           input_files=["events.unw"], output_files=["hits.root"])])
