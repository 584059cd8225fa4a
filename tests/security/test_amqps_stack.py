"""The server and an agent on the TLS RabbitMQ node: amqps with CA verification, the agent logging in
by certificate (EXTERNAL) with permissions for its own site only, the server by password.

Uses the node of ``scripts/services/rabbitmq-tls`` (see ``test_amqp_tls.py``, whose ``broker`` fixture
this module shares). Its permissions are written for the fixed prefix ``argo``, so these tests cannot use
a private prefix; they purge ``argo.assign.vesta`` and ``argo.status`` first, so that leftovers of an
earlier run cannot interfere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pika
import pika.exceptions
import pytest
import yaml
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2, site_service_pb2, site_service_pb2_grpc

from argo_server.amqp_connect import AmqpTls, connection_parameters
from argo_server.app import ServerProcess
from argo_server.config import ServerConfig
from balsam_agent.agent import Agent
from balsam_agent.config import AgentConfig, ConfigError

from .test_amqp_tls import PREFIX, TlsBroker, broker  # noqa: F401 - the shared fixture

SERVER_NAME = "localhost"  # the name in the node's certificate (the URL says 127.0.0.1)
DEADLINE_S = 60.0


def server_url(broker: TlsBroker) -> str:  # noqa: F811 - the fixture's value
    """The amqps URL with the server's user and password."""
    return broker.url.replace("amqps://", f"amqps://{broker.server_user}:{broker.server_password}@", 1)


def agent_settings(broker: TlsBroker, site: str, cert_of: str, tmp_path: Path, bin_dir: Path  # noqa: F811
                   ) -> dict[str, object]:
    """Agent configuration for ``site`` logging in with the certificate of ``cert_of``, over amqps."""
    cert, key = {"vesta": (broker.vesta_cert, broker.vesta_key), "mira": (broker.mira_cert, broker.mira_key)}[cert_of]
    return {"amqp_url": broker.url, "amqp_prefix": PREFIX, "amqp_tls_ca": broker.ca, "amqp_tls_cert": cert,
            "amqp_tls_key": key, "amqp_tls_server_name": SERVER_NAME, "declare_exchanges": False,
            "load_entry_points": False, "state_dir": str(tmp_path / f"agent-{site}"), "heartbeat_interval": 0.5,
            "site": {"scheduler": "local", "allowed_exec_dir": str(bin_dir), "poll_interval": 0.2}}


def purge(broker: TlsBroker, *queues: str) -> None:  # noqa: F811
    """Empties queues with the server's login (a missing queue is fine)."""
    tls = AmqpTls(ca=broker.ca, server_name=SERVER_NAME)
    connection = pika.BlockingConnection(connection_parameters(server_url(broker), "argo test purge", tls))
    try:
        for queue in queues:
            channel = connection.channel()
            try:
                channel.queue_purge(queue)
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass
    finally:
        connection.close()


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """The site's allowed executable directory with one program."""
    directory = tmp_path / "bin"
    directory.mkdir()
    program = directory / "hello"
    program.write_text("#!/bin/sh\necho \"hello $1\" > greeting.txt\n")
    program.chmod(0o755)
    return directory


@pytest.fixture
def tls_server(broker: TlsBroker, tmp_path: Path) -> Iterator[ServerProcess]:  # noqa: F811
    """A server connected to the TLS node by password over amqps (relay and status consumer running)."""
    purge(broker, f"{PREFIX}.assign.vesta", f"{PREFIX}.status")
    process = ServerProcess(ServerConfig(
        listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'argo.db'}", amqp_url=server_url(broker),
        amqp_prefix=PREFIX, amqp_tls_ca=broker.ca, amqp_tls_server_name=SERVER_NAME,
        data_root=(tmp_path / "data").as_uri(), relay_poll_interval=0.2, known_sites=["vesta"]))
    process.start()
    try:
        yield process
    finally:
        process.stop(grace=1.0)


def test_a_job_runs_end_to_end_over_amqps_with_certificate_login(
        broker: TlsBroker, tls_server: ServerProcess, tmp_path: Path, bin_dir: Path) -> None:  # noqa: F811
    settings = agent_settings(broker, "vesta", "vesta", tmp_path, bin_dir)
    agent = Agent(AgentConfig.from_mapping("vesta", settings))
    agent.start()
    try:
        assert agent.wait_connected(timeout=30), agent.broker_refusal
        with grpc.insecure_channel(f"127.0.0.1:{tls_server.port}") as channel:
            argo = argo_service_pb2_grpc.ArgoServiceStub(channel)
            job = argo.CreateJob(svc.CreateJobRequest(job=job_pb2.Job(owner="tester", steps=[job_pb2.Step(
                target_site="vesta", executable="hello", executable_args=["vesta"], nodes=1,
                processes_per_node=1, wall_minutes=1)]))).job
            deadline = time.monotonic() + DEADLINE_S
            while (current := argo.GetJob(svc.GetJobRequest(name=job.name)).job).state not in (
                    job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_REJECTED):
                assert time.monotonic() < deadline, current
                time.sleep(0.1)
            assert current.state == job_pb2.JOB_STATE_SUCCEEDED, current
            assert current.steps[0].exit_code == 0
            # The agent's heartbeats (published as agent-vesta, certificate login) reached the server.
            site = site_service_pb2_grpc.SiteServiceStub(channel).GetSite(
                site_service_pb2.GetSiteRequest(name="sites/vesta")).site
            assert site.online, site
        assert tls_server.consumer.stats.dead_lettered == 0
        assert agent.broker_refusal is None
    finally:
        agent.stop()


def test_an_agent_with_another_sites_certificate_stops_with_a_clear_error(
        broker: TlsBroker, tmp_path: Path, bin_dir: Path) -> None:  # noqa: F811
    """balsam-agent --site mira holding vesta's certificate: the broker refuses mira's queue to
    agent-vesta, and the agent exits at once saying so, instead of retrying for ever."""
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(agent_settings(broker, "mira", "vesta", tmp_path, bin_dir)))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "balsam_agent.cli", "--site", "mira", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": "."})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refused access (403)" in result.stderr and "argo.assign.mira" in result.stderr, result.stderr[-2000:]
    assert time.monotonic() - started < 30


def test_agent_refuses_tls_settings_on_a_plain_url(tmp_path: Path, bin_dir: Path) -> None:
    """TLS files given for an amqp:// URL would be silently unused: the agent refuses to start."""
    config = AgentConfig.from_mapping("vesta", {
        "amqp_url": "amqp://127.0.0.1:5672/%2F", "amqp_tls_ca": "ca.pem", "load_entry_points": False,
        "state_dir": str(tmp_path / "state"), "site": {"scheduler": "local", "allowed_exec_dir": str(bin_dir)}})
    with pytest.raises(ConfigError, match="amqps"):
        Agent(config)
