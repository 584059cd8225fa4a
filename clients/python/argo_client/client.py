"""``ArgoClient``: a small typed wrapper over the generated ArgoService and SiteService stubs.

It resolves the server address, TLS and token (argument > environment > config file), retries what is
safe to retry (reads, and ``CreateJob`` with the same ``request_id`` so a retry never creates a second
job), and turns gRPC failures into :mod:`argo_client.errors` exceptions.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from argobalsam.argo.v1 import (
    argo_service_pb2,
    argo_service_pb2_grpc,
    job_pb2,
    site_pb2,
    site_service_pb2,
    site_service_pb2_grpc,
)
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argo_client.config import Settings, TlsConfig, resolve_settings
from argo_client.errors import ArgoError, InvalidArgument, error_from_rpc
from argo_client.tracing import traced_channel

#: Job states after which nothing happens unless someone calls RetryJob.
TERMINAL_JOB_STATES = frozenset({
    job_pb2.JOB_STATE_SUCCEEDED,
    job_pb2.JOB_STATE_FAILED,
    job_pb2.JOB_STATE_CANCELLED,
    job_pb2.JOB_STATE_REJECTED,
})

#: Codes after which a call may be repeated: the request may or may not have reached the server.
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

JobRef = str | job_pb2.Job
_Response = TypeVar("_Response")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter for retryable failures.

    :ivar attempts: total tries, the first included.
    :ivar initial_backoff: upper bound of the first pause, in seconds.
    :ivar max_backoff: upper bound of any pause, in seconds.
    :ivar multiplier: growth of the bound per try.
    """

    attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def pause(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (from 0)."""
        bound = min(self.max_backoff, self.initial_backoff * self.multiplier**retry)
        # Full jitter keeps many clients that failed together from retrying together.
        return random.uniform(0, bound)


def job_name(job: JobRef) -> str:
    """The resource name ``jobs/{id}`` of a Job, a name, or a bare id.

    :raises InvalidArgument: for an empty or malformed reference.
    """
    name = job.name if isinstance(job, job_pb2.Job) else job.strip()
    if not name.startswith("jobs/"):
        name = f"jobs/{name}"
    job_id = name[len("jobs/"):]
    if not job_id or "/" in job_id:
        raise InvalidArgument(f"not a job: {job!r}", field_violations=[("name", "must be jobs/ID or ID")])
    return name


def site_name(site: str) -> str:
    """The resource name ``sites/{site}`` of a site name or resource name."""
    site = site.strip()
    name = site if site.startswith("sites/") else f"sites/{site}"
    if name == "sites/" or "/" in name[len("sites/"):]:
        raise InvalidArgument(f"not a site: {site!r}", field_violations=[("name", "must be sites/NAME or NAME")])
    return name


def job_state(value: int | str) -> int:
    """A JobState from its number or name (``running``, ``RUNNING`` or ``JOB_STATE_RUNNING``).

    :raises InvalidArgument: for an unknown name or number.
    """
    if isinstance(value, int):
        if value in job_pb2.JobState.values() and value != job_pb2.JOB_STATE_UNSPECIFIED:
            return value
    else:
        name = value.strip().upper()
        if not name.startswith("JOB_STATE_"):
            name = f"JOB_STATE_{name}"
        if name in job_pb2.JobState.keys() and name != "JOB_STATE_UNSPECIFIED":
            return job_pb2.JobState.Value(name)
    valid = ", ".join(k.removeprefix("JOB_STATE_").lower() for k in job_pb2.JobState.keys()[1:])
    raise InvalidArgument(f"unknown job state {value!r}", field_violations=[("states", f"must be one of {valid}")])


def _timestamp(moment: datetime | timestamp_pb2.Timestamp | None) -> timestamp_pb2.Timestamp | None:
    """A protobuf Timestamp; a naive datetime is taken as local time."""
    if moment is None or isinstance(moment, timestamp_pb2.Timestamp):
        return moment
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.astimezone())
    return stamp


class ArgoClient:
    """Client of one ARGO server.

    :param server: ``host:port``; default ``$ARGO_SERVER``, then the config file, then ``127.0.0.1:50051``.
    :param tls: a :class:`TlsConfig` or the path of a CA file; default ``$ARGO_TLS_CA`` (and
        ``$ARGO_TLS_CERT``/``$ARGO_TLS_KEY``), then the config file; none means plaintext.
    :param token: bearer token sent as ``authorization: Bearer ...``; default ``$ARGO_TOKEN``, then the
        config file.
    :param timeout: deadline of each unary call, in seconds.
    :param retry: backoff of retried calls.
    :param config_file: the config file (default ``$ARGO_CONFIG`` or ``~/.config/argo/config.yaml``).
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        tls: TlsConfig | str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        config_file: str | Path | None = None,
    ) -> None:
        self.settings: Settings = resolve_settings(
            server, tls=tls, token=token, config_file=Path(config_file) if config_file else None
        )
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        if self.settings.tls is not None:
            self._channel = grpc.secure_channel(self.settings.server, self.settings.tls.credentials())
        else:
            self._channel = grpc.insecure_channel(self.settings.server)
        # Every call in a CLIENT span whose traceparent the server continues (argo_client.tracing).
        self._channel = traced_channel(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {self.settings.token}"),) if self.settings.token else ()
        )
        self._jobs = argo_service_pb2_grpc.ArgoServiceStub(self._channel)
        self._sites = site_service_pb2_grpc.SiteServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    @property
    def server(self) -> str:
        """The address this client talks to."""
        return self.settings.server

    def close(self) -> None:
        """Closes the channel; the client cannot be used afterwards."""
        self._channel.close()

    def __enter__(self) -> ArgoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------------

    def _call(self, method: Callable[..., _Response], request: Any, *, retry: bool) -> _Response:
        """Calls a unary method, retrying retryable failures when ``retry`` (same request each time)."""
        tries = self.retry.attempts if retry else 1
        for number in range(tries):
            try:
                return method(request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                if number + 1 < tries and exc.code() in RETRYABLE_CODES:  # type: ignore[attr-defined]
                    time.sleep(self.retry.pause(number))
                    continue
                raise error_from_rpc(exc) from None
        raise AssertionError("unreachable: the last try returns or raises")

    # -- jobs --------------------------------------------------------------------------------------

    def create_job(self, job: job_pb2.Job, request_id: str | None = None, *,
                   validate_only: bool = False) -> job_pb2.Job:
        """Creates a job, retrying with the same ``request_id`` so that a retry never makes a second job.

        :param job: the job; output-only fields are ignored by the server.
        :param request_id: idempotency key; a new UUID when not given.
        :param validate_only: only validate; the returned job is what would have been created.
        :returns: the created job, with its name and state.
        """
        request = argo_service_pb2.CreateJobRequest(
            job=job, request_id=request_id or str(uuid.uuid4()), validate_only=validate_only
        )
        return self._call(self._jobs.CreateJob, request, retry=True).job

    def batch_create_jobs(self, jobs: Iterable[job_pb2.Job], *, validate_only: bool = False) -> list[job_pb2.Job]:
        """Creates many jobs in one transaction (all or none), each with its own retry-safe request_id."""
        request = argo_service_pb2.BatchCreateJobsRequest(requests=[
            argo_service_pb2.CreateJobRequest(job=job, request_id=str(uuid.uuid4()), validate_only=validate_only)
            for job in jobs
        ])
        return list(self._call(self._jobs.BatchCreateJobs, request, retry=True).jobs)

    def get_job(self, job: JobRef) -> job_pb2.Job:
        """Returns a job with its steps (``jobs/ID``, a bare ID, or a Job)."""
        request = argo_service_pb2.GetJobRequest(name=job_name(job))
        return self._call(self._jobs.GetJob, request, retry=True).job

    def list_jobs_page(
        self,
        *,
        owner: str | None = None,
        states: Sequence[int | str] = (),
        site: str | None = None,
        group: str | None = None,
        since: datetime | timestamp_pb2.Timestamp | None = None,
        until: datetime | timestamp_pb2.Timestamp | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> argo_service_pb2.ListJobsResponse:
        """Returns one page of jobs, newest first, with the token of the next page.

        :param states: job states (numbers or names such as ``"running"``); any of them matches.
        :param since: only jobs created at or after this time; ``until``: only before it.
        :param page_size: jobs per page (0: the server's default).
        """
        request = argo_service_pb2.ListJobsRequest(
            page_size=page_size,
            page_token=page_token,
            owner=owner or "",
            states=[job_state(state) for state in states],  # type: ignore[misc]
            site=site or "",
            group_identifier=group or "",
            create_time_after=_timestamp(since),
            create_time_before=_timestamp(until),
        )
        return self._call(self._jobs.ListJobs, request, retry=True)

    def list_jobs(
        self,
        *,
        owner: str | None = None,
        states: Sequence[int | str] = (),
        site: str | None = None,
        group: str | None = None,
        since: datetime | timestamp_pb2.Timestamp | None = None,
        until: datetime | timestamp_pb2.Timestamp | None = None,
        page_size: int = 0,
    ) -> Iterator[job_pb2.Job]:
        """Iterates over every matching job, newest first, fetching pages as needed."""
        token = ""
        while True:
            page = self.list_jobs_page(owner=owner, states=states, site=site, group=group, since=since,
                                       until=until, page_size=page_size, page_token=token)
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def cancel_job(self, job: JobRef, reason: str = "") -> job_pb2.Job:
        """Cancels a job; returns it after the change."""
        request = argo_service_pb2.CancelJobRequest(name=job_name(job), reason=reason)
        return self._call(self._jobs.CancelJob, request, retry=False).job

    def hold_job(self, job: JobRef, reason: str = "") -> job_pb2.Job:
        """Holds a job; returns it after the change."""
        request = argo_service_pb2.HoldJobRequest(name=job_name(job), reason=reason)
        return self._call(self._jobs.HoldJob, request, retry=False).job

    def release_job(self, job: JobRef) -> job_pb2.Job:
        """Releases a held job; returns it after the change."""
        request = argo_service_pb2.ReleaseJobRequest(name=job_name(job))
        return self._call(self._jobs.ReleaseJob, request, retry=False).job

    def retry_job(self, job: JobRef) -> job_pb2.Job:
        """Retries a failed, cancelled or rejected job from the step that did not succeed."""
        request = argo_service_pb2.RetryJobRequest(name=job_name(job))
        return self._call(self._jobs.RetryJob, request, retry=False).job

    def list_job_events(self, job: JobRef, *, page_size: int = 0) -> Iterator[job_pb2.JobEvent]:
        """Iterates over a job's history, oldest first, fetching pages as needed."""
        token = ""
        while True:
            request = argo_service_pb2.ListJobEventsRequest(parent=job_name(job), page_size=page_size,
                                                            page_token=token)
            page = self._call(self._jobs.ListJobEvents, request, retry=True)
            yield from page.events
            token = page.next_page_token
            if not token:
                return

    def watch(
        self,
        job: JobRef | None = None,
        *,
        owner: str | None = None,
        group: str | None = None,
        send_initial: bool = True,
        timeout: float | None = None,
    ) -> Generator[argo_service_pb2.WatchJobsResponse, None, None]:
        """Streams job changes: of one job until its terminal state, or of every matching job.

        The stream is cancelled when the generator is closed. ``timeout`` bounds the whole stream
        (:class:`argo_client.errors.Unavailable` when it expires).
        """
        request = argo_service_pb2.WatchJobsRequest(
            name=job_name(job) if job is not None else "",
            owner=owner or "",
            group_identifier=group or "",
            send_initial=send_initial,
        )
        call = self._jobs.WatchJobs(request, timeout=timeout, metadata=self._metadata)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None
        finally:
            call.cancel()

    def wait(self, job: JobRef, timeout: float | None = None) -> job_pb2.Job:
        """Waits until a job reaches a terminal state and returns it.

        Follows the job's watch stream and opens a new one when the connection drops.

        :raises TimeoutError: when ``timeout`` seconds pass first.
        """
        name = job_name(job)
        deadline = None if timeout is None else time.monotonic() + timeout
        reconnects = 0
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{name} did not finish within {timeout} s")
            try:
                for change in self.watch(name, send_initial=True, timeout=remaining):
                    if change.job.state in TERMINAL_JOB_STATES:
                        return change.job
            except ArgoError as exc:
                if exc.code == grpc.StatusCode.DEADLINE_EXCEEDED and deadline is not None \
                        and time.monotonic() >= deadline:
                    raise TimeoutError(f"{name} did not finish within {timeout} s") from None
                if exc.code != grpc.StatusCode.UNAVAILABLE or reconnects + 1 >= self.retry.attempts:
                    raise
                time.sleep(self.retry.pause(reconnects))
                reconnects += 1
                continue
            # The stream ended without a terminal state (e.g. the server shut down gracefully).
            current = self.get_job(name)
            if current.state in TERMINAL_JOB_STATES:
                return current

    # -- sites and health --------------------------------------------------------------------------

    def list_sites(self) -> list[site_pb2.Site]:
        """Every site known to the server, sorted by name, with its agent's liveness."""
        sites: list[site_pb2.Site] = []
        token = ""
        while True:
            request = site_service_pb2.ListSitesRequest(page_token=token)
            page = self._call(self._sites.ListSites, request, retry=True)
            sites.extend(page.sites)
            token = page.next_page_token
            if not token:
                return sites

    def get_site(self, site: str) -> site_pb2.Site:
        """One site (``sites/NAME`` or ``NAME``)."""
        request = site_service_pb2.GetSiteRequest(name=site_name(site))
        return self._call(self._sites.GetSite, request, retry=True).site

    def health(self, service: str = "") -> bool:
        """Whether the server's standard health service reports ``service`` (default: the server) SERVING."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = self._call(self._health.Check, request, retry=False)
        return response.status == health_pb2.HealthCheckResponse.SERVING
