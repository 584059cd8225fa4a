"""Client-side tracing of the gRPC calls (``opentelemetry-api`` only).

Each call runs in a CLIENT span named ``package.Service/Method`` whose W3C context goes to the server
in the ``traceparent``/``tracestate`` metadata, so the server's spans of the call, and every span of a
job created by it, are in the caller's trace. Without an OpenTelemetry SDK in the process the span is
a no-op, and a context the application already has (its own current span) is still passed on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

tracer = trace.get_tracer("argo_client")


class _CallDetails(grpc.ClientCallDetails):
    """The call's details with the trace metadata added."""

    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str | bytes]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = tuple(metadata)
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


def _method_name(details: grpc.ClientCallDetails) -> str:
    method = details.method
    return (method.decode() if isinstance(method, bytes) else str(method)).lstrip("/")


class ClientTracingInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Starts a CLIENT span per call and sends its context in the call's metadata."""

    def _begin(self, details: grpc.ClientCallDetails) -> tuple[Any, _CallDetails]:
        name = _method_name(details)
        service, _, method = name.partition("/")
        span = tracer.start_span(name, kind=SpanKind.CLIENT,
                                 attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method})
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        metadata = [(key, value) for key, value in (details.metadata or ()) if key not in carrier]
        metadata.extend(carrier.items())
        return span, _CallDetails(details, metadata)

    @staticmethod
    def _end(span: Any, error: BaseException | None) -> None:
        if isinstance(error, grpc.RpcError):
            code = error.code()  # type: ignore[attr-defined]
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            span.set_status(Status(StatusCode.ERROR, f"{code.name}: {error.details()}"))  # type: ignore[attr-defined]
        elif error is not None:
            span.set_status(Status(StatusCode.ERROR, str(error)))
        else:
            span.set_attribute("rpc.grpc.status_code", 0)
        span.end()

    def intercept_unary_unary(self, continuation: Callable[..., Any], client_call_details: grpc.ClientCallDetails,
                              request: Any) -> Any:
        """A unary call: the span ends with the call."""
        span, details = self._begin(client_call_details)
        with trace.use_span(span, end_on_exit=False):
            outcome = continuation(details, request)
        error = outcome.exception() if hasattr(outcome, "exception") else None
        self._end(span, error)
        return outcome

    def intercept_unary_stream(self, continuation: Callable[..., Any], client_call_details: grpc.ClientCallDetails,
                               request: Any) -> Any:
        """A server stream (WatchJobs): the span ends when the stream does."""
        span, details = self._begin(client_call_details)
        with trace.use_span(span, end_on_exit=False):
            responses = continuation(details, request)
        return _TracedStream(responses, span, self._end)


class _TracedStream:
    """Wraps a response iterator (also a grpc.Call): ends the span when iteration ends."""

    def __init__(self, inner: Any, span: Any, end: Callable[[Any, BaseException | None], None]) -> None:
        self._inner, self._span, self._end_span = inner, span, end
        self._ended = False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._inner)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as error:
            self._finish(error)
            raise

    def _finish(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self._end_span(self._span, error)

    def cancel(self) -> bool:
        """Cancels the stream (ends the span)."""
        self._finish(None)
        return bool(self._inner.cancel())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """``channel`` with :class:`ClientTracingInterceptor`."""
    return grpc.intercept_channel(channel, ClientTracingInterceptor())


def configure_from_env(environ: Mapping[str, str] | None = None) -> None:
    """For the ``argo`` command: exports its spans over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``/``OTEL_TRACES_EXPORTER``) is set and the OpenTelemetry SDK is
    installed; otherwise, or when the process already has an SDK provider, nothing changes."""
    env = os.environ if environ is None else environ
    wanted = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or wanted == "none" or not (
            wanted or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return  # the client depends on the API only
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider(resource=Resource.create({} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "argo"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # flushed at exit by the provider
    trace.set_tracer_provider(provider)


def command_span(command: str) -> Any:
    """The span of one ``argo`` command (the root of the job's trace when it submits)."""
    return tracer.start_as_current_span(f"argo {command}", kind=SpanKind.INTERNAL)
