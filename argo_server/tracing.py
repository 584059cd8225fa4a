"""Spans of the server: gRPC server calls, outbox publishes and status ingestion, one trace per job.

Library code: only ``opentelemetry-api``. Without a configured SDK every span here is a cheap no-op that
still carries the caller's context on, so a traced agent or client stays in one trace with the server.

How a job stays one trace: CreateJob's server span (a child of the client's span when the client sent a
``traceparent``) is stored with the job (``jobs.trace_context``) and in its first Assign. The relay
publishes each envelope in a producer span whose context goes out in the AMQP headers; an agent's status
updates carry the context of its spans, and the server ingests each update in a span that is their
child, so the next step's Assign, written in that span, continues the same trace. A change that comes
from outside the job's trace (a CancelJob from another process's trace) is written under the job's own
stored context.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import grpc
from argobalsam.argo.v1 import job_pb2
from argobalsam.balsam.v1 import assignment_pb2, status_pb2
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

tracer = trace.get_tracer("argo_server")

#: gRPC codes that are the server's fault (others are the caller's and leave the span status unset).
_SERVER_ERRORS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
                  grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS}
#: Services not worth a span per call (health probes arrive every second).
_UNTRACED = ("/grpc.health.v1.", "/grpc.reflection.")


def encode_context(carrier: Mapping[str, str]) -> str:
    """A W3C carrier as ``key=value`` lines (the storage form of ``outbox.trace_headers``)."""
    return "\n".join(f"{key}={value}" for key, value in sorted(carrier.items()))


def decode_context(text: str | None) -> dict[str, str]:
    """Inverse of :func:`encode_context`."""
    pairs = (line.partition("=") for line in (text or "").splitlines() if line)
    return {key: value for key, _, value in pairs}


def sdk_active() -> bool:
    """Whether a tracing SDK is configured (spans are recorded); without one, the hot paths skip
    building spans that would record nothing."""
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def current_carrier() -> dict[str, str]:
    """The W3C context of the current span (empty without one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def _trace_id(carrier: Mapping[str, str]) -> int:
    span_context = trace.get_current_span(propagate.extract(dict(carrier))).get_span_context()
    return span_context.trace_id if span_context.is_valid else 0


def job_carrier(job: Mapping[str, Any], fallback: Mapping[str, str]) -> dict[str, str]:
    """The context an envelope of ``job`` goes out with: the current span when it belongs to the job's
    trace (an ingestion span, CreateJob), else the job's stored context, else ``fallback``."""
    stored = decode_context(job.get("trace_context"))
    current = current_carrier()
    if current and (not stored or _trace_id(current) == _trace_id(stored)):
        return current
    return stored or dict(fallback)


def state_name(state: int) -> str:
    """``RUNNING`` for STEP_STATE_RUNNING (the number when the state is unknown)."""
    if state in job_pb2.StepState.values():
        return job_pb2.StepState.Name(state).removeprefix("STEP_STATE_")  # type: ignore[arg-type]
    return str(state)


def step_attributes(job_id: str, step_index: int, attempt: int, site: str,
                    scheduler_id: str = "") -> dict[str, Any]:
    """The ``argo.*`` attributes of a span about one step attempt."""
    attributes: dict[str, Any] = {"argo.job_id": job_id, "argo.step_index": step_index, "argo.attempt": attempt,
                                  "argo.site": site}
    if scheduler_id:
        attributes["argo.scheduler_id"] = scheduler_id
    return attributes


# -- gRPC server -------------------------------------------------------------------------------------


class ServerTracingInterceptor(grpc.ServerInterceptor):
    """Runs each call in a SERVER span named ``package.Service/Method``, child of the caller's W3C
    context (``traceparent`` metadata); the span is current while the method runs, so the outbox rows
    it writes carry it."""

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
                          handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(_UNTRACED):
            return handler
        metadata = {key: value for key, value in handler_call_details.invocation_metadata or ()  # type: ignore[attr-defined]
                    if isinstance(value, str)}
        if "traceparent" not in metadata and not sdk_active():
            # The span would be a no-op and there is no caller's context to carry into the outbox rows:
            # skip building it (server CPU per paced CreateJob 1.57-1.82 against 1.89-2.04 ms, BENCHMARKS.md).
            return handler
        service, _, name = method.lstrip("/").partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                with _server_span(method, metadata, attributes, context):
                    return inner(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer,
                                                       handler.response_serializer)
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with _server_span(method, metadata, attributes, context):
                    yield from stream(request, context)

            return grpc.unary_stream_rpc_method_handler(streaming, handler.request_deserializer,
                                                        handler.response_serializer)
        return handler  # client streams: the API has none


@contextmanager
def _server_span(method: str, metadata: dict[str, str], attributes: dict[str, Any],
                 context: grpc.ServicerContext) -> Iterator[Span]:
    parent = propagate.extract(metadata)
    with tracer.start_as_current_span(method.lstrip("/"), context=parent, kind=SpanKind.SERVER,
                                      attributes=attributes, record_exception=False,
                                      set_status_on_exception=False) as span:
        try:
            yield span
        finally:
            code = _code_of(context)
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in _SERVER_ERRORS:
                span.set_status(Status(StatusCode.ERROR, f"{code.name}: {_details_of(context)}"))


def _code_of(context: grpc.ServicerContext) -> grpc.StatusCode:
    code = context.code() if hasattr(context, "code") else None
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


def _details_of(context: grpc.ServicerContext) -> str:
    details = context.details() if hasattr(context, "details") else ""
    return details.decode(errors="replace") if isinstance(details, bytes) else str(details or "")


def annotate_job(job: job_pb2.Job) -> None:
    """Puts the job's id on the current (server) span."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("argo.job_id", job.name.rpartition("/")[2])


# -- relay -------------------------------------------------------------------------------------------


def publish_headers(stored: Mapping[str, str], site: str, exchange: str, body: bytes = b"") -> dict[str, str]:
    """Ends a PRODUCER span (child of the context stored with the outbox row) for one envelope and
    returns the AMQP headers that continue from it. Without a configured SDK the span would record
    nothing and continue the stored context unchanged, so the stored context is returned as it is."""
    if not sdk_active():
        return dict(stored)
    attributes: dict[str, Any] = {"messaging.system": "rabbitmq", "messaging.operation": "publish",
                                  "messaging.destination.name": exchange,
                                  "messaging.rabbitmq.destination.routing_key": site, "argo.site": site}
    span = tracer.start_span(f"{exchange} publish", context=propagate.extract(dict(stored)),
                             kind=SpanKind.PRODUCER, attributes=attributes)
    if body and span.is_recording():
        # Parsed only when someone records the span: the relay's hot path stays a byte copy.
        envelope = assignment_pb2.AssignmentEnvelope.FromString(body)
        job_id, _, index = envelope.step_id.rpartition("/")
        span.set_attributes({"argo.job_id": job_id, "argo.step_index": int(index) if index.isdigit() else -1,
                             "argo.attempt": envelope.attempt, "argo.action": envelope.WhichOneof("action") or ""})
        if envelope.HasField("time"):
            # How long the envelope waited in the outbox for the relay.
            span.set_attribute("argo.outbox.wait_ms", max(0.0, time.time() * 1000 - envelope.time.ToMilliseconds()))
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(span))
    span.end()
    return headers or dict(stored)


# -- status ingestion --------------------------------------------------------------------------------


@contextmanager
def ingestion_span(job: Mapping[str, Any], step: Mapping[str, Any], update: status_pb2.StatusUpdate
                   ) -> Iterator[Span]:
    """The current CONSUMER span while the server applies one status update that changes a step's
    state: a child of the agent's span that reported it (or of the job's context when the agent sent
    none). A FAILED or REJECTED report gives the span status ERROR with the reason."""
    carrier = dict(update.trace_context) or decode_context(job.get("trace_context"))
    previous, target = state_name(step["state"]), state_name(update.state)
    attributes = step_attributes(job["id"], step["index"], update.attempt, step["target_site"], update.scheduler_id)
    attributes.update({"argo.step_state.from": previous, "argo.step_state": target,
                       "argo.status.sequence": update.sequence})
    with tracer.start_as_current_span(f"argo.status {target}", context=propagate.extract(carrier),
                                      kind=SpanKind.CONSUMER, attributes=attributes) as span:
        if update.state in (job_pb2.STEP_STATE_FAILED, job_pb2.STEP_STATE_REJECTED):
            span.set_status(Status(StatusCode.ERROR, update.reason or target))
        yield span


def refused(span: Span, reason: str) -> None:
    """Marks an ingestion span whose transition the table refused."""
    span.set_attribute("argo.status.refused", True)
    span.set_status(Status(StatusCode.ERROR, f"transition refused: {reason}"))


def observe_update(apply: Callable[[], None], job: Mapping[str, Any], step: Mapping[str, Any],
                   update: status_pb2.StatusUpdate, result: Any) -> str:
    """Runs ``apply`` (which applies ``update`` to ``step``) in an ingestion span when the update
    changes the step's state and a tracing SDK records spans, and returns the outcome for the metrics
    (applied, duplicate, stale, refused or ignored). ``result`` is the caller's
    :class:`argo_server.store.ReportResult`, read before and after to learn the outcome."""
    before = (result.applied, result.duplicates, result.stale, result.refused)
    changes = (update.attempt == step["attempt"] and update.sequence > step["report_sequence"]
               and update.state != step["state"])
    if changes and sdk_active():
        with ingestion_span(job, step, update) as span:
            apply()
            if result.refused > before[3]:
                refused(span, f"{state_name(step['state'])} -> {state_name(update.state)}")
    else:
        apply()
    after = (result.applied, result.duplicates, result.stale, result.refused)
    return next((name for name, old, new in zip(("applied", "duplicate", "stale", "refused"), before, after,
                                                 strict=True) if new > old), "ignored")
