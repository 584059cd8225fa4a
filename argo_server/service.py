"""ArgoService: the gRPC API of jobs."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from argobalsam.argo.v1 import argo_service_pb2, argo_service_pb2_grpc, job_pb2
from opentelemetry import trace

from . import auth, errors, tracing, validation
from .ids import parse_job_name
from .store import JobStore
from .transitions import JOB_TERMINAL
from .watch import EventPoller

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


tracer = trace.get_tracer("argo_server")


def rpc(method: F) -> F:
    """Runs a unary method in a span; turns ApiError into a rich gRPC status and any other exception
    into INTERNAL (logged). The call's SERVER span (:class:`argo_server.tracing.ServerTracingInterceptor`)
    is current while the method writes its outbox rows, so its context travels with the envelopes."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except errors.ApiError as error:
            errors.abort(context, error)
        except Exception as error:
            trace.get_current_span().record_exception(error)
            log.exception("%s failed", method.__name__)
            errors.abort(context, errors.internal())

    return wrapper  # type: ignore[return-value]


def job_id_of(name: str, field: str = "name") -> str:
    """The job id of a ``jobs/{job}`` name (INVALID_ARGUMENT when it is not one)."""
    job_id = parse_job_name(name)
    if job_id is None:
        raise errors.invalid_request([(field, "must be jobs/{job}")])
    return job_id


class ArgoService(argo_service_pb2_grpc.ArgoServiceServicer):
    """Jobs: create, read, list, lifecycle verbs, history and live changes."""

    def __init__(self, store: JobStore, poller: EventPoller, known_sites: list[str] | None = None) -> None:
        self.store = store
        self.poller = poller
        self.known_sites = known_sites

    @rpc
    def CreateJob(self, request: argo_service_pb2.CreateJobRequest,  # noqa: N802 - gRPC method name
                  context: grpc.ServicerContext) -> argo_service_pb2.CreateJobResponse:
        """Creates a job with its first step dispatched (or returns the request_id's first job)."""
        auth.claim_owner(request.job, "job.owner")
        violations = validation.validate_create(request, self.known_sites)
        if violations:
            raise errors.invalid_request(violations)
        if request.validate_only:
            return argo_service_pb2.CreateJobResponse(job=request.job)
        job = self.store.create_job(request)
        tracing.annotate_job(job)
        return argo_service_pb2.CreateJobResponse(job=job)

    @rpc
    def BatchCreateJobs(self, request: argo_service_pb2.BatchCreateJobsRequest,  # noqa: N802
                        context: grpc.ServicerContext) -> argo_service_pb2.BatchCreateJobsResponse:
        """Creates every job of the batch in one transaction, or none."""
        if len(request.requests) > validation.MAX_BATCH:
            raise errors.invalid_request([("requests", f"more than {validation.MAX_BATCH} requests")])
        violations: validation.Violations = []
        for position, create in enumerate(request.requests):
            auth.claim_owner(create.job, f"requests[{position}].job.owner")
            violations.extend(validation.validate_create(create, self.known_sites, f"requests[{position}]"))
        if violations:
            raise errors.invalid_request(violations)
        todo = [create for create in request.requests if not create.validate_only]
        jobs = iter(self.store.create_jobs(todo)) if todo else iter(())
        return argo_service_pb2.BatchCreateJobsResponse(
            jobs=[create.job if create.validate_only else next(jobs) for create in request.requests])

    @rpc
    def GetJob(self, request: argo_service_pb2.GetJobRequest,  # noqa: N802
               context: grpc.ServicerContext) -> argo_service_pb2.GetJobResponse:
        """Returns one job."""
        job = self.store.get_job(job_id_of(request.name))
        if job is None or not auth.may_see(job.owner):
            raise errors.not_found("job", request.name)
        return argo_service_pb2.GetJobResponse(job=job)

    @rpc
    def ListJobs(self, request: argo_service_pb2.ListJobsRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> argo_service_pb2.ListJobsResponse:
        """Lists jobs newest first."""
        violations = validation.validate_list(request)
        if violations:
            raise errors.invalid_request(violations)
        jobs, token = self.store.list_jobs(auth.scoped_list_request(request))
        return argo_service_pb2.ListJobsResponse(jobs=jobs, next_page_token=token)

    def _verb(self, name: str, verb: str, reason: str = "") -> job_pb2.Job:
        job_id = job_id_of(name)
        auth.check_job_access(self.store.db, job_id, name)
        return self.store.change_job(job_id, verb, reason)

    @rpc
    def CancelJob(self, request: argo_service_pb2.CancelJobRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> argo_service_pb2.CancelJobResponse:
        """Cancels a job."""
        return argo_service_pb2.CancelJobResponse(job=self._verb(request.name, "cancel", request.reason))

    @rpc
    def HoldJob(self, request: argo_service_pb2.HoldJobRequest,  # noqa: N802
                context: grpc.ServicerContext) -> argo_service_pb2.HoldJobResponse:
        """Holds a job."""
        return argo_service_pb2.HoldJobResponse(job=self._verb(request.name, "hold", request.reason))

    @rpc
    def ReleaseJob(self, request: argo_service_pb2.ReleaseJobRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> argo_service_pb2.ReleaseJobResponse:
        """Releases a held job."""
        return argo_service_pb2.ReleaseJobResponse(job=self._verb(request.name, "release"))

    @rpc
    def RetryJob(self, request: argo_service_pb2.RetryJobRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> argo_service_pb2.RetryJobResponse:
        """Retries a failed, cancelled or rejected job from its first unfinished step."""
        return argo_service_pb2.RetryJobResponse(job=self._verb(request.name, "retry"))

    @rpc
    def ListJobEvents(self, request: argo_service_pb2.ListJobEventsRequest,  # noqa: N802
                      context: grpc.ServicerContext) -> argo_service_pb2.ListJobEventsResponse:
        """A job's history, oldest first."""
        if request.page_size < 0:
            raise errors.invalid_request([("page_size", "must not be negative")])
        job_id = job_id_of(request.parent, "parent")
        auth.check_job_access(self.store.db, job_id, request.parent)
        events, token = self.store.list_events(job_id, request.page_size, request.page_token)
        return argo_service_pb2.ListJobEventsResponse(events=events, next_page_token=token)

    def WatchJobs(self, request: argo_service_pb2.WatchJobsRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> Iterator[argo_service_pb2.WatchJobsResponse]:
        """Streams job changes; a watch of one job ends after its terminal event."""
        try:
            job_id = job_id_of(request.name) if request.name else None
            if job_id is not None:
                auth.check_job_access(self.store.db, job_id, request.name)
            owner = auth.scope_owner(request.owner)
            if owner != request.owner:
                scoped = argo_service_pb2.WatchJobsRequest()
                scoped.CopyFrom(request)
                scoped.owner = owner
                request = scoped
            subscription = self.poller.subscribe(job_id)
            try:
                yield from self._watch(request, context, job_id, subscription)
            finally:
                self.poller.unsubscribe(subscription)
        except errors.ApiError as error:
            errors.abort(context, error)

    def _watch(self, request: argo_service_pb2.WatchJobsRequest, context: grpc.ServicerContext,
               job_id: str | None, subscription: Any) -> Iterator[argo_service_pb2.WatchJobsResponse]:
        if job_id is not None:
            # Subscribed before reading, so no change between the snapshot and the stream is missed.
            job = self.store.get_job(job_id)
            if job is None:
                raise errors.not_found("job", request.name)
            yield argo_service_pb2.WatchJobsResponse(job=job)
            if job.state in JOB_TERMINAL:
                return
        elif request.send_initial:
            list_request = argo_service_pb2.ListJobsRequest(owner=request.owner,
                                                            group_identifier=request.group_identifier,
                                                            page_size=1000)
            for job in self.store.list_jobs(list_request)[0]:
                yield argo_service_pb2.WatchJobsResponse(job=job)
        while context.is_active():
            batch = subscription.get(timeout=0.5)
            if batch is None:
                if self.poller.stopped:
                    return
                continue
            wanted = [event for event in batch
                      if job_id is None or event.job == f"jobs/{job_id}"]
            if not wanted:
                continue
            jobs = self.store.get_jobs(sorted({event.job.partition("/")[2] for event in wanted}))
            for event in wanted:
                job = jobs.get(event.job.partition("/")[2])
                if job is None:
                    continue
                if request.owner and job.owner != request.owner:
                    continue
                if request.group_identifier and job.group_identifier != request.group_identifier:
                    continue
                yield argo_service_pb2.WatchJobsResponse(job=job, event=event)
                if job_id is not None and event.step_index == -1 and event.job_state in JOB_TERMINAL:
                    return
