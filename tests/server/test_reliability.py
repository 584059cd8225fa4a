"""Reliability: broker connections closed under the server, kill -9 mid-load, two replicas on one database.

Stopping the shared development broker would break other test runs, so the reconnect path is proven by
closing the relay's and the consumer's connections from the broker side (``rabbitmqctl
close_connection``), which is what the server sees when RabbitMQ restarts.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from argobalsam.argo.v1 import argo_service_pb2 as api
from argobalsam.argo.v1 import job_pb2

from argo_server.db import make_engine

from .conftest import FakeAgent, RunningServer, ServerSubprocess, one_step_job, wait_for

J = job_pb2.JobState
S = job_pb2.StepState

pytestmark = pytest.mark.slow


def _close_broker_connections(name_part: str) -> int:
    """Closes, from the broker side, every connection whose client-provided name contains ``name_part``."""
    listing = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    closed = 0
    for line in listing.splitlines():
        pid, _, properties = line.partition("\t")
        if f'{{"connection_name","{name_part}"}}' in properties:
            subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "closed by test"],
                           capture_output=True, timeout=60, check=True)
            closed += 1
    return closed


def _outbox_size(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT COUNT(*) FROM outbox")).scalar_one()
    engine.dispose()
    return int(count)


def test_relay_and_consumer_reconnect_after_the_broker_closes_them(server: RunningServer,
                                                                   agent: FakeAgent) -> None:
    first = server.argo.CreateJob(api.CreateJobRequest(job=one_step_job())).job
    agent.wait_envelopes("local", 1)
    wait_for(lambda: server.process.consumer.connection is not None, message="consumer connected")
    closed = _close_broker_connections(f"argo-server outbox relay {server.prefix}")
    closed += _close_broker_connections(f"argo-server status consumer {server.prefix}")
    assert closed == 2
    # Jobs created while the relay is down stay in the outbox and drain once it is back.
    jobs = [server.argo.CreateJob(api.CreateJobRequest(job=one_step_job())).job for _ in range(20)]
    received = agent.wait_envelopes("local", 20, timeout=30)
    assert {e.step_id for e in received} == {f"{j.name.split('/')[1]}/0" for j in jobs}
    wait_for(lambda: _outbox_size(server.process.config.database_url) == 0, message="outbox drained")
    # The consumer thread was restarted by the server's supervisor; the relay (in its own process by
    # default) by the relay process's, which the 20 envelopes above show.
    assert {loop.name: loop.restarts >= 1 for loop in server.process.supervised}["status-consumer"]
    # And the consumer applies reports again.
    agent.advance("local", f"{first.name.split('/')[1]}/0", 1, S.STEP_STATE_ACCEPTED, S.STEP_STATE_SUCCEEDED)
    wait_for(lambda: server.argo.GetJob(api.GetJobRequest(name=first.name)).job.state == J.JOB_STATE_SUCCEEDED,
             timeout=30, message="report applied after reconnect")


@pytest.fixture
def spawn(amqp_url: str, amqp_prefix: str, tmp_path: Path) -> Iterator[object]:
    """Starts server subprocesses for the test and stops the survivors at the end."""
    started: list[ServerSubprocess] = []

    def start(database_url: str) -> ServerSubprocess:
        server = ServerSubprocess(database_url, amqp_url, amqp_prefix, (tmp_path / "data").as_uri(),
                                  tmp_path / f"server{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_kill_9_while_creating_loses_no_acknowledged_job(database_url: str, spawn, agent: FakeAgent) -> None:  # type: ignore[no-untyped-def]
    total = 500
    first = spawn(database_url)
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    killed = threading.Event()

    def create(number: int) -> None:
        request = api.CreateJobRequest(job=one_step_job(site="local"), request_id=f"kill-{number}")
        try:
            job = first.argo.CreateJob(request, timeout=30).job
        except (grpc.RpcError, ValueError):  # ValueError: the channel was closed by the kill
            return  # not acknowledged: the client would retry, as below
        with lock:
            acknowledged[request.request_id] = job.name
            if len(acknowledged) >= total // 3 and not killed.is_set():
                killed.set()
                first.kill()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(total)))
    assert killed.is_set() and len(acknowledged) < total
    second = spawn(database_url)
    # The client retries every request with its request_id: acknowledged ones return the same job.
    names: dict[str, str] = {}
    for number in range(total):
        request_id = f"kill-{number}"
        names[request_id] = second.argo.CreateJob(
            api.CreateJobRequest(job=one_step_job(site="local"), request_id=request_id)).job.name
    for request_id, name in acknowledged.items():
        assert names[request_id] == name
    listed, token = [], ""
    while True:
        page = second.argo.ListJobs(api.ListJobsRequest(page_size=1000, page_token=token))
        listed.extend(job.name for job in page.jobs)
        token = page.next_page_token
        if not token:
            break
    assert sorted(listed) == sorted(set(names.values())) and len(listed) == total
    expected = {f"{name.split('/')[1]}/0" for name in listed}
    seen: set[str] = set()

    def all_published() -> bool:
        seen.update(envelope.step_id for envelope in agent.envelopes("local"))
        return expected <= seen

    wait_for(all_published, timeout=60, interval=0.1, message="every Assign published")
    wait_for(lambda: _outbox_size(database_url) == 0, timeout=30, message="outbox empty")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_replicas_on_one_database_apply_every_transition_once(database_url: str, spawn,  # type: ignore[no-untyped-def]
                                                                  agent: FakeAgent) -> None:
    replicas = [spawn(database_url), spawn(database_url)]
    jobs_count = 60
    job = job_pb2.Job(owner="alice", steps=[job_pb2.Step(target_site="local", executable="a"),
                                            job_pb2.Step(target_site="local", executable="b")])
    names = [replicas[i % 2].argo.CreateJob(api.CreateJobRequest(job=job)).job.name for i in range(jobs_count)]
    # Play the agent: every envelope is accepted and succeeds; reports are consumed by both replicas.
    assigned: dict[str, int] = {}
    deadline = time.monotonic() + 90

    def finished() -> bool:
        return all(replicas[0].argo.GetJob(api.GetJobRequest(name=name)).job.state == J.JOB_STATE_SUCCEEDED
                   for name in names)

    while time.monotonic() < deadline:
        for envelope in agent.envelopes("local"):
            assigned[envelope.step_id] = assigned.get(envelope.step_id, 0) + 1
            # One report per step: two reports could be applied by the two replicas in either order.
            updates = [agent.update(envelope.step_id, envelope.attempt, state, sequence=number)
                       for number, state in enumerate((S.STEP_STATE_ACCEPTED, S.STEP_STATE_RUNNING,
                                                       S.STEP_STATE_SUCCEEDED), start=1)]
            agent.report("local", *updates)
            # The same report again, as a redelivery would: whichever replica gets it, it changes nothing.
            agent.report("local", *updates)
        if len(assigned) == 2 * jobs_count and finished():
            break
        time.sleep(0.1)
    assert finished()
    assert set(assigned) == {f"{name.split('/')[1]}/{i}" for name in names for i in (0, 1)}
    expected = ["JOB_STATE_PENDING", "0:STEP_STATE_DISPATCHED", "0:STEP_STATE_ACCEPTED", "JOB_STATE_RUNNING",
                "0:STEP_STATE_RUNNING", "0:STEP_STATE_SUCCEEDED", "1:STEP_STATE_DISPATCHED", "1:STEP_STATE_ACCEPTED",
                "1:STEP_STATE_RUNNING", "1:STEP_STATE_SUCCEEDED", "JOB_STATE_SUCCEEDED"]
    for name in names:
        events = replicas[1].argo.ListJobEvents(api.ListJobEventsRequest(parent=name, page_size=100)).events
        summary = [f"{e.step_index}:{S.Name(e.step_state)}" if e.step_index >= 0 else J.Name(e.job_state)
                   for e in events]
        assert summary == expected, name
    wait_for(lambda: _outbox_size(database_url) == 0, message="outbox empty")
