"""Bearer tokens and ownership: who may call, and whose jobs each caller sees and changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import job_pb2, site_service_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from argo_server.auth import bearer_token
from argo_server.token_cli import main as token_main

from .conftest import AuthServer, bearer


def a_job(owner: str = "", site: str = "local") -> job_pb2.Job:
    """A one-step job (not run: these servers have no broker loops)."""
    return job_pb2.Job(owner=owner, steps=[job_pb2.Step(target_site=site, executable="/bin/true", nodes=1,
                                                        processes_per_node=1, wall_minutes=1)])


def error_info(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """The code, ErrorInfo reason and metadata of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return error.code(), info.reason, dict(info.metadata)  # type: ignore[attr-defined]
    raise AssertionError(f"no ErrorInfo in {status}")


@pytest.fixture
def auth_server(start_auth_server: Callable[..., AuthServer]) -> AuthServer:
    """A server with authentication on."""
    return start_auth_server()


@pytest.fixture
def channel(auth_server: AuthServer) -> grpc.Channel:
    """A plain channel to it."""
    return grpc.insecure_channel(auth_server.address)


def create(server: AuthServer, channel: grpc.Channel, token: str, owner: str = "") -> job_pb2.Job:
    """Creates a job as the token's user."""
    argo, _ = server.stubs(channel)
    return argo.CreateJob(svc.CreateJobRequest(job=a_job(owner)), metadata=bearer(token)).job


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer "),), (("authorization", "Basic YTpi"),),
                                      (("authorization", "Bearer argo_0123456789abcdef_" + "A" * 43),),
                                      (("authorization", "Bearer not-a-token"),)],
                         ids=["none", "empty", "basic", "unknown", "malformed"])
def test_calls_without_a_valid_token_are_unauthenticated(auth_server: AuthServer, channel: grpc.Channel,
                                                         metadata: tuple[tuple[str, str], ...]) -> None:
    argo, sites = auth_server.stubs(channel)
    calls = [lambda: argo.ListJobs(svc.ListJobsRequest(), metadata=metadata),
             lambda: argo.CreateJob(svc.CreateJobRequest(job=a_job()), metadata=metadata),
             lambda: list(argo.WatchJobs(svc.WatchJobsRequest(), metadata=metadata, timeout=5)),
             lambda: sites.ListSites(site_service_pb2.ListSitesRequest(), metadata=metadata)]
    for call in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        code, reason, _ = error_info(caught.value)
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    with sa.create_engine(auth_server.process.config.database_url).connect() as connection:
        assert connection.execute(sa.text("select count(*) from jobs")).scalar() == 0


def test_a_valid_token_is_accepted_and_the_health_check_needs_none(auth_server: AuthServer,
                                                                   channel: grpc.Channel) -> None:
    argo, _ = auth_server.stubs(channel)
    assert argo.ListJobs(svc.ListJobsRequest(), metadata=bearer(auth_server.alice)).jobs == []
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_needs_a_token(auth_server: AuthServer, channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    [reply] = list(stub.ServerReflectionInfo(iter([request]), metadata=bearer(auth_server.bob), timeout=5))
    assert "argobalsam.argo.v1.ArgoService" in {s.name for s in reply.list_services_response.service}


def test_a_revoked_token_is_refused(auth_server: AuthServer, channel: grpc.Channel) -> None:
    argo, _ = auth_server.stubs(channel)
    argo.ListJobs(svc.ListJobsRequest(), metadata=bearer(auth_server.bob))
    assert auth_server.tokens.revoke(auth_server.bob.split("_")[1])
    with pytest.raises(grpc.RpcError) as caught:
        argo.ListJobs(svc.ListJobsRequest(), metadata=bearer(auth_server.bob))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    argo.ListJobs(svc.ListJobsRequest(), metadata=bearer(auth_server.alice))  # others unaffected


def test_a_token_with_a_wrong_secret_is_refused(auth_server: AuthServer, channel: grpc.Channel) -> None:
    argo, _ = auth_server.stubs(channel)
    forged = auth_server.alice[:-1] + ("A" if auth_server.alice[-1] != "A" else "B")
    with pytest.raises(grpc.RpcError) as caught:
        argo.ListJobs(svc.ListJobsRequest(), metadata=bearer(forged))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


def test_tokens_are_stored_hashed(auth_server: AuthServer) -> None:
    with sa.create_engine(auth_server.process.config.database_url).connect() as connection:
        dump = " ".join(str(value) for row in connection.execute(sa.text("select * from tokens"))
                        for value in row)
    for token in (auth_server.alice, auth_server.bob, auth_server.admin):
        assert token.split("_")[1] in dump  # the id is stored ...
        assert token.split("_", 2)[2] not in dump  # ... the secret is not


def test_bearer_token_parsing() -> None:
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("Authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("x-other", "Bearer abc")]) is None
    assert bearer_token(None) is None


# ---------------------------------------------------------------- ownership


def test_create_sets_the_owner_from_the_token(auth_server: AuthServer, channel: grpc.Channel) -> None:
    assert create(auth_server, channel, auth_server.alice).owner == "alice"
    assert create(auth_server, channel, auth_server.alice, owner="alice").owner == "alice"


def test_a_user_cannot_create_a_job_for_someone_else(auth_server: AuthServer, channel: grpc.Channel) -> None:
    argo, _ = auth_server.stubs(channel)
    with pytest.raises(grpc.RpcError) as caught:
        argo.CreateJob(svc.CreateJobRequest(job=a_job("alice")), metadata=bearer(auth_server.bob))
    code, reason, metadata = error_info(caught.value)
    assert (code, reason, metadata["field"]) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                                                 "job.owner")
    batch = svc.BatchCreateJobsRequest(requests=[svc.CreateJobRequest(job=a_job()),
                                                 svc.CreateJobRequest(job=a_job("alice"))])
    with pytest.raises(grpc.RpcError) as caught:
        argo.BatchCreateJobs(batch, metadata=bearer(auth_server.bob))
    assert error_info(caught.value)[2]["field"] == "requests[1].job.owner"
    assert argo.ListJobs(svc.ListJobsRequest(), metadata=bearer(auth_server.admin)).jobs == []


def test_an_admin_may_create_for_anyone_and_sees_everything(auth_server: AuthServer,
                                                            channel: grpc.Channel) -> None:
    argo, _ = auth_server.stubs(channel)
    assert create(auth_server, channel, auth_server.admin, owner="alice").owner == "alice"
    create(auth_server, channel, auth_server.bob)
    owners = sorted(j.owner for j in argo.ListJobs(svc.ListJobsRequest(), metadata=bearer(auth_server.admin)).jobs)
    assert owners == ["alice", "bob"]
    only_bob = argo.ListJobs(svc.ListJobsRequest(owner="bob"), metadata=bearer(auth_server.admin)).jobs
    assert [j.owner for j in only_bob] == ["bob"]


def test_other_users_jobs_are_not_found(auth_server: AuthServer, channel: grpc.Channel) -> None:
    argo, _ = auth_server.stubs(channel)
    job = create(auth_server, channel, auth_server.alice)
    missing = "jobs/" + "0" * len(job.name.split("/")[1])
    as_bob = bearer(auth_server.bob)
    calls: list[Callable[[str], object]] = [
        lambda name: argo.GetJob(svc.GetJobRequest(name=name), metadata=as_bob),
        lambda name: argo.CancelJob(svc.CancelJobRequest(name=name), metadata=as_bob),
        lambda name: argo.HoldJob(svc.HoldJobRequest(name=name), metadata=as_bob),
        lambda name: argo.ReleaseJob(svc.ReleaseJobRequest(name=name), metadata=as_bob),
        lambda name: argo.RetryJob(svc.RetryJobRequest(name=name), metadata=as_bob),
        lambda name: argo.ListJobEvents(svc.ListJobEventsRequest(parent=name), metadata=as_bob),
        lambda name: list(argo.WatchJobs(svc.WatchJobsRequest(name=name), metadata=as_bob, timeout=5)),
    ]
    for call in calls:
        answers = []
        for name in (job.name, missing):
            with pytest.raises(grpc.RpcError) as caught:
                call(name)
            code, reason, metadata = error_info(caught.value)
            details = str(caught.value.details())  # type: ignore[attr-defined]
            answers.append((code, reason, details.replace(name, "NAME")))
        # Someone else's job and a job that does not exist get the same answer.
        assert answers[0] == answers[1]
        assert answers[0][:2] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    mine = argo.GetJob(svc.GetJobRequest(name=job.name), metadata=bearer(auth_server.alice)).job
    assert mine.state == job_pb2.JOB_STATE_PENDING  # untouched by bob's cancel and hold
    argo.CancelJob(svc.CancelJobRequest(name=job.name), metadata=bearer(auth_server.admin))


def test_listing_shows_only_the_callers_jobs(auth_server: AuthServer, channel: grpc.Channel) -> None:
    argo, _ = auth_server.stubs(channel)
    for _ in range(3):
        create(auth_server, channel, auth_server.alice)
    create(auth_server, channel, auth_server.bob)
    assert {j.owner for j in argo.ListJobs(svc.ListJobsRequest(), metadata=bearer(auth_server.bob)).jobs} == {"bob"}
    alice_jobs = argo.ListJobs(svc.ListJobsRequest(site="local"), metadata=bearer(auth_server.alice)).jobs
    assert [j.owner for j in alice_jobs] == ["alice"] * 3
    with pytest.raises(grpc.RpcError) as caught:
        argo.ListJobs(svc.ListJobsRequest(owner="alice"), metadata=bearer(auth_server.bob))
    code, reason, metadata = error_info(caught.value)
    assert (code, metadata["field"]) == (grpc.StatusCode.PERMISSION_DENIED, "owner")


def test_watching_all_jobs_shows_only_the_callers(auth_server: AuthServer, channel: grpc.Channel) -> None:
    argo, _ = auth_server.stubs(channel)
    create(auth_server, channel, auth_server.alice)
    bobs = create(auth_server, channel, auth_server.bob)
    stream = argo.WatchJobs(svc.WatchJobsRequest(send_initial=True), metadata=bearer(auth_server.bob), timeout=10)
    first = next(stream)
    assert first.job.name == bobs.name
    # A change to alice's job must not reach bob; a change to his own does, and comes next.
    alices = create(auth_server, channel, auth_server.alice)
    argo.CancelJob(svc.CancelJobRequest(name=alices.name), metadata=bearer(auth_server.alice))
    argo.CancelJob(svc.CancelJobRequest(name=bobs.name), metadata=bearer(auth_server.bob))
    for change in stream:
        assert change.job.owner == "bob", change
        if change.job.state == job_pb2.JOB_STATE_CANCELLED:
            break
    stream.cancel()  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the admin command


def test_token_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    assert token_main(["--database-url", url, "create", "--user", "carol", "--description", "laptop"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("argo_")
    assert token_main(["list", "--database-url", url]) == 0
    listing = capsys.readouterr().out
    token_id = token.split("_")[1]
    assert token_id in listing and "carol" in listing and "active" in listing
    assert token.split("_", 2)[2] not in listing
    assert token_main(["revoke", token_id, "--database-url", url]) == 0
    assert token_main(["list", "--database-url", url]) == 0
    assert "revoked" in capsys.readouterr().out
    assert token_main(["revoke", token_id, "--database-url", url]) == 3
    assert token_main(["--database-url", url, "create", "--user", "bad name;rm"]) == 2
