"""Notices from a running server: real server processes, broker, agent and SMTP server (aiosmtpd)."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from argo_client.local_stack import LocalStack
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2

from tests.notices.conftest import Inbox


def test_two_replicas_mail_each_finished_job_once(tmp_path: Path, amqp_url: str, amqp_prefix: str,
                                                  smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    site_bin = tmp_path / "bin"
    site_bin.mkdir()
    for name, code in (("ok", 0), ("fail", 4)):
        (site_bin / name).write_text(f"#!/bin/sh\nexit {code}\n")
        (site_bin / name).chmod(0o755)
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    args = ["--smtp", f"127.0.0.1:{port}"]
    first = LocalStack(tmp_path / "one", amqp_url=amqp_url, amqp_prefix=amqp_prefix, database_url=database,
                       server_args=args)
    second = LocalStack(tmp_path / "two", amqp_url=amqp_url, amqp_prefix=amqp_prefix, database_url=database,
                        server_args=args)
    try:
        first.start_server()
        second.start_server()
        first.start_agent("local", site_options={"allowed_exec_dir": str(site_bin),
                                                 "work_root": str(tmp_path / "work")})
        names = {}
        with grpc.insecure_channel(first.address) as channel:
            stub = argo_service_pb2_grpc.ArgoServiceStub(channel)
            for program in ("ok", "fail"):
                job = job_pb2.Job(owner="bob", email_address="bob@example.org", steps=[job_pb2.Step(
                    target_site="local", executable=program, nodes=1, processes_per_node=1, wall_minutes=1)])
                names[program] = stub.CreateJob(svc.CreateJobRequest(job=job)).job.name.removeprefix("jobs/")
            quiet = job_pb2.Job(owner="carol", steps=[job_pb2.Step(target_site="local", executable="ok")])
            stub.CreateJob(svc.CreateJobRequest(job=quiet))  # no e-mail address: no notice
        deadline = time.monotonic() + 60
        while len(inbox.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # long enough for a duplicate from the other replica to arrive
    finally:
        first.stop()
        second.stop()
    subjects = sorted(m["Subject"] for m in inbox.messages)
    assert subjects == sorted([f"ARGO job {names['ok']} SUCCEEDED", f"ARGO job {names['fail']} FAILED"])
    failed = next(m for m in inbox.messages if "FAILED" in m["Subject"])
    body = failed.get_payload(decode=True).decode()
    assert "exit code 4" in body and "local" in body and "data area: file://" in body
