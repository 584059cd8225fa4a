"""A bad request names every offending field at once, and nothing is written."""

from __future__ import annotations

import grpc
import pytest
import sqlalchemy as sa
from argobalsam.argo.v1 import argo_service_pb2, job_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from argo_server.db import make_engine
from argo_server.validation import validate_create, validate_list

from .conftest import RunningServer, one_step_job


def _bad_job() -> job_pb2.Job:
    return job_pb2.Job(
        owner="alice", email_address="not-an-address", group_identifier="g" * 300,
        steps=[job_pb2.Step(target_site="local", executable="/bin/true"),
               job_pb2.Step(target_site="", nodes=-1, processes_per_node=-2, wall_minutes=-3, num_evts=-5,
                            input_files=["../etc/passwd", "/abs", "", "ok.txt", "a/../../b"],
                            output_files=["x" * 300], executable_args=[]),
               job_pb2.Step(target_site="bad site!", executable="run", scheduler_args=["-q"] * 1001)])


EXPECTED_FIELDS = {
    "job.email_address", "job.group_identifier",
    "job.steps[1].target_site", "job.steps[1].executable", "job.steps[1].nodes",
    "job.steps[1].processes_per_node", "job.steps[1].wall_minutes", "job.steps[1].num_evts",
    "job.steps[1].input_files[0]", "job.steps[1].input_files[1]", "job.steps[1].input_files[2]",
    "job.steps[1].input_files[4]", "job.steps[1].output_files[0]",
    "job.steps[2].target_site", "job.steps[2].scheduler_args",
}


def test_every_bad_field_is_named() -> None:
    violations = validate_create(argo_service_pb2.CreateJobRequest(job=_bad_job()))
    assert {field for field, _ in violations} == EXPECTED_FIELDS


def test_a_good_job_has_no_violations() -> None:
    assert validate_create(argo_service_pb2.CreateJobRequest(job=one_step_job(email_address="a@b.org"))) == []


def test_no_steps_and_unknown_site() -> None:
    assert [f for f, _ in validate_create(argo_service_pb2.CreateJobRequest(job=job_pb2.Job()))] == ["job.steps"]
    request = argo_service_pb2.CreateJobRequest(job=one_step_job(site="mira"))
    assert [f for f, _ in validate_create(request, known_sites=["local", "vesta"])] == ["job.steps[0].target_site"]
    assert validate_create(request, known_sites=["mira"]) == []


def test_list_request_violations() -> None:
    request = argo_service_pb2.ListJobsRequest(page_size=-1, states=[job_pb2.JOB_STATE_RUNNING, 99, 0])
    assert {f for f, _ in validate_list(request)} == {"page_size", "states[1]", "states[2]"}


def _details(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.BadRequest | None]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    bad_request = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
    return info, bad_request


def _row_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as connection:
        counts = {table: connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                  for table in ("jobs", "steps", "job_events", "outbox", "job_sites")}
    engine.dispose()
    return counts


def test_invalid_create_is_refused_with_every_field_and_writes_nothing(server: RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.CreateJob(argo_service_pb2.CreateJobRequest(job=_bad_job(), request_id="r-bad"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, bad_request = _details(raised.value)
    assert (info.reason, info.domain) == ("INVALID_REQUEST", "argobalsam")
    assert bad_request is not None
    assert {violation.field for violation in bad_request.field_violations} == EXPECTED_FIELDS
    assert set(_row_counts(server.process.config.database_url).values()) == {0}


def test_invalid_batch_creates_nothing(server: RunningServer) -> None:
    good = argo_service_pb2.CreateJobRequest(job=one_step_job())
    bad = argo_service_pb2.CreateJobRequest(job=job_pb2.Job(owner="x"))
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.BatchCreateJobs(argo_service_pb2.BatchCreateJobsRequest(requests=[good, bad, good]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, bad_request = _details(raised.value)
    assert bad_request is not None
    assert [v.field for v in bad_request.field_violations] == ["requests[1].job.steps"]
    assert set(_row_counts(server.process.config.database_url).values()) == {0}


def test_bad_list_request_and_not_found(server: RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.ListJobs(argo_service_pb2.ListJobsRequest(page_size=-5, states=[42]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, bad_request = _details(raised.value)
    assert bad_request is not None and {v.field for v in bad_request.field_violations} == {"page_size", "states[0]"}
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.GetJob(argo_service_pb2.GetJobRequest(name="jobs/0123456789abcdef01234567"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert _details(raised.value)[0].reason == "NOT_FOUND"
    with pytest.raises(grpc.RpcError) as raised:
        server.argo.ListJobs(argo_service_pb2.ListJobsRequest(page_token="!!not a token!!"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
