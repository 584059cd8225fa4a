"""Without a tracing SDK the server builds no span for a call, unless the caller sent a trace context,
which must still reach what the call writes (the outbox rows' trace headers)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from opentelemetry import trace

from argo_server import tracing
from argo_server.outbox import current_trace_context

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class _Details(grpc.HandlerCallDetails):
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method = "/argobalsam.argo.v1.ArgoService/CreateJob"
        self.invocation_metadata = metadata


def _intercept(metadata: tuple[tuple[str, str], ...]) -> tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]:
    seen: dict[str, Any] = {}

    def behaviour(_request: Any, _context: Any) -> dict[str, str]:
        seen["carrier"] = current_trace_context()
        return seen["carrier"]

    handler = grpc.unary_unary_rpc_method_handler(behaviour)
    intercepted = tracing.ServerTracingInterceptor().intercept_service(lambda _details: handler, _Details(metadata))
    assert intercepted is not None
    return handler, intercepted


class _Context:
    def code(self) -> None:
        return None

    def details(self) -> str:
        return ""


def test_no_sdk_and_no_caller_context_means_no_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "sdk_active", lambda: False)
    handler, intercepted = _intercept((("user-agent", "test"),))
    assert intercepted is handler  # called as registered: nothing built around it
    assert intercepted.unary_unary(None, _Context()) == {}


def test_no_sdk_still_carries_the_callers_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "sdk_active", lambda: False)
    monkeypatch.setattr(tracing, "tracer", trace.NoOpTracer())
    handler, intercepted = _intercept((("traceparent", TRACEPARENT),))
    assert intercepted is not handler
    carrier = intercepted.unary_unary(None, _Context())
    assert carrier["traceparent"].split("-")[1] == TRACE_ID
