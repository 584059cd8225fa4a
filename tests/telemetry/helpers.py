"""Helpers of the tracing and metrics tests: one SDK tracer and meter provider for this test process
(server and agent run in it and share them), with in-memory readers; waiting; span look-ups.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from argo_server.app import ServerProcess
from balsam_agent.agent import Agent

SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()


def _install_providers() -> None:
    """The global providers can be set once per process: reuse an SDK provider someone set before."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "argo-tests"}))
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader(), METRICS]))


_install_providers()


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, message: str = "condition") -> Any:
    """Polls ``condition`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.02)


@dataclass
class Stack:
    """A server and the ``local`` site's agent running in this process."""

    server: ServerProcess
    agent: Agent
    site_bin: Path
    submission: dict[str, Any]
    prefix: str

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return f"127.0.0.1:{self.server.port}"


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The spans called ``name``."""
    return [span for span in spans if span.name == name]
