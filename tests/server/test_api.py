"""ArgoService through gRPC against each database: create, idempotency, listing, history, verbs, watch."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from argobalsam.argo.v1 import argo_service_pb2 as api
from argobalsam.argo.v1 import job_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argo_server.config import ServerConfig

from .conftest import FakeAgent, RunningServer, one_step_job, start_server, two_step_job, wait_for

J = job_pb2.JobState
S = job_pb2.StepState


def _create(server: RunningServer, job: job_pb2.Job, request_id: str = "") -> job_pb2.Job:
    return server.argo.CreateJob(api.CreateJobRequest(job=job, request_id=request_id)).job


def _get(server: RunningServer, name: str) -> job_pb2.Job:
    return server.argo.GetJob(api.GetJobRequest(name=name)).job


def test_health_is_serving(server: RunningServer) -> None:
    stub = health_pb2_grpc.HealthStub(server.channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service="argobalsam.argo.v1.ArgoService"))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_create_dispatches_the_first_step(server: RunningServer) -> None:
    job = _create(server, two_step_job())
    assert job.name.startswith("jobs/") and len(job.name) == len("jobs/") + 24
    assert job.state == J.JOB_STATE_PENDING
    assert [step.state for step in job.steps] == [S.STEP_STATE_DISPATCHED, S.STEP_STATE_WAITING]
    assert [step.attempt for step in job.steps] == [1, 0]
    assert job.steps[1].name == f"{job.name}/steps/1"
    assert job.data_url.endswith(f"/{job.name.split('/')[1]}/")
    assert _get(server, job.name) == job


def test_output_fields_a_caller_sets_reach_neither_the_job_nor_the_assign(server: RunningServer,
                                                                         agent: FakeAgent) -> None:
    job = one_step_job()
    step = job.steps[0]
    step.scheduler_id, step.exit_code, step.state_reason, step.failed_phase = "9999.pbs", 3, "x", 2
    step.start_time.FromMicroseconds(10**15)
    created = _create(server, job)
    (envelope,) = agent.wait_envelopes("local", 1)
    for seen in (created.steps[0], _get(server, created.name).steps[0], envelope.assign.step):
        assert (seen.scheduler_id, seen.HasField("exit_code"), seen.state_reason, seen.failed_phase,
                seen.HasField("start_time")) == ("", False, "", 0, False)
    assert envelope.assign.step.executable == "/bin/true" and envelope.assign.step.attempt == 1


def test_job_ids_sort_by_creation(server: RunningServer) -> None:
    names = [_create(server, one_step_job()).name for _ in range(5)]
    assert names == sorted(names)


def test_request_id_returns_the_first_job(server: RunningServer) -> None:
    first = _create(server, one_step_job(), "req-1")
    again = _create(server, one_step_job(), "req-1")
    assert again.name == first.name
    with pytest.raises(grpc.RpcError) as raised:
        _create(server, one_step_job(owner="mallory"), "req-1")
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = server.argo.ListJobs(api.ListJobsRequest()).jobs
    assert [job.name for job in listed] == [first.name]


def test_concurrent_duplicates_make_one_job(server: RunningServer) -> None:
    barrier = threading.Barrier(6)

    def create(_: int) -> str:
        barrier.wait()
        return _create(server, one_step_job(), "same-request").name

    with ThreadPoolExecutor(6) as pool:
        names = set(pool.map(create, range(6)))
    assert len(names) == 1
    assert len(server.argo.ListJobs(api.ListJobsRequest()).jobs) == 1


def test_the_relay_sends_a_sites_envelopes_of_one_batch_as_one_message(server: RunningServer,
                                                                       agent: FakeAgent) -> None:
    sites = ["local", "vesta", "local", "local", "vesta", "mira"]
    jobs = server.argo.BatchCreateJobs(api.BatchCreateJobsRequest(
        requests=[api.CreateJobRequest(job=one_step_job(site=site)) for site in sites])).jobs
    for site in ("local", "vesta", "mira"):
        envelopes = agent.wait_envelopes(site, sites.count(site))
        expected = [f"{job.name.split('/')[1]}/0" for job, at in zip(jobs, sites, strict=True) if at == site]
        assert [e.step_id for e in envelopes] == expected  # in the order they were written
        assert all(e.HasField("assign") and e.site == site for e in envelopes)
    # One transaction's rows are one relay batch: one message per site, a batch where it has several.
    assert sorted(agent.messages) == sorted(["argobalsam.balsam.v1.AssignmentBatch"] * 2
                                            + ["argobalsam.balsam.v1.AssignmentEnvelope"])
    agent.messages.clear()
    _create(server, one_step_job(site="vesta"))
    agent.wait_envelopes("vesta", 1)
    assert agent.messages == ["argobalsam.balsam.v1.AssignmentEnvelope"]


@pytest.mark.parametrize(("gather", "expected"), [
    (1.0, ["AssignmentEnvelope", "AssignmentBatch"]),  # the three wait for the pass after the first's
    (0.0, ["AssignmentEnvelope"] * 4),  # each commit wakes a pass of its own
])
def test_the_relay_gathers_the_envelopes_of_commits_close_to_its_last_pass(
        server_config: ServerConfig, agent: FakeAgent, gather: float, expected: list[str]) -> None:
    server = start_server(dataclasses.replace(server_config, relay_gather=gather))
    try:
        _create(server, one_step_job())
        agent.wait_envelopes("local", 1)
        for _ in range(3):  # three commits, each well after the relay's pass of the one before
            time.sleep(0.1)
            _create(server, one_step_job())
        agent.wait_envelopes("local", 3)
        assert agent.messages == [f"argobalsam.balsam.v1.{name}" for name in expected]
    finally:
        server.channel.close()
        server.process.stop(grace=1.0)


def test_batch_create_is_in_request_order(server: RunningServer) -> None:
    requests = [api.CreateJobRequest(job=one_step_job(owner=f"user{i}"), request_id=f"b{i}") for i in range(30)]
    jobs = server.argo.BatchCreateJobs(api.BatchCreateJobsRequest(requests=requests)).jobs
    assert [job.owner for job in jobs] == [f"user{i}" for i in range(30)]
    again = server.argo.BatchCreateJobs(api.BatchCreateJobsRequest(requests=requests)).jobs
    assert [job.name for job in again] == [job.name for job in jobs]


def test_list_pagination_and_filters(server: RunningServer) -> None:
    created = []
    for i in range(12):
        job = one_step_job(site="mira" if i % 3 == 0 else "local", owner="bob" if i % 2 else "carol",
                           group_identifier="g1" if i < 6 else "g2")
        created.append(_create(server, job))
    cancelled = {created[0].name, created[3].name}
    for name in cancelled:
        server.argo.CancelJob(api.CancelJobRequest(name=name))
    newest_first = [job.name for job in reversed(created)]

    pages, token = [], ""
    while True:
        response = server.argo.ListJobs(api.ListJobsRequest(page_size=5, page_token=token))
        pages.append([job.name for job in response.jobs])
        token = response.next_page_token
        if not token:
            break
    assert [len(page) for page in pages] == [5, 5, 2]
    assert sum(pages, []) == newest_first

    def names(**filters: object) -> list[str]:
        return [job.name for job in server.argo.ListJobs(api.ListJobsRequest(**filters)).jobs]  # type: ignore[arg-type]

    assert names(site="mira") == [created[i].name for i in (9, 6, 3, 0)]
    assert names(site="mira", states=[J.JOB_STATE_CANCELLED]) == [created[3].name, created[0].name]
    assert names(site="mira", states=[J.JOB_STATE_PENDING]) == [created[9].name, created[6].name]
    assert names(states=[J.JOB_STATE_CANCELLED, J.JOB_STATE_PENDING], owner="carol") == \
        [created[i].name for i in (10, 8, 6, 4, 2, 0)]
    assert names(group_identifier="g2", owner="bob") == [created[i].name for i in (11, 9, 7)]
    assert names(site="vesta") == []
    middle = Timestamp()
    middle.CopyFrom(created[6].create_time)
    after = names(create_time_after=middle)
    before = names(create_time_before=middle)
    assert set(after) | set(before) == set(newest_first) and not set(after) & set(before)
    assert created[6].name in after
    # A filtered listing pages too.
    first = server.argo.ListJobs(api.ListJobsRequest(site="local", page_size=3))
    second = server.argo.ListJobs(api.ListJobsRequest(site="local", page_size=3, page_token=first.next_page_token))
    assert [j.name for j in first.jobs] + [j.name for j in second.jobs] == [created[i].name for i in
                                                                             (11, 10, 8, 7, 5, 4)]


def test_events_are_paginated_oldest_first(server: RunningServer, agent: FakeAgent) -> None:
    job = _create(server, two_step_job())
    step0 = f"{job.name.split('/')[1]}/0"
    agent.advance("local", step0, 1, S.STEP_STATE_ACCEPTED, S.STEP_STATE_SUBMITTED, S.STEP_STATE_RUNNING,
                  S.STEP_STATE_SUCCEEDED)
    wait_for(lambda: _get(server, job.name).steps[1].state == S.STEP_STATE_DISPATCHED, message="step 1 dispatched")
    events, token = [], ""
    while True:
        page = server.argo.ListJobEvents(api.ListJobEventsRequest(parent=job.name, page_size=3, page_token=token))
        events.extend(page.events)
        token = page.next_page_token
        if not token:
            break
    summary = [(e.step_index, S.Name(e.step_state) if e.step_index >= 0 else J.Name(e.job_state)) for e in events]
    assert summary == [(-1, "JOB_STATE_PENDING"), (0, "STEP_STATE_DISPATCHED"), (0, "STEP_STATE_ACCEPTED"),
                       (-1, "JOB_STATE_RUNNING"), (0, "STEP_STATE_SUBMITTED"), (0, "STEP_STATE_RUNNING"),
                       (0, "STEP_STATE_SUCCEEDED"), (1, "STEP_STATE_DISPATCHED")]
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)
    assert events[2].previous_step_state == S.STEP_STATE_DISPATCHED
    assert all(e.job == job.name for e in events)


def test_two_step_job_runs_to_success(server: RunningServer, agent: FakeAgent) -> None:
    job = _create(server, two_step_job())
    job_id = job.name.split("/")[1]
    (assign0,) = agent.wait_envelopes("local", 1)
    assert assign0.step_id == f"{job_id}/0" and assign0.attempt == 1 and assign0.assign.step_count == 2
    assert [f.source_url for f in assign0.assign.inputs] == ["gsiftp://in.example/data/grid.dat"]
    agent.advance("local", f"{job_id}/0", 1, S.STEP_STATE_ACCEPTED, S.STEP_STATE_SUCCEEDED)
    (assign1,) = agent.wait_envelopes("vesta", 1)
    assert assign1.step_id == f"{job_id}/1"
    assert [f.source_url for f in assign1.assign.inputs] == [job.data_url + "events.unw"]
    assert [list(f.destination_urls) for f in assign1.assign.outputs] == [
        [job.data_url + "hits.root", "gsiftp://out.example/res/hits.root"]]
    agent.advance("vesta", f"{job_id}/1", 1, S.STEP_STATE_ACCEPTED, S.STEP_STATE_RUNNING, S.STEP_STATE_SUCCEEDED)
    done = wait_for(lambda: (j := _get(server, job.name)).state == J.JOB_STATE_SUCCEEDED and j, message="success")
    assert done.HasField("end_time")
    assert [s.state for s in done.steps] == [S.STEP_STATE_SUCCEEDED, S.STEP_STATE_SUCCEEDED]


def test_verbs_follow_the_transition_table(server: RunningServer, agent: FakeAgent) -> None:
    job = _create(server, two_step_job())
    job_id = job.name.split("/")[1]
    agent.wait_envelopes("local", 1)
    held = server.argo.HoldJob(api.HoldJobRequest(name=job.name, reason="maintenance")).job
    assert held.state == J.JOB_STATE_HELD
    (hold,) = agent.wait_envelopes("local", 1)
    assert hold.WhichOneof("action") == "hold" and hold.hold.reason == "maintenance" and hold.sequence == 2
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.HoldJob(api.HoldJobRequest(name=job.name))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.RetryJob(api.RetryJobRequest(name=job.name))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Step 0 finishes while the job is held: step 1 is not dispatched until the release.
    agent.advance("local", f"{job_id}/0", 1, S.STEP_STATE_ACCEPTED, S.STEP_STATE_SUCCEEDED)
    wait_for(lambda: _get(server, job.name).steps[0].state == S.STEP_STATE_SUCCEEDED, message="step 0 done")
    assert _get(server, job.name).steps[1].state == S.STEP_STATE_WAITING
    released = server.argo.ReleaseJob(api.ReleaseJobRequest(name=job.name)).job
    assert released.state == J.JOB_STATE_RUNNING
    assert released.steps[1].state == S.STEP_STATE_DISPATCHED
    agent.wait_envelopes("vesta", 1)
    cancelled = server.argo.CancelJob(api.CancelJobRequest(name=job.name, reason="enough")).job
    assert cancelled.state == J.JOB_STATE_CANCELLED
    (cancel,) = agent.wait_envelopes("vesta", 1)
    assert cancel.WhichOneof("action") == "cancel" and cancel.cancel.reason == "enough"
    # The site has not confirmed the cancel: a retry now could run the step twice.
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.RetryJob(api.RetryJobRequest(name=job.name))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    agent.advance("vesta", f"{job_id}/1", 1, S.STEP_STATE_CANCELLED)
    wait_for(lambda: _get(server, job.name).steps[1].state == S.STEP_STATE_CANCELLED, message="cancel confirmed")
    retried = server.argo.RetryJob(api.RetryJobRequest(name=job.name)).job
    assert retried.state == J.JOB_STATE_PENDING
    assert (retried.steps[1].state, retried.steps[1].attempt) == (S.STEP_STATE_DISPATCHED, 2)
    (assign,) = agent.wait_envelopes("vesta", 1)
    assert (assign.attempt, assign.WhichOneof("action")) == (2, "assign")
    assert assign.sequence > cancel.sequence


def test_cancel_of_waiting_steps_and_not_found(server: RunningServer) -> None:
    job = _create(server, two_step_job())
    cancelled = server.argo.CancelJob(api.CancelJobRequest(name=job.name)).job
    assert [s.state for s in cancelled.steps] == [S.STEP_STATE_DISPATCHED, S.STEP_STATE_CANCELLED]
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.CancelJob(api.CancelJobRequest(name=job.name))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.CancelJob(api.CancelJobRequest(name="jobs/nope"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_failed_step_fails_the_job_and_retry_starts_a_new_attempt(server: RunningServer, agent: FakeAgent) -> None:
    job = _create(server, one_step_job())
    step = f"{job.name.split('/')[1]}/0"
    agent.report("local", agent.update(step, 1, S.STEP_STATE_ACCEPTED),
                 agent.update(step, 1, S.STEP_STATE_FAILED, failed_phase=job_pb2.STEP_PHASE_RUN,
                              reason="segfault", exit_code=139))
    failed = wait_for(lambda: (j := _get(server, job.name)).state == J.JOB_STATE_FAILED and j, message="failed")
    assert failed.steps[0].failed_phase == job_pb2.STEP_PHASE_RUN and failed.steps[0].exit_code == 139
    assert "segfault" in failed.state_reason and "STEP_PHASE_RUN" in failed.state_reason
    retried = server.argo.RetryJob(api.RetryJobRequest(name=job.name)).job
    assert (retried.state, retried.steps[0].attempt, retried.steps[0].state) == (
        J.JOB_STATE_PENDING, 2, S.STEP_STATE_DISPATCHED)
    # A late report of attempt 1 changes nothing.
    agent.report("local", agent.update(step, 1, S.STEP_STATE_SUCCEEDED, sequence=9))
    agent.report("local", agent.update(step, 2, S.STEP_STATE_ACCEPTED))
    wait_for(lambda: _get(server, job.name).state == J.JOB_STATE_RUNNING, message="attempt 2 accepted")
    assert _get(server, job.name).steps[0].state == S.STEP_STATE_ACCEPTED


def test_watch_one_job_ends_at_its_terminal_state(server: RunningServer, agent: FakeAgent) -> None:
    job = _create(server, one_step_job())
    step = f"{job.name.split('/')[1]}/0"
    stream = server.argo.WatchJobs(api.WatchJobsRequest(name=job.name), timeout=20)
    received: list[api.WatchJobsResponse] = []
    reader = threading.Thread(target=lambda: received.extend(stream))
    reader.start()
    wait_for(lambda: received, message="initial snapshot")
    agent.advance("local", step, 1, S.STEP_STATE_ACCEPTED, S.STEP_STATE_RUNNING, S.STEP_STATE_SUCCEEDED)
    reader.join(20)
    assert not reader.is_alive()
    assert not received[0].HasField("event") and received[0].job.state == J.JOB_STATE_PENDING
    steps = [S.Name(r.event.step_state) for r in received[1:] if r.event.step_index == 0]
    assert steps == ["STEP_STATE_ACCEPTED", "STEP_STATE_RUNNING", "STEP_STATE_SUCCEEDED"]
    assert received[-1].event.job_state == J.JOB_STATE_SUCCEEDED and received[-1].event.step_index == -1


def test_watch_all_jobs_can_be_cancelled(server: RunningServer) -> None:
    stream = server.argo.WatchJobs(api.WatchJobsRequest(owner="dave"))
    received: list[api.WatchJobsResponse] = []

    def read() -> None:
        try:
            for response in stream:
                received.append(response)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.CANCELLED

    reader = threading.Thread(target=read)
    reader.start()
    wait_for(lambda: server.process.poller._subscriptions, message="subscription")
    _create(server, one_step_job(owner="erin"))
    mine = _create(server, one_step_job(owner="dave"))
    wait_for(lambda: len(received) >= 2, message="dave's events")
    assert {r.job.name for r in received} == {mine.name}
    stream.cancel()
    reader.join(5)
    assert not reader.is_alive()
    wait_for(lambda: not server.process.poller._subscriptions, message="unsubscribed")
