"""gRPC over TLS with the real server and the real client, the listen policy and the request size limit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from argo_client import ArgoClient, TlsConfig
from argo_client.errors import ArgoError, Unauthenticated
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import job_pb2

from argo_server.config import ServerConfig
from argo_server.grpc_security import check_listen

from .conftest import AuthServer, Pki, bearer


def tls_settings(pki: Pki, client_ca: bool = False) -> dict[str, object]:
    """Server settings for TLS with the test PKI."""
    settings: dict[str, object] = {"tls_cert": str(pki.server_cert), "tls_key": str(pki.server_key)}
    if client_ca:
        settings["tls_client_ca"] = str(pki.ca)
    return settings


def a_job() -> job_pb2.Job:
    """A one-step job."""
    return job_pb2.Job(steps=[job_pb2.Step(target_site="local", executable="/bin/true", nodes=1,
                                           processes_per_node=1, wall_minutes=1)])


def test_client_talks_to_the_server_over_tls_with_a_token(start_auth_server: Callable[..., AuthServer],
                                                          pki: Pki) -> None:
    server = start_auth_server(**tls_settings(pki))
    address = f"localhost:{server.process.port}"
    with ArgoClient(address, tls=TlsConfig(ca_file=str(pki.ca)), token=server.alice, timeout=5) as client:
        created = client.create_job(a_job())
        assert created.owner == "alice"
        assert [job.name for job in client.list_jobs()] == [created.name]
    with ArgoClient(address, tls=TlsConfig(ca_file=str(pki.ca)), timeout=5) as anonymous:
        with pytest.raises(Unauthenticated):
            list(anonymous.list_jobs())


def test_client_refuses_a_server_its_ca_did_not_sign(start_auth_server: Callable[..., AuthServer],
                                                     pki: Pki) -> None:
    server = start_auth_server(**tls_settings(pki))
    address = f"localhost:{server.process.port}"
    with ArgoClient(address, tls=TlsConfig(ca_file=str(pki.other_ca)), token=server.alice, timeout=3,
                    ) as client:
        with pytest.raises(ArgoError) as caught:
            client.get_job("jobs/x")
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_gets_nothing_from_a_tls_server(start_auth_server: Callable[..., AuthServer],
                                                         pki: Pki) -> None:
    server = start_auth_server(**tls_settings(pki))
    argo, _ = server.stubs(grpc.insecure_channel(server.address))
    with pytest.raises(grpc.RpcError) as caught:
        argo.ListJobs(svc.ListJobsRequest(), metadata=bearer(server.alice), timeout=3)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_client_certificates_are_required_when_a_client_ca_is_set(
        start_auth_server: Callable[..., AuthServer], pki: Pki) -> None:
    server = start_auth_server(**tls_settings(pki, client_ca=True))
    address = f"localhost:{server.process.port}"
    with ArgoClient(address, tls=TlsConfig(ca_file=str(pki.ca)), token=server.alice, timeout=3) as client:
        with pytest.raises(ArgoError) as caught:
            list(client.list_jobs())
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    mutual = TlsConfig(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    with ArgoClient(address, tls=mutual, token=server.alice, timeout=5) as client:
        assert list(client.list_jobs()) == []


@pytest.mark.parametrize(("settings", "refusal"), [
    ({}, "allow-remote"),
    ({"allow_remote": True}, "without authentication"),
    ({"allow_remote": True, "auth": True}, "without TLS"),
    ({"allow_remote": True, "auth": True, "tls_cert": "c.pem"}, "go together"),
])
def test_a_non_loopback_address_needs_remote_auth_and_tls(settings: dict[str, object], refusal: str) -> None:
    config = ServerConfig(listen="0.0.0.0:50051", **settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=refusal):
        check_listen(config)


def test_the_listen_policy_allows_loopback_and_a_fully_secured_remote_address() -> None:
    check_listen(ServerConfig(listen="127.0.0.1:0"))
    check_listen(ServerConfig(listen="[::1]:0", auth=True))
    check_listen(ServerConfig(listen="0.0.0.0:50051", allow_remote=True, auth=True, tls_cert="c.pem",
                              tls_key="k.pem"))
    with pytest.raises(ValueError, match="monitor page"):
        check_listen(ServerConfig(listen="127.0.0.1:0", monitor_listen="0.0.0.0:8080"))


def test_the_server_cli_refuses_remote_without_auth(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from argo_server.cli import main
    code = main(["--listen", "0.0.0.0:0", "--allow-remote", "--database-url", f"sqlite:///{tmp_path / 'a.db'}",
                 "--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2F"])
    assert code == 2
    assert "without authentication" in capsys.readouterr().err


def test_an_oversized_request_is_refused_before_parsing(start_auth_server: Callable[..., AuthServer]) -> None:
    server = start_auth_server(max_request_bytes=64 * 1024)
    argo, _ = server.stubs(grpc.insecure_channel(server.address))
    job = a_job()
    job.steps[0].executable_args.extend(["x" * 1000] * 100)  # ~100 KB
    with pytest.raises(grpc.RpcError) as caught:
        argo.CreateJob(svc.CreateJobRequest(job=job), metadata=bearer(server.alice), timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    del job.steps[0].executable_args[50:]  # ~50 KB: under the limit, so the size was the reason
    assert argo.CreateJob(svc.CreateJobRequest(job=job), metadata=bearer(server.alice), timeout=5).job.name
