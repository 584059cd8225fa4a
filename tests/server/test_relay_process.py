"""The outbox relay in its own process (``relay: process``): woken by the server, restarted when it dies,
gone when the server goes, through the real broker."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from argobalsam.argo.v1 import argo_service_pb2 as api
from argobalsam.argo.v1 import argo_service_pb2_grpc

from argo_server.config import ServerConfig
from argo_server.db import Database
from argo_server.outbox import pending_count
from argo_server.relay import OutboxRelay
from argo_server.relay_process import RelayChild, _SentReader

from .conftest import FakeAgent, RunningServer, child_pids, one_step_job, start_server, wait_for


@pytest.fixture
def server_config(amqp_url: str, amqp_prefix: str, tmp_path: Path) -> ServerConfig:
    """(Overrides conftest's, so that ``server`` runs this.) A process-relay server on SQLite whose relay
    polls so rarely that only wake-ups deliver in a test's time."""
    return ServerConfig(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'argo.db'}", amqp_url=amqp_url,
                        amqp_prefix=amqp_prefix, data_root=(tmp_path / "data").as_uri(), relay="process",
                        relay_poll_interval=600.0)


def _child(running: RunningServer) -> subprocess.Popen[bytes]:
    relay = running.process.relay
    assert isinstance(relay, RelayChild)
    wait_for(lambda: relay.process is not None, message="relay process started")
    assert relay.process is not None
    return relay.process


def _step_id(job_name: str) -> str:
    return f"{job_name.split('/')[1]}/0"


def test_the_relay_is_a_child_process_woken_by_every_commit(server: RunningServer,
                                                          agent: FakeAgent) -> None:
    child = _child(server)
    assert child.pid != os.getpid() and child.poll() is None
    # The child polls every 600 s: each job below reaches the broker only if the commit woke it.
    for _ in range(3):
        job = server.argo.CreateJob(api.CreateJobRequest(job=one_step_job())).job
        (envelope,) = agent.wait_envelopes("local", 1, timeout=30)
        assert envelope.step_id == _step_id(job.name)
    batch = server.argo.BatchCreateJobs(api.BatchCreateJobsRequest(
        requests=[api.CreateJobRequest(job=one_step_job()) for _ in range(50)])).jobs
    received = agent.wait_envelopes("local", 50, timeout=30)
    assert sorted(e.step_id for e in received) == sorted(_step_id(job.name) for job in batch)


def _outbox_size(running: RunningServer) -> int:
    with running.process.db.read() as connection:
        return pending_count(connection)


def test_the_server_deletes_what_its_relay_process_reports_sent(server: RunningServer, agent: FakeAgent) -> None:
    jobs = [server.argo.CreateJob(api.CreateJobRequest(job=one_step_job())).job for _ in range(4)]
    agent.wait_envelopes("local", 4, timeout=30)
    wait_for(lambda: _outbox_size(server) == 0, message="outbox emptied by the server")
    assert len(jobs) == 4


def _outbox_rows(db: Database, count: int) -> None:
    from argo_server.outbox import make_envelope, outbox_row, outbox_table
    with db.write() as connection:
        connection.execute(outbox_table.insert(), [
            outbox_row(make_envelope(f"j{n}/0", 1, 1, "local", 0, {}), 0) for n in range(count)])


def test_a_relay_with_a_sent_pipe_writes_nothing_and_reads_only_past_its_last_sent_row(
        amqp_url: str, amqp_prefix: str, agent: FakeAgent, tmp_path: Path) -> None:
    import pika

    from argo_server.schema import upgrade
    db = Database(f"sqlite:///{tmp_path / 'argo.db'}")
    upgrade(db.engine)
    relay = OutboxRelay(db, amqp_url, amqp_prefix)
    sent_read, relay.sent_fd = os.pipe()
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.tx_select()
        _outbox_rows(db, 3)
        assert relay.relay_once(channel, set()) == 3
        assert relay.relay_once(channel, set()) == 0  # the three rows are still there, but sent
        with db.read() as reading:
            assert pending_count(reading) == 3  # the relay deleted nothing
        _outbox_rows(db, 2)
        assert relay.relay_once(channel, set()) == 2
        assert sorted(e.step_id for e in agent.wait_envelopes("local", 5)) == \
            sorted(["j0/0", "j1/0", "j2/0", "j0/0", "j1/0"])
        reports = os.read(sent_read, 1000).split()
        assert [int(line) for line in reports] == [3, 5]
        # The server's end deletes through the last id reported, and nothing after it.
        _outbox_rows(db, 1)
        reader = _SentReader(sent_read, db)
        os.write(relay.sent_fd, b"2\n5\n")
        reader.drain()
        with db.read() as reading:
            assert pending_count(reading) == 1
        assert relay.relay_once(channel, set()) == 1
    finally:
        connection.close()
        os.close(relay.sent_fd)
        db.dispose()


def test_a_relay_process_that_dies_is_restarted_and_sends_what_was_committed_meanwhile(
        server: RunningServer, agent: FakeAgent) -> None:
    first = _child(server)
    first.send_signal(signal.SIGKILL)
    jobs = [server.argo.CreateJob(api.CreateJobRequest(job=one_step_job())).job for _ in range(5)]
    received = agent.wait_envelopes("local", 5, timeout=30)
    assert sorted(e.step_id for e in received) == sorted(_step_id(job.name) for job in jobs)
    relay_loop = {loop.name: loop for loop in server.process.supervised}["outbox-relay"]
    assert relay_loop.restarts >= 1
    assert _child(server).pid != first.pid


def test_stopping_the_server_stops_its_relay_process(server_config: ServerConfig) -> None:
    running = start_server(server_config)
    child = _child(running)
    running.channel.close()
    running.process.stop(grace=1.0)
    assert child.poll() == 0  # stopped by end of file, not killed


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return re.search(r"^State:\s+Z", status, re.MULTILINE) is None


def test_a_killed_server_leaves_no_relay_process_behind(server_config: ServerConfig, tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    settings = dataclasses.asdict(server_config)
    config.write_text("".join(f"{key}: {value!r}\n" for key, value in settings.items()
                              if key in ("database_url", "amqp_url", "amqp_prefix", "data_root", "relay")))
    server = subprocess.Popen([sys.executable, "-m", "argo_server.cli", "--listen", "127.0.0.1:0",
                               "--config", str(config)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    lines: list[str] = []
    port: list[int] = []

    def read() -> None:
        assert server.stderr is not None
        for raw in server.stderr:
            lines.append(raw.decode(errors="replace"))
            match = re.search(r"listening on [\d.]+:(\d+)", lines[-1])
            if match:
                port.append(int(match.group(1)))

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_for(lambda: port or server.poll() is not None, timeout=60, message="server start")
        assert port, "".join(lines)
        with grpc.insecure_channel(f"127.0.0.1:{port[0]}") as channel:
            argo_service_pb2_grpc.ArgoServiceStub(channel).CreateJob(api.CreateJobRequest(job=one_step_job()))

        wait_for(lambda: child_pids(server.pid), message="relay child")
        (child,) = child_pids(server.pid)
        assert "argo_server.relay_process" in Path(f"/proc/{child}/cmdline").read_text()
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        wait_for(lambda: not _alive(child), timeout=30, message="relay process gone after its server")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)


def test_an_unknown_relay_mode_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^relay: must be one of process, thread, not 'fork'$"):
        ServerConfig(relay="fork").resolved()
