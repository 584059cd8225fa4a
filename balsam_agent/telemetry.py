"""OpenTelemetry SDK setup of the ``balsam-agent`` command, from the standard ``OTEL_*`` variables.

Traces go to an OTLP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
or ``OTEL_TRACES_EXPORTER`` is set (``console`` prints them, ``none`` turns them off); metrics are pushed
over OTLP when an OTLP endpoint or ``OTEL_METRICS_EXPORTER=otlp`` is set. Unset: nothing is installed
and spans and metrics cost nothing. ``OTEL_SDK_DISABLED=true`` turns everything off; the SDK reads the
rest (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``, exporter headers and TLS).
Only the entry point calls this: library code uses the API only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _setting(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip().lower()


def configure(service_name: str = "balsam-agent", environ: Mapping[str, str] | None = None) -> Callable[[], None]:
    """Installs the SDK's tracer and meter providers as configured; returns the function that flushes
    and shuts them down."""
    env = os.environ if environ is None else environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    traces = _setting(env, "OTEL_TRACES_EXPORTER") or ("otlp" if endpoint or env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") else "none")
    metrics_exporter = _setting(env, "OTEL_METRICS_EXPORTER") or ("otlp" if endpoint or env.get(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") else "none")
    if _setting(env, "OTEL_SDK_DISABLED") == "true" or (traces == "none" and metrics_exporter != "otlp"):
        return lambda: None
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        log.warning("OTEL_* is set but opentelemetry-sdk is not installed (pip install argo-balsam[otel])")
        return lambda: None
    # OTEL_SERVICE_NAME wins over the program's own name.
    resource = Resource.create({} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name})
    shutdowns: list[Callable[[], object]] = []
    if traces != "none":
        exporter: SpanExporter
        if traces == "console":
            exporter = ConsoleSpanExporter()
        elif env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").startswith("http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
            exporter = HttpExporter()
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            exporter = OTLPSpanExporter()
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
        shutdowns.append(tracer_provider.shutdown)
    if metrics_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        meter_provider = MeterProvider(resource=resource,
                                       metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
        metrics.set_meter_provider(meter_provider)
        shutdowns.append(meter_provider.shutdown)

    def shutdown() -> None:
        for stop in reversed(shutdowns):
            try:
                stop()
            except Exception:  # noqa: BLE001 - an exporter that cannot flush must not block the exit
                log.warning("telemetry shutdown failed", exc_info=True)

    return shutdown
