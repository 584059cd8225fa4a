"""OpenTelemetry SDK setup of the ``argo-server`` command, from the standard ``OTEL_*`` variables.

Traces go to an OTLP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
or ``OTEL_TRACES_EXPORTER`` is set (``OTEL_TRACES_EXPORTER=console`` prints them, ``none`` turns them
off); otherwise no SDK tracer is installed and spans cost nothing. Metrics are always collected when the
SDK is installed, for ``GET /metrics`` (Prometheus text), and also pushed over OTLP when an OTLP endpoint
or ``OTEL_METRICS_EXPORTER=otlp`` is set. ``OTEL_SDK_DISABLED=true`` turns everything off. Everything
else (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``, headers, TLS of the exporter)
is read by the SDK itself. Only entry points call this: library code uses the API only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _wants_traces(env: Mapping[str, str]) -> bool:
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _wants_otlp_metrics(env: Mapping[str, str]) -> bool:
    exporter = env.get("OTEL_METRICS_EXPORTER", "").strip().lower()
    if exporter:
        return exporter == "otlp"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))


def configure(service_name: str = "argo-server", environ: Mapping[str, str] | None = None,
              metrics_listen: str = "") -> Callable[[], None]:
    """Installs the SDK's tracer and meter providers as configured; returns a function that flushes and
    shuts them down. Without the ``otel`` extra installed it only logs why nothing is exported."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return lambda: None
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        if _wants_traces(env):
            log.warning("OTEL_* is set but opentelemetry-sdk is not installed (pip install argo-balsam[otel])")
        return lambda: None
    # OTEL_SERVICE_NAME wins over the program's own name.
    resource = Resource.create({} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name})
    shutdowns: list[Callable[[], object]] = []
    if _wants_traces(env):
        exporter: SpanExporter
        if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
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
    readers: list[MetricReader] = []
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        readers.append(PrometheusMetricReader())
    except ImportError:
        log.info("opentelemetry-exporter-prometheus is not installed: no /metrics")
    if _wants_otlp_metrics(env):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    if readers:
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        metrics.set_meter_provider(meter_provider)
        shutdowns.append(meter_provider.shutdown)
    if metrics_listen:
        from prometheus_client import start_http_server
        host, _, port = metrics_listen.rpartition(":")
        start_http_server(int(port), addr=host or "127.0.0.1")
        log.info("Prometheus metrics on http://%s/metrics", metrics_listen)

    def shutdown() -> None:
        for stop in reversed(shutdowns):
            try:
                stop()
            except Exception:  # noqa: BLE001 - an exporter that cannot flush must not block the exit
                log.warning("telemetry shutdown failed", exc_info=True)

    return shutdown
