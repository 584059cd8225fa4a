"""Start an ARGO server and Balsam agents on this machine as child processes.

Used by ``argo demo``, the end-to-end tests and the benchmarks: every process is a real
``argo-server`` / ``balsam-agent`` talking through a real RabbitMQ broker, and everything started here
is stopped by :meth:`LocalStack.stop` (also on exceptions, as a context manager).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def free_port() -> int:
    """Returns a TCP port on loopback that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_answers(amqp_url: str = DEFAULT_AMQP_URL, timeout: float = 2.0) -> bool:
    """Whether an AMQP broker accepts a connection at ``amqp_url``."""
    import pika

    params = pika.URLParameters(amqp_url)
    params.socket_timeout = timeout
    params.connection_attempts = 1
    try:
        pika.BlockingConnection(params).close()
    except Exception:  # noqa: BLE001 - any failure means "no usable broker"
        return False
    return True


def _console_script(name: str) -> list[str]:
    """argv prefix that runs one of our console scripts with this interpreter."""
    modules = {"argo-server": "argo_server.cli", "balsam-agent": "balsam_agent.cli"}
    return [sys.executable, "-m", modules[name]]


class LocalStack:
    """A server and any number of agents, each a child process, sharing one broker prefix."""

    def __init__(self, state_dir: Path, *, amqp_url: str = DEFAULT_AMQP_URL, amqp_prefix: str | None = None,
                 database_url: str | None = None, data_root: str | None = None,
                 sites: Sequence[str] = (), log_dir: Path | None = None,
                 server_env: Mapping[str, str] | None = None, monitor: bool = False,
                 server_args: Sequence[str] = (), delete_topology: bool | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.amqp_url = amqp_url
        self.amqp_prefix = amqp_prefix or f"argo-{uuid.uuid4().hex[:8]}"
        #: Delete the prefix's queues and exchanges at stop (default: when the prefix was made here, so
        #: nothing this stack created stays on the broker).
        self.delete_topology = amqp_prefix is None if delete_topology is None else delete_topology
        self.database_url = database_url or f"sqlite:///{self.state_dir / 'argo.db'}"
        self.data_root = data_root or (self.state_dir / "data").as_uri() + "/"
        self.sites = list(sites)
        self.log_dir = Path(log_dir or self.state_dir / "logs")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.server_env = dict(server_env or {})
        self.port = 0
        self.monitor = monitor
        self.monitor_port = 0
        self.server_args = list(server_args)
        self.server: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.agent_configs: dict[str, Path] = {}

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return f"127.0.0.1:{self.port}"

    # --- server ---

    def start_server(self, timeout: float = 60.0) -> None:
        """Starts ``argo-server`` and waits until its health check answers SERVING."""
        self.port = free_port()
        argv = [*_console_script("argo-server"), "--listen", self.address,
                "--database-url", self.database_url, "--amqp-url", self.amqp_url,
                "--amqp-prefix", self.amqp_prefix, "--data-root", self.data_root]
        for site in self.sites:
            argv += ["--site", site]
        if self.monitor:
            self.monitor_port = free_port()
            argv += ["--monitor-listen", f"127.0.0.1:{self.monitor_port}"]
        argv += self.server_args
        self.server = self._spawn("server", argv, self.server_env)
        self._wait_serving(timeout)

    def kill_server(self) -> None:
        """Kills the server with SIGKILL (crash tests)."""
        if self.server is not None:
            self.server.kill()
            self.server.wait()
            self.server = None

    def _wait_serving(self, timeout: float) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.server is not None and self.server.poll() is not None:
                    raise RuntimeError(f"argo-server exited with {self.server.returncode}; "
                                       f"see {self.log_dir / 'server.log'}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"argo-server not serving after {timeout:.0f}s")
                time.sleep(0.05)

    # --- agents ---

    def write_agent_config(self, site: str, *, site_options: Mapping[str, Any] | None = None,
                           heartbeat_interval: float = 1.0) -> Path:
        """Writes the YAML configuration of the agent of ``site`` and returns its path."""
        agent_dir = self.state_dir / "agents" / site
        agent_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "amqp_url": self.amqp_url,
            "amqp_prefix": self.amqp_prefix,
            "state_dir": str(agent_dir),
            "heartbeat_interval": heartbeat_interval,
            "site": dict(site_options or {}),
        }
        path = agent_dir / "agent.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.agent_configs[site] = path
        return path

    def start_agent(self, site: str, *, site_options: Mapping[str, Any] | None = None,
                    env: Mapping[str, str] | None = None, heartbeat_interval: float = 1.0) -> None:
        """Starts ``balsam-agent`` for ``site`` (writing its configuration unless already written)."""
        config = self.agent_configs.get(site) or self.write_agent_config(
            site, site_options=site_options, heartbeat_interval=heartbeat_interval)
        argv = [*_console_script("balsam-agent"), "--site", site, "--config", str(config)]
        self.agents[site] = self._spawn(f"agent-{site}", argv, env or {})

    def kill_agent(self, site: str) -> None:
        """Kills the agent of ``site`` with SIGKILL (crash tests)."""
        proc = self.agents.pop(site, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    # --- common ---

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its life
        full_env = {**os.environ, **env}
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True)

    def stop(self, grace: float = 10.0) -> None:
        """Stops every agent, then the server: SIGTERM, then SIGKILL after ``grace`` seconds."""
        procs = [*self.agents.values(), *([self.server] if self.server else [])]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.agents.clear()
        self.server = None
        if self.delete_topology:
            self._delete_topology()

    def _delete_topology(self) -> None:
        """Deletes the queues and exchanges of this stack's prefix (quorum queues outlive their users)."""
        import pika

        sites = {*self.sites, *self.agent_configs}
        queues = [f"{self.amqp_prefix}.{name}" for name in ("status", "dead", *(f"assign.{s}" for s in sites))]
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        except pika.exceptions.AMQPError:
            return
        try:
            channel = connection.channel()
            for queue in queues:
                channel.queue_delete(queue)
            for exchange in ("assign", "status", "dead"):
                channel.exchange_delete(f"{self.amqp_prefix}.{exchange}")
        except pika.exceptions.AMQPError:
            pass
        finally:
            if connection.is_open:
                connection.close()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
