"""The client and CLI against the real argo_server (SQLite in tmp_path, the real RabbitMQ broker)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from argo_client import ArgoClient, FailedPrecondition, InvalidArgument, NotFound, RetryPolicy, cli
from argo_client.submission import load_submission
from argobalsam.argo.v1 import job_pb2

argo_app = pytest.importorskip("argo_server.app")
argo_config = pytest.importorskip("argo_server.config")


@pytest.fixture
def server(tmp_path: Path, amqp_url: str, amqp_prefix: str) -> Iterator[str]:
    """A real server process object on port 0; yields its address."""
    config = argo_config.ServerConfig(
        listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'argo.db'}", amqp_url=amqp_url,
        amqp_prefix=amqp_prefix, data_root=(tmp_path / "data").as_uri(), max_workers=8,
    )
    process = argo_app.ServerProcess(config)
    port = process.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.stop(grace=0.5)


@pytest.fixture
def client(server: str) -> Iterator[ArgoClient]:
    with ArgoClient(server, timeout=10, retry=RetryPolicy(attempts=3, initial_backoff=0.05)) as client:
        yield client


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return cli.main(list(argv), out=out, err=err), out.getvalue(), err.getvalue()


def test_seed_submission_round_trip(client: ArgoClient, seed_path: Path) -> None:
    [job] = load_submission(seed_path)
    assert client.health()

    checked = client.create_job(job, validate_only=True)
    assert not list(client.list_jobs()), "validate_only created nothing"
    assert len(checked.steps) == 2

    created = client.create_job(job, request_id="seed-1")
    again = client.create_job(job, request_id="seed-1")
    assert created.name == again.name
    assert [j.name for j in client.list_jobs()] == [created.name]

    stored = client.get_job(created.name.removeprefix("jobs/"))
    assert stored.owner == "bob" and stored.email_address == "bob@example.org"
    assert [s.target_site for s in stored.steps] == ["argo_cluster", "vesta"]
    assert list(stored.steps[1].executable_args) == ["zjetgen90_mpi", "alpout.input.1", "alpout.input.2", "32"]
    assert list(stored.steps[1].scheduler_args) == ["--mode=script"]
    assert list(stored.steps[1].postprocess_args) == ["alpout"]
    assert stored.steps[0].num_evts == -1 and stored.steps[1].processes_per_node == 32

    assert [j.name for j in client.list_jobs(owner="bob", site="vesta", states=["pending", "running"])] == \
        [created.name]
    assert list(client.list_jobs(owner="alice")) == []
    assert list(client.list_job_events(created))


def test_errors_from_the_real_server(client: ArgoClient, seed_path: Path) -> None:
    [job] = load_submission(seed_path)
    job.steps[0].nodes = -1
    job.steps[1].wall_minutes = -5
    with pytest.raises(InvalidArgument) as caught:
        client.create_job(job)
    fields = [field for field, _ in caught.value.field_violations]
    assert any("steps[0].nodes" in field for field in fields), fields
    assert any("steps[1].wall_minutes" in field for field in fields), fields

    with pytest.raises(NotFound):
        client.get_job("jobs/does-not-exist")

    [job] = load_submission(seed_path)
    created = client.create_job(job)
    with pytest.raises(FailedPrecondition):
        client.release_job(created)


def test_cli_against_the_real_server(server: str, seed_path: Path) -> None:
    code, out, err = run_cli("--server", server, "submit", str(seed_path), "-o", "json")
    assert code == 0, err
    name = json.loads(out)["name"]

    code, out, _ = run_cli("--server", server, "show", name)
    assert code == 0 and out.startswith(name) and "argo_cluster" in out and "History:" in out

    code, out, _ = run_cli("--server", server, "list", "-o", "json")
    assert [job["name"] for job in json.loads(out)["jobs"]] == [name]

    assert run_cli("--server", server, "hold", name)[:2] == (0, f"{name}: HELD\n")
    assert run_cli("--server", server, "release", name)[0] == 0

    # Cancelling while watching ends the watch with exit code 1 (not SUCCEEDED).
    result: dict[str, int] = {}
    watcher = threading.Thread(target=lambda: result.update(code=run_cli("--server", server, "watch", name)[0]))
    watcher.start()
    assert run_cli("--server", server, "cancel", name, "--reason", "test")[0] == 0
    watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert result["code"] == cli.EXIT_NOT_SUCCEEDED

    code, _, err = run_cli("--server", server, "cancel", name)
    assert code == cli.EXIT_USER_ERROR, err
    assert run_cli("--server", server, "show", "jobs/nope")[0] == cli.EXIT_NOT_FOUND
    code, out, _ = run_cli("--server", server, "sites", "-o", "json")
    assert code == 0 and "sites" in json.loads(out)


def test_wait_returns_a_cancelled_job(client: ArgoClient, seed_path: Path) -> None:
    [job] = load_submission(seed_path)
    created = client.create_job(job)
    threading.Timer(0.2, client.cancel_job, args=(created,)).start()
    done = client.wait(created, timeout=20)
    assert done.state == job_pb2.JOB_STATE_CANCELLED
