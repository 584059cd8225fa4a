"""E-mail notices against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from argobalsam.argo.v1 import job_pb2

from argo_server.notices import MailConfig, Mailer
from tests.notices.conftest import Inbox, free_port


def finished_job(state: int = job_pb2.JOB_STATE_SUCCEEDED) -> job_pb2.Job:
    job = job_pb2.Job(name="jobs/0190abc", owner="bob", email_address="bob@example.org",
                      group_identifier="zjets", state=state, data_url="file:///data/0190abc/",
                      output_url="gsiftp://argo.example.org/out/")
    job.create_time.FromSeconds(1_700_000_000)
    job.end_time.FromSeconds(1_700_000_600)
    s0 = job.steps.add(index=0, target_site="argo_cluster", executable="zjetgen90_mpi",
                       state=job_pb2.STEP_STATE_SUCCEEDED, attempt=1, scheduler_id="4711", exit_code=0,
                       output_files=["alpout.grid1"])
    s0.start_time.FromSeconds(1_700_000_100)
    s1 = job.steps.add(index=1, target_site="vesta", executable_args=["zjetgen90_mpi", "in"],
                       state=job_pb2.STEP_STATE_FAILED if state == job_pb2.JOB_STATE_FAILED
                       else job_pb2.STEP_STATE_SUCCEEDED, attempt=2, scheduler_id="88123", exit_code=3,
                       output_files=["alpout.unw", "alpout_unw.par"])
    if state == job_pb2.JOB_STATE_FAILED:
        s1.failed_phase = job_pb2.STEP_PHASE_RUN
        s1.state_reason = "program exited with code 3"
    return job


def test_terminal_job_mails_owner_with_every_step_and_outputs(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mailer = Mailer(MailConfig(host="127.0.0.1", port=port, sender="argo@example.org"))
    mailer.notify(finished_job(job_pb2.JOB_STATE_FAILED))
    assert mailer.flush()
    mailer.stop()
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["To"] == "bob@example.org"
    assert msg["Subject"] == "ARGO job 0190abc FAILED"
    body = msg.get_payload(decode=True).decode()
    for expected in ("argo_cluster", "vesta", "4711", "88123", "exit code 3", "attempt 2",
                     "program exited with code 3", "gsiftp://argo.example.org/out/",
                     "file:///data/0190abc/", "alpout.unw", "2023-11-14 22:23:20 UTC"):
        assert expected in body, expected


def test_no_mail_for_a_running_job_unless_every_change_is_asked(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    running = finished_job()
    running.state = job_pb2.JOB_STATE_RUNNING
    event = job_pb2.JobEvent(job=running.name, job_state=running.state, step_index=1,
                             step_state=job_pb2.STEP_STATE_RUNNING)
    mailer = Mailer(MailConfig(host="127.0.0.1", port=port))
    mailer.notify(running, event)
    running.notify_every_change = True
    mailer.notify(running, event)
    assert mailer.flush()
    mailer.stop()
    assert [m["Subject"] for m in inbox.messages] == ["ARGO job 0190abc step 1 RUNNING"]


def test_no_address_or_no_host_means_no_mail(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    job = finished_job()
    job.email_address = ""
    Mailer(MailConfig(host="127.0.0.1", port=port)).notify(job)
    Mailer(MailConfig(host="")).notify(finished_job())
    time.sleep(0.2)
    assert inbox.messages == []


def test_login_with_credentials(smtp: tuple[Inbox, int]) -> None:
    inbox = Inbox()
    port = free_port()
    seen: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        good = Mailer(MailConfig(host="127.0.0.1", port=port, username="argo", password="s3cret"))
        good.notify(finished_job())
        assert good.flush()
        bad = Mailer(MailConfig(host="127.0.0.1", port=port, username="argo", password="wrong",
                                attempts=2, backoff=0.01, timeout=2))
        bad.notify(finished_job())
        assert bad.flush(timeout=30)
    finally:
        controller.stop()
    assert seen[0] == (b"argo", b"s3cret")
    assert len(inbox.messages) == 1 and good.sent == 1
    assert bad.failed == 1 and bad.sent == 0


def test_failing_mail_server_never_blocks_and_is_retried_then_logged(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens here
    mailer = Mailer(MailConfig(host="127.0.0.1", port=port, attempts=3, backoff=0.05, timeout=1))
    started = time.monotonic()
    for _ in range(5):
        mailer.notify(finished_job())
    assert time.monotonic() - started < 0.5, "notify() must not wait for the mail server"
    assert mailer.flush(timeout=30)
    mailer.stop()
    assert mailer.failed == 5 and mailer.sent == 0
    assert sum("attempt 3/3" in r.getMessage() for r in caplog.records) == 5
    assert sum("not sent after 3 attempts" in r.getMessage() for r in caplog.records) == 5
