"""The monitor page with authentication on: 401 without a token, and each user sees only their jobs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import job_pb2

from .conftest import AuthServer, Pki, bearer


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    """GETs ``url`` (with the token as the page sends it); returns the status and the JSON body."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def job() -> job_pb2.Job:
    """A one-step job."""
    return job_pb2.Job(steps=[job_pb2.Step(target_site="local", executable="/bin/true", nodes=1,
                                           processes_per_node=1, wall_minutes=1)])


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_monitor_needs_a_token_and_shows_only_the_users_jobs(
        start_auth_server: Callable[..., AuthServer], pki: Pki, tls: bool) -> None:
    settings: dict[str, object] = {"monitor_listen": "127.0.0.1:0"}
    if tls:  # the page's own channel to a TLS server trusts the server's certificate chain
        settings.update(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key))
    server = start_auth_server(**settings)
    assert server.process.monitor is not None
    base = f"http://127.0.0.1:{server.process.monitor.port}"
    if tls:
        credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes())
        channel = grpc.secure_channel(f"localhost:{server.process.port}", credentials)
    else:
        channel = grpc.insecure_channel(server.address)
    argo, _ = server.stubs(channel)
    alices = argo.CreateJob(svc.CreateJobRequest(job=job()), metadata=bearer(server.alice)).job
    bobs = argo.CreateJob(svc.CreateJobRequest(job=job()), metadata=bearer(server.bob)).job
    alice_id, bob_id = alices.name.split("/")[1], bobs.name.split("/")[1]

    for path in ("/api/jobs", f"/api/jobs/{alice_id}", f"/api/jobs/{alice_id}/events", "/api/sites"):
        status, body = get(base + path)
        assert (status, body["code"]) == (401, "UNAUTHENTICATED"), path
        assert get(base + path, "argo_0123456789abcdef_" + "x" * 43)[0] == 401
    status, body = get(base + "/api/jobs", server.bob)
    assert status == 200
    assert [j["name"] for j in body["jobs"]] == [bobs.name]
    assert get(base + f"/api/jobs/{alice_id}", server.bob)[0] == 404
    assert get(base + f"/api/jobs/{alice_id}/events", server.bob)[0] == 404
    assert get(base + f"/api/jobs/{bob_id}", server.bob)[0] == 200
    status, body = get(base + "/api/jobs", server.admin)
    assert sorted(j["owner"] for j in body["jobs"]) == ["alice", "bob"]
    # The page itself loads without a token and carries the sign-in form that supplies one.
    with urllib.request.urlopen(base + "/", timeout=10) as response:
        page = response.read().decode()
    assert 'id="signin"' in page and 'id="token-input"' in page
    channel.close()
