"""ArgoClient against the in-test fake server: retries, errors, pagination, watch/wait, settings."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from argo_client import ArgoClient
from argo_client.client import RetryPolicy, job_name
from argo_client.config import DEFAULT_SERVER, ConfigError, TlsConfig, resolve_settings
from argo_client.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from argo_client.submission import load_submission
from argobalsam.argo.v1 import job_pb2, site_pb2

FAST = RetryPolicy(attempts=4, initial_backoff=0.01, max_backoff=0.05)


@pytest.fixture
def client(fake_server) -> Iterator[ArgoClient]:  # type: ignore[no-untyped-def]
    with ArgoClient(fake_server.address, retry=FAST, timeout=5) as client:
        yield client


def seed_job(seed_path: Path) -> job_pb2.Job:
    [job] = load_submission(seed_path)
    return job


def test_create_job_retry_after_a_lost_reply_reuses_the_request_id(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    # The first call commits the job and then fails as if the reply was lost.
    fake_server.state.fail_create_after_commit = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED]

    job = client.create_job(seed_job(seed_path))

    assert fake_server.state.create_calls == 3
    assert list(fake_server.state.jobs) == [job.name], "the retries created no second job"
    assert len(fake_server.state.request_ids) == 1
    assert job.state == job_pb2.JOB_STATE_PENDING and len(job.steps) == 2


def test_create_job_gives_up_after_the_policys_attempts(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    fake_server.state.fail_create_after_commit = [grpc.StatusCode.UNAVAILABLE] * 4

    with pytest.raises(Unavailable) as caught:
        client.create_job(seed_job(seed_path))

    assert fake_server.state.create_calls == FAST.attempts
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert len(fake_server.state.jobs) == 1


def test_explicit_request_id_returns_the_first_job(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    first = client.create_job(seed_job(seed_path), request_id="r-1")
    second = client.create_job(seed_job(seed_path), request_id="r-1")
    third = client.create_job(seed_job(seed_path), request_id="r-2")
    assert first.name == second.name != third.name
    assert len(fake_server.state.jobs) == 2


def test_invalid_argument_carries_every_field_violation(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    job = seed_job(seed_path)
    job.steps[0].nodes = 0
    job.steps[1].nodes = -3
    job.steps[1].target_site = ""

    with pytest.raises(InvalidArgument) as caught:
        client.create_job(job)

    assert caught.value.field_violations == [
        ("job.steps[0].nodes", "must be >= 1"),
        ("job.steps[1].nodes", "must be >= 1"),
        ("job.steps[1].target_site", "must not be empty"),
    ]
    assert caught.value.reason == "ERROR_REASON_INVALID_REQUEST"
    assert "job.steps[1].nodes: must be >= 1" in caught.value.describe().splitlines()
    assert fake_server.state.create_calls == 1, "bad input is not retried"
    assert not fake_server.state.jobs


def test_validate_only_creates_nothing(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    job = client.create_job(seed_job(seed_path), validate_only=True)
    assert job.name == "" and len(job.steps) == 2
    assert not fake_server.state.jobs


def test_not_found_and_failed_precondition(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound) as missing:
        client.get_job("jobs/nope")
    assert missing.value.reason == "ERROR_REASON_NOT_FOUND"

    job = client.create_job(seed_job(seed_path))
    with pytest.raises(FailedPrecondition) as refused:
        client.release_job(job)
    assert refused.value.reason == "ERROR_REASON_INVALID_TRANSITION"


def test_verbs_accept_names_ids_and_jobs(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    job = client.create_job(seed_job(seed_path))
    bare_id = job.name.removeprefix("jobs/")

    assert client.hold_job(bare_id, "maintenance").state == job_pb2.JOB_STATE_HELD
    assert client.release_job(job.name).state == job_pb2.JOB_STATE_PENDING
    assert client.cancel_job(job).state == job_pb2.JOB_STATE_CANCELLED
    assert client.retry_job(bare_id).state == job_pb2.JOB_STATE_PENDING
    reasons = [event.reason for event in client.list_job_events(bare_id)]
    assert reasons[:2] == ["created", "maintenance"]


def test_job_name_refuses_malformed_references() -> None:
    assert job_name("abc") == "jobs/abc"
    assert job_name(" jobs/abc ") == "jobs/abc"
    for bad in ("", "jobs/", "jobs/a/steps/0"):
        with pytest.raises(InvalidArgument):
            job_name(bad)


def test_reads_are_retried_on_unavailable(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    job = client.create_job(seed_job(seed_path))
    fake_server.state.fail_get = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
    assert client.get_job(job.name).name == job.name
    assert not fake_server.state.fail_get


def test_list_jobs_filters_and_walks_every_page(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    created = []
    for index in range(7):
        job = seed_job(seed_path)
        job.owner = "bob" if index % 2 == 0 else "eve"
        job.group_identifier = f"g{index % 3}"
        created.append(client.create_job(job).name)
    client.cancel_job(created[0])

    everything = list(client.list_jobs(page_size=2))
    assert [job.name for job in everything] == created[::-1]

    page = client.list_jobs_page(page_size=3)
    assert len(page.jobs) == 3 and page.next_page_token
    second = client.list_jobs_page(page_size=3, page_token=page.next_page_token)
    assert [j.name for j in second.jobs] == created[::-1][3:6]

    assert {j.name for j in client.list_jobs(owner="bob")} == set(created[0::2])
    assert [j.name for j in client.list_jobs(states=["cancelled"])] == [created[0]]
    assert {j.name for j in client.list_jobs(states=["PENDING", "JOB_STATE_HELD"], group="g1")} == \
        {created[1], created[4]}
    assert len(list(client.list_jobs(site="vesta"))) == 7
    assert list(client.list_jobs(site="mira")) == []
    with pytest.raises(InvalidArgument) as caught:
        list(client.list_jobs(states=["sleeping"]))
    assert caught.value.field_violations[0][0] == "states"


def test_wait_returns_the_terminal_job(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    job = client.create_job(seed_job(seed_path))
    state = fake_server.state

    def run() -> None:
        time.sleep(0.1)
        state.set_state(job.name, job_pb2.JOB_STATE_RUNNING, step=0, step_state=job_pb2.STEP_STATE_RUNNING)
        state.set_state(job.name, job_pb2.JOB_STATE_RUNNING, step=1, step_state=job_pb2.STEP_STATE_QUEUED)
        state.set_state(job.name, job_pb2.JOB_STATE_SUCCEEDED, step=1, step_state=job_pb2.STEP_STATE_SUCCEEDED,
                        exit_code=0)

    worker = threading.Thread(target=run)
    worker.start()
    done = client.wait(job, timeout=10)
    worker.join()

    assert done.state == job_pb2.JOB_STATE_SUCCEEDED
    assert done.steps[1].exit_code == 0


def test_wait_times_out(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    job = client.create_job(seed_job(seed_path))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.wait(job, timeout=0.5)
    assert time.monotonic() - started < 5


def test_watch_streams_changes_until_the_end(fake_server, client, seed_path) -> None:  # type: ignore[no-untyped-def]
    job = client.create_job(seed_job(seed_path))
    stream = client.watch(job)
    first = next(stream)
    assert first.job.state == job_pb2.JOB_STATE_PENDING and not first.HasField("event")

    fake_server.state.set_state(job.name, job_pb2.JOB_STATE_FAILED, step=0, step_state=job_pb2.STEP_STATE_FAILED,
                                reason="exit 3", phase=job_pb2.STEP_PHASE_RUN)
    rest = list(stream)
    assert [change.job.state for change in rest] == [job_pb2.JOB_STATE_FAILED]
    assert rest[0].event.reason == "exit 3"


def test_sites_walk_pages_and_get_site(fake_server, client) -> None:  # type: ignore[no-untyped-def]
    fake_server.state.sites = [site_pb2.Site(name=f"sites/{name}", online=name != "vesta")
                               for name in ("local", "mira", "vesta")]
    assert [site.name for site in client.list_sites()] == ["sites/local", "sites/mira", "sites/vesta"]
    assert client.get_site("vesta").online is False
    with pytest.raises(NotFound):
        client.get_site("sites/edison")


def test_health_and_token_metadata(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    with ArgoClient(fake_server.address, token="s3cret", retry=FAST) as client:
        assert client.health() is True
        client.create_job(seed_job(seed_path))
    assert fake_server.state.metadata[-1]["authorization"] == "Bearer s3cret"


def test_unreachable_server_is_unavailable_after_retries() -> None:
    with ArgoClient("127.0.0.1:1", retry=FAST, timeout=2) as client, pytest.raises(Unavailable):
        client.get_job("jobs/x")


# -- settings: flags > environment > config file ----------------------------------------------------

def test_settings_precedence(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server: file-host:1\ntoken: file-token\ntls_ca: /file/ca.pem\n")
    env = {"ARGO_SERVER": "env-host:2", "ARGO_TOKEN": "env-token"}

    from_file = resolve_settings(environ={}, config_file=config)
    assert (from_file.server, from_file.token, from_file.tls) == \
        ("file-host:1", "file-token", TlsConfig(ca_file="/file/ca.pem"))

    from_env = resolve_settings(environ=env, config_file=config)
    assert (from_env.server, from_env.token) == ("env-host:2", "env-token")

    from_flags = resolve_settings("flag-host:3", tls="/flag/ca.pem", token="flag-token", environ=env,
                                  config_file=config)
    assert (from_flags.server, from_flags.token, from_flags.tls) == \
        ("flag-host:3", "flag-token", TlsConfig(ca_file="/flag/ca.pem"))

    nothing = resolve_settings(environ={}, config_file=tmp_path / "absent.yaml")
    assert (nothing.server, nothing.token, nothing.tls) == (DEFAULT_SERVER, None, None)


def test_config_file_comes_from_argo_config(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.yaml"
    config.write_text("server: cfg-host:9\n")
    assert resolve_settings(environ={"ARGO_CONFIG": str(config)}).server == "cfg-host:9"


def test_bad_config_files_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("sever: typo:1\n")
    with pytest.raises(ConfigError, match="unknown keys sever"):
        resolve_settings(environ={}, config_file=config)
    config.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve_settings(environ={}, config_file=config)
