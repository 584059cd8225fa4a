"""Hostile status messages: random bytes, random AgentReports and oversized bodies go through the
status consumer's batch handler; each delivery is acked or dead-lettered exactly once, nothing escapes
and nothing hangs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import job_pb2
from argobalsam.balsam.v1 import status_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argo_server.consumer import StatusConsumer
from argo_server.db import Database
from argo_server.schema import upgrade
from argo_server.store import JobStore


class RecordingChannel:
    """Stands in for the pika channel: records what the consumer acked and dead-lettered, with AMQP's
    rules (``multiple`` settles every outstanding delivery up to the tag; settling twice is an error)."""

    def __init__(self, tags: list[int]) -> None:
        self.outstanding = set(tags)
        self.acked: list[int] = []
        self.dead: list[int] = []

    def _settle(self, tag: int, multiple: bool) -> list[int]:
        assert tag in self.outstanding, f"delivery {tag} settled twice or never delivered"
        settled = sorted(t for t in self.outstanding if t <= tag) if multiple else [tag]
        self.outstanding.difference_update(settled)
        return settled

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        """Records an ack."""
        self.acked.extend(self._settle(tag, multiple))

    def basic_nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        """Records a dead-lettering (a requeue would be a redelivery loop: refused here)."""
        assert not requeue
        self.dead.extend(self._settle(tag, multiple))


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StatusConsumer, list[str]]]:
    """A consumer over a store holding a few real jobs (no broker: batches are handed in directly)."""
    root: Path = tmp_path_factory.mktemp("fuzz-consumer")
    db = Database(f"sqlite:///{root / 'argo.db'}")
    upgrade(db.engine)
    store = JobStore(db, (root / "data").as_uri())
    step_ids = []
    for _ in range(3):
        job = store.create_job(svc.CreateJobRequest(job=job_pb2.Job(owner="o", steps=[
            job_pb2.Step(target_site="local", executable="x", nodes=1, processes_per_node=1, wall_minutes=1),
            job_pb2.Step(target_site="vesta", executable="y", nodes=1, processes_per_node=1, wall_minutes=1)])))
        job_id = job.name.split("/")[1]
        step_ids += [f"{job_id}.0", f"{job_id}.1", f"{job_id}.2", f"{job_id}.-1", f"{job_id}"]
    consumer = StatusConsumer(store, "amqp://unused", "fuzz")
    consumer.max_body_bytes = 4096
    yield consumer, step_ids
    db.dispose()


_int32 = st.integers(min_value=-2**31, max_value=2**31 - 1)
_updates = st.builds(
    status_pb2.StatusUpdate, step_id=st.text(max_size=20), attempt=_int32,
    sequence=st.integers(min_value=0, max_value=2**63 - 1), state=_int32, reason=st.text(max_size=50),
    scheduler_id=st.text(max_size=20), failed_phase=_int32, exit_code=st.none() | _int32)
_heartbeats = st.builds(status_pb2.Heartbeat, agent_version=st.text(max_size=10), hostname=st.text(max_size=10),
                        scheduler=st.text(max_size=10), stopping=st.booleans(),
                        time=st.builds(Timestamp, seconds=st.integers(-2**40, 2**40), nanos=_int32))


def _report(site: str, updates: list[status_pb2.StatusUpdate] | None, heartbeat: status_pb2.Heartbeat) -> bytes:
    report = status_pb2.AgentReport(site=site)
    if updates is None:
        report.heartbeat.CopyFrom(heartbeat)
    else:
        report.status.updates.extend(updates)
    return report.SerializeToString()


@st.composite
def deliveries(draw: st.DrawFn, step_ids: list[str]) -> list[bytes]:
    """A batch mixing random bytes, random reports, reports about real steps and oversized bodies."""
    real = st.builds(lambda update, step_id: (update.__setattr__("step_id", step_id), update)[1],
                     _updates, st.sampled_from(step_ids))
    body = st.one_of(
        st.binary(max_size=200),
        st.builds(_report, st.text(max_size=10), st.none() | st.lists(_updates | real, max_size=5), _heartbeats),
        st.builds(lambda n: b"\x0a" + b"\xff" * n, st.integers(4096, 10000)),
    )
    return draw(st.lists(body, min_size=1, max_size=8))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_delivery_is_acked_or_dead_lettered_once(consumer: tuple[StatusConsumer, list[str]],
                                                        data: st.DataObject) -> None:
    status_consumer, step_ids = consumer
    bodies = data.draw(deliveries(step_ids))
    tags = list(range(1, len(bodies) + 1))
    channel = RecordingChannel(tags)
    started = time.monotonic()
    status_consumer.handle_batch(channel, list(zip(tags, bodies, strict=True)))  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    assert sorted(channel.acked + channel.dead) == tags
    for tag, body in zip(tags, bodies, strict=True):
        if len(body) > status_consumer.max_body_bytes:
            assert tag in channel.dead


def test_an_oversized_body_is_dead_lettered_unparsed(consumer: tuple[StatusConsumer, list[str]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    status_consumer, step_ids = consumer
    parsed: list[bytes] = []
    real_parse = status_pb2.AgentReport.FromString

    def parse(body: bytes) -> status_pb2.AgentReport:
        parsed.append(body)
        return real_parse(body)

    monkeypatch.setattr(status_pb2.AgentReport, "FromString", staticmethod(parse))
    small = status_pb2.AgentReport(site="local", heartbeat=status_pb2.Heartbeat(hostname="h")).SerializeToString()
    big = status_pb2.AgentReport(site="local", heartbeat=status_pb2.Heartbeat(hostname="h" * 5000)).SerializeToString()
    channel = RecordingChannel([1, 2])
    before = status_consumer.stats.dead_lettered
    status_consumer.handle_batch(channel, [(1, big), (2, small)])  # type: ignore[arg-type]
    assert (channel.dead, channel.acked) == ([1], [2])
    assert parsed == [small]  # the big body was never parsed
    assert status_consumer.stats.dead_lettered == before + 1
