"""End-to-end fixtures: a real argo-server and real balsam-agents as child processes on the real broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from argo_client.local_stack import LocalStack
from argobalsam.argo.v1 import argo_service_pb2_grpc


@pytest.fixture
def stack(tmp_path: Path, amqp_url: str, amqp_prefix: str) -> Iterator[LocalStack]:
    """A started server (SQLite) with no agents yet; stopped after the test, logs kept on failure."""
    s = LocalStack(tmp_path / "stack", amqp_url=amqp_url, amqp_prefix=amqp_prefix)
    try:
        s.start_server()
        yield s
    finally:
        s.stop()


@pytest.fixture
def site_bin(tmp_path: Path) -> Path:
    """The local site's allowed executable directory, with a few test programs."""
    d = tmp_path / "site-bin"
    d.mkdir()
    programs = {
        "ok": "#!/bin/sh\nexit 0\n",
        "fail3": "#!/bin/sh\necho failing >&2\nexit 3\n",
        "sleeper": "#!/bin/sh\nsleep \"${1:-30}\"\n",
        "count": "#!/bin/sh\necho run >> \"$1\"\nsleep \"${2:-0}\"\n",
        "copy": "#!/bin/sh\ncat \"$1\" > \"$2\"\n",
    }
    for name, text in programs.items():
        (d / name).write_text(text)
        (d / name).chmod(0o755)
    return d


@pytest.fixture
def stub(stack: LocalStack) -> Iterator[argo_service_pb2_grpc.ArgoServiceStub]:
    """An ArgoService stub connected to the stack's server."""
    with grpc.insecure_channel(stack.address) as channel:
        yield argo_service_pb2_grpc.ArgoServiceStub(channel)
