"""Hostile CreateJob requests: random Job messages (and random bytes as the request) get OK or
INVALID_ARGUMENT from the real server, never INTERNAL or a hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argo_server.app import ServerProcess
from argo_server.config import ServerConfig

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
INT32 = st.integers(min_value=-2**31, max_value=2**31 - 1)
_text = st.text(max_size=40) | st.sampled_from(["", "..", "../etc/passwd", "/abs", "a/../../b", "x" * 300,
                                                "local", "vesta", "\x00", "a\nb", "-rf", "$(id)", "*"])
_names = st.lists(_text, max_size=5)
_steps = st.builds(
    job_pb2.Step, target_site=_text, executable=_text, executable_args=_names, input_files=_names,
    output_files=_names, nodes=INT32, processes_per_node=INT32, num_evts=st.integers(-2**63, 2**63 - 1),
    wall_minutes=INT32, scheduler_args=_names, preprocess=_text, postprocess=_text, preprocess_args=_names,
    postprocess_args=_names, condor_job_file=_text, condor_dagman_file=_text,
    state=st.sampled_from(list(job_pb2.StepState.values())), scheduler_id=_text, attempt=INT32)
_jobs = st.builds(job_pb2.Job, name=_text, owner=_text, email_address=_text, group_identifier=_text,
                  input_url=_text, output_url=_text, preprocess=_text, postprocess=_text,
                  steps=st.lists(_steps, max_size=4), state=st.sampled_from(list(job_pb2.JobState.values())))


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[argo_service_pb2_grpc.ArgoServiceStub]:
    """A server without broker loops (the outbox just fills) and a stub."""
    root: Path = tmp_path_factory.mktemp("fuzz-create")
    process = ServerProcess(ServerConfig(listen="127.0.0.1:0", database_url=f"sqlite:///{root / 'argo.db'}",
                                         data_root=(root / "data").as_uri(), run_background=False))
    port = process.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = argo_service_pb2_grpc.ArgoServiceStub(channel)
    stub.channel = channel  # type: ignore[attr-defined]
    yield stub
    channel.close()
    process.stop(grace=0.5)


def code_of(call: object) -> grpc.StatusCode:
    """The status code of a call (OK when it returned)."""
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as error:
        return error.code()  # type: ignore[attr-defined,no-any-return]
    return grpc.StatusCode.OK


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job=_jobs, validate_only=st.booleans(), request_id=_text)
def test_random_jobs_are_created_or_refused_as_invalid(stub: argo_service_pb2_grpc.ArgoServiceStub,
                                                       job: job_pb2.Job, validate_only: bool,
                                                       request_id: str) -> None:
    request = svc.CreateJobRequest(job=job, validate_only=validate_only, request_id=request_id)
    assert code_of(lambda: stub.CreateJob(request, timeout=10)) in ALLOWED
    batch = svc.BatchCreateJobsRequest(requests=[svc.CreateJobRequest(job=job, validate_only=True)] * 2)
    assert code_of(lambda: stub.BatchCreateJobs(batch, timeout=10)) in ALLOWED


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_as_a_request_never_crash_the_server(stub: argo_service_pb2_grpc.ArgoServiceStub,
                                                          body: bytes) -> None:
    raw = stub.channel.unary_unary("/argobalsam.argo.v1.ArgoService/CreateJob",  # type: ignore[attr-defined]
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
    code = code_of(lambda: raw(body, timeout=10))
    try:
        svc.CreateJobRequest.FromString(body)
    except DecodeError:
        # gRPC itself refuses bytes it cannot deserialize (INTERNAL, before any servicer code).
        assert code == grpc.StatusCode.INTERNAL
    else:
        assert code in ALLOWED


def test_a_request_with_thousands_of_bad_fields_still_gets_its_violations(
        stub: argo_service_pb2_grpc.ArgoServiceStub) -> None:
    """The error travels in trailing metadata (16 KiB at most): the list is cut with a count of the
    rest, so the client sees INVALID_ARGUMENT, not RESOURCE_EXHAUSTED."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status
    job = job_pb2.Job(steps=[job_pb2.Step(target_site="local", executable="x", nodes=1, processes_per_node=1,
                                          wall_minutes=1, input_files=["../é" * 20] * 900)])
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateJob(svc.CreateJobRequest(job=job), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad_request) for detail in status.details)
    violations = bad_request.field_violations
    assert violations[0].field == "job.steps[0].input_files[0]"
    assert violations[-1].description.endswith("more problems not shown")
