"""Fixtures of the tracing and metrics tests: a server and the local site's agent in this process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argo_client.demo import prepare
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from argo_server.app import ServerProcess
from argo_server.config import ServerConfig
from balsam_agent.agent import Agent
from balsam_agent.config import AgentConfig
from tests.telemetry.helpers import SPANS, Stack


@pytest.fixture(autouse=True)
def _only_builtin_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process agent loads only the built-in plugins (per test: nothing leaks into other tests)."""
    monkeypatch.setenv("BALSAM_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The span exporter, emptied for the test."""
    SPANS.clear()
    yield SPANS


@pytest.fixture
def stack(tmp_path: Path, amqp_url: str, amqp_prefix: str) -> Iterator[Stack]:
    """Server (SQLite, monitor page on a free port) and local agent, in this process."""
    site_bin, _, submission = prepare(tmp_path)
    (site_bin / "fail3").write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    (site_bin / "fail3").chmod(0o755)
    server = ServerProcess(ServerConfig(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'argo.db'}",
                                        amqp_url=amqp_url, amqp_prefix=amqp_prefix,
                                        data_root=(tmp_path / "data").as_uri(), monitor_listen="127.0.0.1:0",
                                        relay_poll_interval=0.1,
                                        # in this process, so that its spans reach the in-memory exporter
                                        relay="thread"))
    server.start()
    agent = Agent(AgentConfig(site_name="local", amqp_url=amqp_url, amqp_prefix=amqp_prefix,
                              state_dir=tmp_path / "agent", heartbeat_interval=1.0, load_entry_points=False,
                              site={"allowed_exec_dir": str(site_bin), "work_root": str(tmp_path / "work"),
                                    "poll_interval": 0.1}))
    agent.start()
    try:
        assert agent.wait_connected(20), "agent did not connect to the broker"
        yield Stack(server, agent, site_bin, submission, amqp_prefix)
    finally:
        agent.stop()
        server.stop(grace=1.0)
