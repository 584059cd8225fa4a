"""End to end: argo-server and balsam-agent as separate processes export over OTLP/gRPC to a real receiver
in the test, and the job's spans from both processes share one trace id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from argo_client import ArgoClient
from argo_client.demo import prepare
from argo_client.local_stack import LocalStack
from argobalsam.argo.v1 import job_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.telemetry.helpers import wait_for


class Receiver(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    """An OTLP/gRPC receiver that keeps every span it gets with its resource's service.name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        self.metric_names: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - OTLP method name
        """Both services' Export: stores what arrived."""
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            with self._lock:
                for resource_spans in request.resource_spans:
                    service = _service_name(resource_spans.resource)
                    for scope in resource_spans.scope_spans:
                        self.spans.extend((service, span) for span in scope.spans)
            return trace_service_pb2.ExportTraceServiceResponse()
        with self._lock:
            for resource_metrics in request.resource_metrics:
                service = _service_name(resource_metrics.resource)
                for scope in resource_metrics.scope_metrics:
                    self.metric_names.update((service, metric.name) for metric in scope.metrics)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def snapshot(self) -> list[tuple[str, Any]]:
        """The spans so far."""
        with self._lock:
            return list(self.spans)


def _service_name(resource: Any) -> str:
    return next((a.value.string_value for a in resource.attributes if a.key == "service.name"), "")


def _attribute(span: Any, key: str) -> Any:
    for attribute in span.attributes:
        if attribute.key == key:
            value = attribute.value
            return value.string_value if value.HasField("string_value") else value.int_value
    return None


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    """A real OTLP/gRPC receiver on a free loopback port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(0)


def test_server_and_agent_processes_export_one_trace_per_job(tmp_path: Path, amqp_url: str, amqp_prefix: str,
                                                             receiver: tuple[Receiver, int]) -> None:
    collector, port = receiver
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
           "OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_BSP_SCHEDULE_DELAY": "100",
           "OTEL_METRIC_EXPORT_INTERVAL": "500", "BALSAM_DISABLE_PLUGIN_AUTOLOAD": "1"}
    site_bin, _, submission = prepare(tmp_path)
    with LocalStack(tmp_path / "stack", amqp_url=amqp_url, amqp_prefix=amqp_prefix, sites=["local"],
                    server_env=env) as stack:
        stack.start_server()
        stack.start_agent("local", env=env, site_options={"allowed_exec_dir": str(site_bin),
                                                          "work_root": str(tmp_path / "work")})
        # submitted by the `argo` CLI, which exports its own spans (service "argo") to the same receiver
        (tmp_path / "seed.json").write_text(json.dumps(submission))
        argv = [sys.executable, "-m", "argo_client.cli", "--server", stack.address, "-o", "json", "submit",
                str(tmp_path / "seed.json")]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr
        with ArgoClient(stack.address) as client:
            job = client.wait(json.loads(proc.stdout)["name"], timeout=120)
        assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job
        job_id = job.name.rpartition("/")[2]

        expected = {("argo-server", "argobalsam.argo.v1.ArgoService/CreateJob"),
                    ("argo-server", f"{amqp_prefix}.assign publish"), ("balsam-agent", "balsam.step"),
                    ("balsam-agent", "balsam.stage_in"), ("balsam-agent", "balsam.submit"),
                    ("balsam-agent", "balsam.stage_out")}

        def job_spans() -> list[tuple[str, Any]]:
            # the processes export in batches, each on its own schedule: wait for every expected span
            spans = [(service, span) for service, span in collector.snapshot()
                     if _attribute(span, "argo.job_id") == job_id]
            last = [span for service, span in spans if span.name == "argo.status SUCCEEDED"
                    and _attribute(span, "argo.step_index") == 1]
            return spans if expected <= {(service, span.name) for service, span in spans} and last else []

        def cli_spans() -> list[Any]:
            return [span for service, span in collector.snapshot() if service == "argo"]

        spans = wait_for(job_spans, timeout=30, message="spans of both processes")
        assert len({span.trace_id for _, span in spans}) == 1, "the job's spans are in more than one trace"
        names = {(service, span.name) for service, span in spans}
        # the CLI's command span is the root of the job's trace, its client span the server span's parent
        cli = wait_for(cli_spans, timeout=15, message="the CLI's spans")
        assert {span.name for span in cli} == {"argo submit", "argobalsam.argo.v1.ArgoService/CreateJob"}
        assert {span.trace_id for span in cli} == {spans[0][1].trace_id}
        client_call = next(span for span in cli if span.name.endswith("CreateJob"))
        server_call = next(span for service, span in spans if span.name.endswith("CreateJob"))
        assert server_call.parent_span_id == client_call.span_id
        assert expected <= names
        # the agent's step span is a child of the server's publish span (context through AMQP headers)
        by_id = {span.span_id: (service, span) for service, span in spans}
        step = next(span for service, span in spans if span.name == "balsam.step")
        assert by_id[step.parent_span_id][1].name == f"{amqp_prefix}.assign publish"
        # the agent pushes its metrics over OTLP too
        wait_for(lambda: ("balsam-agent", "balsam.transfer.bytes") in collector.metric_names, timeout=15,
                 message="the agent's transfer metrics")
