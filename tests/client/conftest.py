"""A small in-memory ArgoService/SiteService on a real gRPC server (port 0) for the client's tests.

It behaves like the real server where the client depends on it (request_id idempotency, pagination,
google.rpc.Status errors with ErrorInfo and BadRequest, one-job watches ending at a terminal state) and
lets a test inject failures, e.g. UNAVAILABLE *after* a job was committed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import argo_client
import grpc
import pytest
from argobalsam.argo.v1 import (
    argo_service_pb2,
    argo_service_pb2_grpc,
    job_pb2,
    site_pb2,
    site_service_pb2,
    site_service_pb2_grpc,
)
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

TERMINAL = {job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED,
            job_pb2.JOB_STATE_REJECTED}


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, reason: str,
          violations: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
    """Aborts the call with a google.rpc.Status carrying ErrorInfo and, if given, BadRequest."""
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="argobalsam"))
    details.append(info)
    if violations:
        bad = any_pb2.Any()
        bad.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations]))
        details.append(bad)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    context.abort_with_status(rpc_status.to_status(status))


@dataclass
class FakeState:
    """What the fake server holds and what a test can inspect or inject."""

    jobs: dict[str, job_pb2.Job] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    request_ids: dict[str, str] = field(default_factory=dict)
    events: dict[str, list[job_pb2.JobEvent]] = field(default_factory=dict)
    sites: list[site_pb2.Site] = field(default_factory=list)
    create_calls: int = 0
    # Codes to fail the next CreateJob calls with, after the job was stored (as a lost reply would).
    fail_create_after_commit: list[grpc.StatusCode] = field(default_factory=list)
    # Codes to fail the next GetJob calls with, before doing anything.
    fail_get: list[grpc.StatusCode] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    next_event: int = 1

    def set_state(self, name: str, state: int, *, step: int = 0, step_state: int = 0, reason: str = "",
                  scheduler_id: str = "", exit_code: int | None = None, phase: int = 0) -> None:
        """Changes a job (and one step) and wakes the watchers, as a status update would."""
        with self.changed:
            job = self.jobs[name]
            job.state = state  # type: ignore[assignment]
            job.current_step = step
            previous = job.steps[step].state
            if step_state:
                job.steps[step].state = step_state  # type: ignore[assignment]
                job.steps[step].attempt = max(1, job.steps[step].attempt)
            if scheduler_id:
                job.steps[step].scheduler_id = scheduler_id
            if exit_code is not None:
                job.steps[step].exit_code = exit_code
            if phase:
                job.steps[step].failed_phase = phase  # type: ignore[assignment]
            job.steps[step].state_reason = reason
            job.update_time.GetCurrentTime()
            if state in TERMINAL:
                job.end_time.GetCurrentTime()
            self._event(job, step, previous, job.steps[step].state, reason, scheduler_id, exit_code, phase)
            self.changed.notify_all()

    def _event(self, job: job_pb2.Job, step: int, previous: int, new: int, reason: str, scheduler_id: str = "",
               exit_code: int | None = None, phase: int = 0) -> None:
        event = job_pb2.JobEvent(
            name=f"{job.name}/events/{self.next_event}", job=job.name, event_id=self.next_event,
            job_state=job.state, step_index=step, previous_step_state=previous,  # type: ignore[arg-type]
            step_state=new, attempt=job.steps[step].attempt if step >= 0 else 0,  # type: ignore[arg-type]
            site=job.steps[step].target_site if step >= 0 else "", scheduler_id=scheduler_id,
            exit_code=exit_code, failed_phase=phase, reason=reason,  # type: ignore[arg-type]
        )
        event.time.GetCurrentTime()
        self.next_event += 1
        self.events.setdefault(job.name, []).append(event)


class FakeArgoService(argo_service_pb2_grpc.ArgoServiceServicer):
    """ArgoService over :class:`FakeState`."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def _remember(self, context: grpc.ServicerContext) -> None:
        self.state.metadata.append({key: str(value) for key, value in context.invocation_metadata()})

    def _find(self, name: str, context: grpc.ServicerContext) -> job_pb2.Job:
        job = self.state.jobs.get(name)
        if job is None:
            abort(context, grpc.StatusCode.NOT_FOUND, f"{name} not found", "ERROR_REASON_NOT_FOUND")
        return job  # type: ignore[return-value]

    def _validate(self, job: job_pb2.Job, prefix: str) -> list[tuple[str, str]]:
        violations = []
        if not job.steps:
            violations.append((f"{prefix}steps", "must hold at least one step"))
        for index, step in enumerate(job.steps):
            if step.nodes < 1:
                violations.append((f"{prefix}steps[{index}].nodes", "must be >= 1"))
            if not step.target_site:
                violations.append((f"{prefix}steps[{index}].target_site", "must not be empty"))
        return violations

    def _store(self, request: argo_service_pb2.CreateJobRequest) -> job_pb2.Job:
        if request.request_id in self.state.request_ids:
            return self.state.jobs[self.state.request_ids[request.request_id]]
        job = job_pb2.Job()
        job.CopyFrom(request.job)
        job.name = f"jobs/{uuid.uuid4().hex[:12]}"
        job.state = job_pb2.JOB_STATE_PENDING
        job.create_time.GetCurrentTime()
        for index, step in enumerate(job.steps):
            step.name = f"{job.name}/steps/{index}"
            step.index = index
            step.state = job_pb2.STEP_STATE_WAITING
        if request.validate_only:
            job.name = ""
            return job
        with self.state.changed:
            self.state.jobs[job.name] = job
            self.state.order.insert(0, job.name)
            self.state.request_ids[request.request_id] = job.name
            self.state._event(job, -1, 0, 0, "created")
        return job

    def CreateJob(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._remember(context)
        self.state.create_calls += 1
        violations = self._validate(request.job, "job.")
        if violations:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid job", "ERROR_REASON_INVALID_REQUEST",
                  violations)
        job = self._store(request)
        if self.state.fail_create_after_commit:
            code = self.state.fail_create_after_commit.pop(0)
            abort(context, code, "reply lost", "ERROR_REASON_UNSPECIFIED")
        return argo_service_pb2.CreateJobResponse(job=job)

    def BatchCreateJobs(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._remember(context)
        violations = [v for i, r in enumerate(request.requests) for v in self._validate(r.job, f"requests[{i}].job.")]
        if violations:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid jobs", "ERROR_REASON_INVALID_REQUEST",
                  violations)
        return argo_service_pb2.BatchCreateJobsResponse(jobs=[self._store(r) for r in request.requests])

    def GetJob(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._remember(context)
        if self.state.fail_get:
            code = self.state.fail_get.pop(0)
            abort(context, code, "try again", "ERROR_REASON_UNSPECIFIED")
        return argo_service_pb2.GetJobResponse(job=self._find(request.name, context))

    def ListJobs(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._remember(context)
        if any(state not in job_pb2.JobState.values() or state == 0 for state in request.states):
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "bad filter", "ERROR_REASON_INVALID_REQUEST",
                  [("states", "unknown state")])
        matching = [
            self.state.jobs[name] for name in self.state.order
            if (not request.owner or self.state.jobs[name].owner == request.owner)
            and (not request.states or self.state.jobs[name].state in request.states)
            and (not request.site or any(s.target_site == request.site for s in self.state.jobs[name].steps))
            and (not request.group_identifier or self.state.jobs[name].group_identifier == request.group_identifier)
            and (not request.HasField("create_time_after")
                 or self.state.jobs[name].create_time.ToNanoseconds() >= request.create_time_after.ToNanoseconds())
        ]
        start = int(request.page_token or 0)
        size = request.page_size or 50
        page = matching[start:start + size]
        token = str(start + size) if start + size < len(matching) else ""
        return argo_service_pb2.ListJobsResponse(jobs=page, next_page_token=token)

    def _verb(self, request: Any, context: grpc.ServicerContext, allowed: set[Any], new: int) -> Any:
        self._remember(context)
        job = self._find(request.name, context)
        if job.state not in allowed:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                  f"{job.name} is {job_pb2.JobState.Name(job.state)}", "ERROR_REASON_INVALID_TRANSITION")
        self.state.set_state(job.name, new, step=job.current_step, reason=getattr(request, "reason", ""))
        return job

    def CancelJob(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        allowed = {job_pb2.JOB_STATE_PENDING, job_pb2.JOB_STATE_RUNNING, job_pb2.JOB_STATE_HELD}
        return argo_service_pb2.CancelJobResponse(job=self._verb(request, context, allowed, job_pb2.JOB_STATE_CANCELLED))

    def HoldJob(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        allowed = {job_pb2.JOB_STATE_PENDING, job_pb2.JOB_STATE_RUNNING}
        return argo_service_pb2.HoldJobResponse(job=self._verb(request, context, allowed, job_pb2.JOB_STATE_HELD))

    def ReleaseJob(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        allowed = {job_pb2.JOB_STATE_HELD}
        return argo_service_pb2.ReleaseJobResponse(job=self._verb(request, context, allowed, job_pb2.JOB_STATE_PENDING))

    def RetryJob(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        allowed = {job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED, job_pb2.JOB_STATE_REJECTED}
        return argo_service_pb2.RetryJobResponse(job=self._verb(request, context, allowed, job_pb2.JOB_STATE_PENDING))

    def ListJobEvents(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._remember(context)
        self._find(request.parent, context)
        events = self.state.events.get(request.parent, [])
        start = int(request.page_token or 0)
        size = request.page_size or 100
        token = str(start + size) if start + size < len(events) else ""
        return argo_service_pb2.ListJobEventsResponse(events=events[start:start + size], next_page_token=token)

    def WatchJobs(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        self._remember(context)
        if request.name:
            self._find(request.name, context)

        def matching() -> dict[str, bytes]:
            return {
                name: job.SerializeToString(deterministic=True) for name, job in self.state.jobs.items()
                if (not request.name or name == request.name)
                and (not request.owner or job.owner == request.owner)
                and (not request.group_identifier or job.group_identifier == request.group_identifier)
            }

        with self.state.changed:
            seen = matching()
            snapshot = {name: job_pb2.Job.FromString(data) for name, data in seen.items()}
        if request.send_initial or request.name:
            for job in snapshot.values():
                yield argo_service_pb2.WatchJobsResponse(job=job)
                if request.name and job.state in TERMINAL:
                    return
        while context.is_active():
            with self.state.changed:
                self.state.changed.wait(timeout=0.2)
                current = matching()
                changed = {name: job_pb2.Job.FromString(data) for name, data in current.items()
                           if seen.get(name) != data}
                seen = current
            for name, job in changed.items():
                events = self.state.events.get(name, [])
                yield argo_service_pb2.WatchJobsResponse(job=job, event=events[-1] if events else None)
                if request.name and job.state in TERMINAL:
                    return


class FakeSiteService(site_service_pb2_grpc.SiteServiceServicer):
    """SiteService over :class:`FakeState`, one site per page to exercise pagination."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def ListSites(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        start = int(request.page_token or 0)
        token = str(start + 1) if start + 1 < len(self.state.sites) else ""
        return site_service_pb2.ListSitesResponse(sites=self.state.sites[start:start + 1], next_page_token=token)

    def GetSite(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        for site in self.state.sites:
            if site.name == request.name:
                return site_service_pb2.GetSiteResponse(site=site)
        abort(context, grpc.StatusCode.NOT_FOUND, f"{request.name} not found", "ERROR_REASON_NOT_FOUND")


@dataclass
class FakeServer:
    """A running fake server: its address and state."""

    address: str
    state: FakeState
    server: grpc.Server


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """Starts the fake services (and standard health checking) on 127.0.0.1, port 0."""
    state = FakeState()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    argo_service_pb2_grpc.add_ArgoServiceServicer_to_server(FakeArgoService(state), server)
    site_service_pb2_grpc.add_SiteServiceServicer_to_server(FakeSiteService(state), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield FakeServer(address=f"127.0.0.1:{port}", state=state, server=server)
    finally:
        server.stop(grace=None)


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps the developer's own ARGO_* variables and config file out of every client test."""
    for name in ("ARGO_SERVER", "ARGO_TLS_CA", "ARGO_TLS_CERT", "ARGO_TLS_KEY", "ARGO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARGO_CONFIG", str(tmp_path / "no-config.yaml"))


@pytest.fixture
def seed_path() -> Path:
    """The seed's own example submission (from its wiki page), as shipped with the client for `argo demo`."""
    return Path(argo_client.__file__).parent / "examples" / "seed_submission.json"
