"""Status ingestion, dead letters, heartbeats and the outbox relay, through the real broker."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from argobalsam.argo.v1 import argo_service_pb2 as api
from argobalsam.argo.v1 import job_pb2, site_pb2, site_service_pb2
from argobalsam.balsam.v1 import status_pb2

from argo_server.db import make_engine

from .conftest import FakeAgent, RunningServer, one_step_job, two_step_job, wait_for

J = job_pb2.JobState
S = job_pb2.StepState


def _job(server: RunningServer, name: str) -> job_pb2.Job:
    return server.argo.GetJob(api.GetJobRequest(name=name)).job


def _events(server: RunningServer, name: str) -> list[job_pb2.JobEvent]:
    return list(server.argo.ListJobEvents(api.ListJobEventsRequest(parent=name, page_size=1000)).events)


def _settled(server: RunningServer, messages: int) -> bool:
    return server.process.consumer.stats.messages + server.process.consumer.stats.dead_lettered >= messages


def test_duplicate_reordered_and_stale_updates_change_nothing(server: RunningServer, agent: FakeAgent) -> None:
    job = server.argo.CreateJob(api.CreateJobRequest(job=one_step_job())).job
    step = f"{job.name.split('/')[1]}/0"
    accepted = agent.update(step, 1, S.STEP_STATE_ACCEPTED, sequence=1)
    queued = agent.update(step, 1, S.STEP_STATE_QUEUED, sequence=3, scheduler_id="4242.pbs")
    submitted = agent.update(step, 1, S.STEP_STATE_SUBMITTED, sequence=2)
    agent.report("local", accepted)
    agent.report("local", accepted)          # duplicate
    agent.report("local", queued)
    agent.report("local", submitted)         # overtaken by sequence 3: reordered
    agent.report("local", agent.update(step, 0, S.STEP_STATE_FAILED, sequence=7))  # stale attempt
    wait_for(lambda: _settled(server, 5), message="5 messages")
    current = _job(server, job.name)
    assert current.state == J.JOB_STATE_RUNNING
    assert (current.steps[0].state, current.steps[0].scheduler_id) == (S.STEP_STATE_QUEUED, "4242.pbs")
    before = _events(server, job.name)
    stats = server.process.consumer.stats
    assert (stats.duplicates, stats.stale, stats.dead_lettered) == (2, 1, 0)
    # The same messages again change nothing at all.
    for update in (accepted, queued, submitted):
        agent.report("local", update)
    wait_for(lambda: _settled(server, 8), message="8 messages")
    assert _events(server, job.name) == before
    assert _job(server, job.name).steps[0] == current.steps[0]


def test_refused_transition_is_a_counted_no_op(server: RunningServer, agent: FakeAgent) -> None:
    job = server.argo.CreateJob(api.CreateJobRequest(job=one_step_job())).job
    step = f"{job.name.split('/')[1]}/0"
    agent.advance("local", step, 1, S.STEP_STATE_RUNNING)
    agent.advance("local", step, 1, S.STEP_STATE_ACCEPTED)  # backwards: refused
    wait_for(lambda: _settled(server, 2), message="2 messages")
    assert server.process.consumer.stats.refused == 1
    assert server.process.store.refused_transitions == 1
    assert _job(server, job.name).steps[0].state == S.STEP_STATE_RUNNING
    assert agent.dead_letters() == []


def test_malformed_and_unknown_job_messages_are_dead_lettered(server: RunningServer, agent: FakeAgent) -> None:
    job = server.argo.CreateJob(api.CreateJobRequest(job=one_step_job())).job
    step = f"{job.name.split('/')[1]}/0"
    garbage = b"\xff\xfe not a protobuf"
    unknown = status_pb2.AgentReport(site="local", status=status_pb2.StatusBatch(updates=[
        status_pb2.StatusUpdate(step_id="0000000000000000deadbeef/0", attempt=1, sequence=1,
                                state=S.STEP_STATE_ACCEPTED)])).SerializeToString()
    agent.publish_raw("status.local", garbage)
    agent.publish_raw("status.local", unknown)
    agent.advance("local", step, 1, S.STEP_STATE_ACCEPTED)  # the consumer goes on
    wait_for(lambda: _job(server, job.name).steps[0].state == S.STEP_STATE_ACCEPTED, message="accepted")
    dead: list[bytes] = []
    wait_for(lambda: (dead.extend(agent.dead_letters()), len(dead) >= 2)[1], message="2 dead letters")
    assert sorted(dead) == sorted([garbage, unknown])
    assert server.process.consumer.stats.dead_lettered == 2


def test_an_agent_cannot_report_for_another_site(server: RunningServer, agent: FakeAgent) -> None:
    job = server.argo.CreateJob(api.CreateJobRequest(job=one_step_job())).job  # its step targets "local"
    step = f"{job.name.split('/')[1]}/0"
    accepted = status_pb2.StatusUpdate(step_id=step, attempt=1, sequence=1, state=S.STEP_STATE_ACCEPTED)
    # a report claiming "local" published under mira's routing key (which only mira's agent may use)
    disguised = status_pb2.AgentReport(site="local", status=status_pb2.StatusBatch(updates=[accepted]))
    # mira's own report about a step of the local site
    foreign = status_pb2.AgentReport(site="mira", status=status_pb2.StatusBatch(updates=[accepted]))
    agent.publish_raw("status.mira", disguised.SerializeToString())
    agent.publish_raw("status.mira", foreign.SerializeToString())
    dead: list[bytes] = []
    wait_for(lambda: (dead.extend(agent.dead_letters()), len(dead) >= 2)[1], message="2 dead letters")
    assert sorted(dead) == sorted([disguised.SerializeToString(), foreign.SerializeToString()])
    assert _job(server, job.name).steps[0].state == S.STEP_STATE_DISPATCHED
    agent.advance("local", step, 1, S.STEP_STATE_ACCEPTED)  # the site's own report is applied
    wait_for(lambda: _job(server, job.name).steps[0].state == S.STEP_STATE_ACCEPTED, message="accepted")


def test_heartbeats_make_sites_online_then_offline(server: RunningServer, agent: FakeAgent) -> None:
    agent.heartbeat("mira", agent_version="1.2.3", hostname="mira-login1", scheduler="cobalt",
                    plugins=[site_pb2.PluginInfo(name="balsam-cobalt", version="0.1", hooks=["balsam_schedulers"])],
                    capacity=site_pb2.SiteCapacity(max_nodes=49152, active_steps=3))
    agent.heartbeat("local", scheduler="local")

    def sites() -> dict[str, site_pb2.Site]:
        listed = server.sites.ListSites(site_service_pb2.ListSitesRequest()).sites
        return {site.name: site for site in listed}

    wait_for(lambda: len(sites()) == 2, message="two sites")
    mira = sites()["sites/mira"]
    assert mira.online and mira.agent_version == "1.2.3" and mira.hostname == "mira-login1"
    assert mira.scheduler == "cobalt" and mira.capacity.max_nodes == 49152 and mira.plugins[0].name == "balsam-cobalt"
    assert list(sites()) == ["sites/local", "sites/mira"]
    agent.heartbeat("local", stopping=True)
    wait_for(lambda: not sites()["sites/local"].online, message="local offline at once")
    # No heartbeat for longer than site_offline_after (2 s in tests): offline.
    wait_for(lambda: not sites()["sites/mira"].online, timeout=6, interval=0.2, message="mira offline")
    agent.heartbeat("mira")
    wait_for(lambda: sites()["sites/mira"].online, message="mira back")
    got = server.sites.GetSite(site_service_pb2.GetSiteRequest(name="sites/mira")).site
    assert got.name == "sites/mira"
    with pytest.raises(grpc.RpcError) as raised:
        server.sites.GetSite(site_service_pb2.GetSiteRequest(name="sites/nowhere"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_relay_publishes_every_envelope_and_empties_the_outbox(server: RunningServer, agent: FakeAgent) -> None:
    requests = [api.CreateJobRequest(job=one_step_job(site=f"site{i % 3}")) for i in range(60)]
    jobs = server.argo.BatchCreateJobs(api.BatchCreateJobsRequest(requests=requests)).jobs
    expected = {f"{job.name.split('/')[1]}/0" for job in jobs}
    received = []
    for site in ("site0", "site1", "site2"):
        received.extend(agent.wait_envelopes(site, 20))
    assert {envelope.step_id for envelope in received} == expected
    assert all(envelope.WhichOneof("action") == "assign" for envelope in received)
    engine = make_engine(server.process.config.database_url)

    def outbox_size() -> int:
        # A connection per look: one kept open would keep reading its first snapshot.
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT COUNT(*) FROM outbox")).scalar_one())

    wait_for(lambda: outbox_size() == 0, message="empty outbox")
    engine.dispose()


def test_only_reports_that_write_envelopes_wake_the_relay(server: RunningServer, agent: FakeAgent,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    wakes: list[int] = []
    consumer = server.process.consumer
    monkeypatch.setattr(consumer, "_on_outbox", lambda: wakes.append(consumer.stats.messages))
    job = server.argo.CreateJob(api.CreateJobRequest(job=two_step_job())).job
    first = f"{job.name.split('/')[1]}/0"
    before = consumer.stats.messages
    agent.report("local", agent.update(first, 1, S.STEP_STATE_ACCEPTED), agent.update(first, 1, S.STEP_STATE_RUNNING))
    wait_for(lambda: _settled(server, before + 1), message="the RUNNING report")
    assert wakes == []  # state changes without envelopes: nothing for the relay
    agent.report("local", agent.update(first, 1, S.STEP_STATE_STAGING_OUT),
                 agent.update(first, 1, S.STEP_STATE_SUCCEEDED))
    wait_for(lambda: _settled(server, before + 2), message="the SUCCEEDED report")
    assert len(wakes) == 1  # step 1 was dispatched: its Assign is in the outbox
    wait_for(lambda: _job(server, job.name).steps[1].state == S.STEP_STATE_DISPATCHED, message="step 1 dispatched")
