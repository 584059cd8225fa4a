"""Helpers for end-to-end tests: building jobs and waiting for states."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2

TERMINAL = {job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED,
            job_pb2.JOB_STATE_REJECTED}


def one_step_job(program: str, *args: str, site: str = "local", **fields: object) -> job_pb2.Job:
    """A one-step job running ``program args`` on ``site``."""
    return job_pb2.Job(owner="tester", steps=[job_pb2.Step(
        target_site=site, executable=program, executable_args=list(args), nodes=1,
        processes_per_node=1, wall_minutes=5, **fields)])  # type: ignore[arg-type]


def wait_job(stub: argo_service_pb2_grpc.ArgoServiceStub, name: str, done: Callable[[job_pb2.Job], bool],
             timeout: float = 60.0) -> job_pb2.Job:
    """Polls GetJob until ``done(job)``; fails with the job's last state on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        job = stub.GetJob(svc.GetJobRequest(name=name)).job
        if done(job):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {name}: {job}")
        time.sleep(0.05)


def wait_terminal(stub: argo_service_pb2_grpc.ArgoServiceStub, name: str, timeout: float = 60.0) -> job_pb2.Job:
    """Waits until the job is in a terminal state."""
    return wait_job(stub, name, lambda j: j.state in TERMINAL, timeout)


def step_in(*states: int) -> Callable[[job_pb2.Job], bool]:
    """Condition: the job's current step is in one of ``states``."""
    return lambda job: job.steps[job.current_step].state in states


BROKER_RESTART_ALLOWED = os.environ.get("ARGO_TEST_BROKER_RESTART") == "1"
