"""RabbitMQ over TLS: CA verification, certificate (EXTERNAL) login and per-agent permissions.

Runs against the private TLS node of ``scripts/services/rabbitmq-tls`` (``amqps://127.0.0.1:5671``),
whose users are ``agent-vesta`` and ``agent-mira`` (certificate login only, each limited to its own
site's queue) and ``argo-server`` (password). The addresses and files come from the environment
(``.ci/services.env``) or, when that is not sourced, from ``rabbitmq-tls env`` if the node answers.
"""

from __future__ import annotations

import os
import shlex
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pika
import pika.credentials
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from argo_server.topology import declare_site_queue
from balsam_agent.amqp import declare_topology

SERVICE_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "services" / "rabbitmq-tls"
PREFIX = "argo"  # the broker's per-agent permissions are written for the deployment prefix
ACCESS_REFUSED = 403
PRECONDITION_FAILED = 406
DEADLINE_S = 10.0


@dataclass(frozen=True)
class TlsBroker:
    """Where the TLS node listens and the files and credentials to reach it."""

    url: str
    ca: str
    vesta_cert: str
    vesta_key: str
    mira_cert: str
    mira_key: str
    server_user: str
    server_password: str

    @property
    def host(self) -> str:
        """Host of the amqps URL."""
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """Port of the amqps URL."""
        return urlparse(self.url).port or 5671


_ENV_FIELDS = {
    "url": "ARGO_TEST_AMQPS_URL",
    "ca": "ARGO_TEST_AMQPS_CA",
    "vesta_cert": "ARGO_TEST_AMQPS_VESTA_CERT",
    "vesta_key": "ARGO_TEST_AMQPS_VESTA_KEY",
    "mira_cert": "ARGO_TEST_AMQPS_MIRA_CERT",
    "mira_key": "ARGO_TEST_AMQPS_MIRA_KEY",
    "server_user": "ARGO_TEST_AMQPS_SERVER_USER",
    "server_password": "ARGO_TEST_AMQPS_SERVER_PASSWORD",
}


def _service_env() -> dict[str, str]:
    """The ``export`` lines of ``rabbitmq-tls env`` as a dict, if the node's port answers."""
    try:
        socket.create_connection(("127.0.0.1", 5671), timeout=1).close()
        out = subprocess.run([str(SERVICE_SCRIPT), "env"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    env = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


@pytest.fixture(scope="module")
def broker() -> TlsBroker:
    """The TLS node's settings; skips the module when no TLS node is configured or running."""
    from_environment = bool(os.environ.get(_ENV_FIELDS["url"]))
    env = dict(os.environ) if from_environment else _service_env()
    if not env:
        pytest.skip("no TLS RabbitMQ: ARGO_TEST_AMQPS_URL is unset and no node answers on 127.0.0.1:5671 "
                    "(run `scripts/services/rabbitmq-tls start` and source its `env`)")
    missing = [name for name in _ENV_FIELDS.values() if not env.get(name)]
    if missing:
        source = "the environment" if from_environment else "`rabbitmq-tls env`"
        pytest.skip(f"TLS RabbitMQ settings incomplete in {source}: missing {', '.join(missing)}")
    settings = TlsBroker(**{field: env[name] for field, name in _ENV_FIELDS.items()})
    unreadable = [path for path in (settings.ca, settings.vesta_key, settings.mira_key)
                  if not os.access(path, os.R_OK)]
    if unreadable:
        pytest.skip(f"TLS test files not readable by this user: {', '.join(unreadable)}")
    return settings


def tls_context(cafile: str | None, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """A client context verifying the server against ``cafile`` (the system store when None)."""
    context = ssl.create_default_context(cafile=cafile)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def parameters(broker: TlsBroker, context: ssl.SSLContext,
               credentials: pika.credentials.ExternalCredentials | pika.credentials.PlainCredentials,
               ) -> pika.URLParameters:
    """amqps parameters with one quick attempt: a refused login must fail the test fast, not retry."""
    params = pika.URLParameters(broker.url)
    params.ssl_options = pika.SSLOptions(context, "localhost")  # the name in the server certificate
    params.credentials = credentials
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.stack_timeout = 15
    return params


def connect_agent(broker: TlsBroker, site: str) -> BlockingConnection:
    """Connects as ``agent-<site>`` with its client certificate and the EXTERNAL mechanism."""
    cert, key = {"vesta": (broker.vesta_cert, broker.vesta_key),
                 "mira": (broker.mira_cert, broker.mira_key)}[site]
    return BlockingConnection(parameters(broker, tls_context(broker.ca, cert, key),
                                         pika.credentials.ExternalCredentials()))


def connect_server(broker: TlsBroker) -> BlockingConnection:
    """Connects as the ARGO server with its password, verifying the broker against the CA."""
    return BlockingConnection(parameters(
        broker, tls_context(broker.ca),
        pika.credentials.PlainCredentials(broker.server_user, broker.server_password)))


@pytest.fixture
def vesta(broker: TlsBroker) -> Iterator[BlockingConnection]:
    """A connection of site vesta's agent."""
    connection = connect_agent(broker, "vesta")
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def server(broker: TlsBroker) -> Iterator[BlockingConnection]:
    """A connection of the ARGO server, with the topology the server declares."""
    connection = connect_server(broker)
    channel = connection.channel()
    declare_site_queue(channel, PREFIX, "mira")
    channel.exchange_declare(f"{PREFIX}.status", "topic", durable=True)
    channel.close()
    yield connection
    if connection.is_open:
        connection.close()


def wait_for_message(channel: BlockingChannel, queue: str, message_id: str
                     ) -> tuple[pika.spec.BasicProperties, bytes]:
    """Consumes ``queue`` until the message ``message_id`` arrives; others are handed back.

    Another run of these tests may share the queue, so a message that is not ours is requeued.
    """
    deadline = time.monotonic() + DEADLINE_S
    for method, properties, body in channel.consume(queue, inactivity_timeout=0.5):
        if method is not None:
            if properties.message_id == message_id:
                channel.basic_ack(method.delivery_tag)
                channel.cancel()
                return properties, body
            channel.basic_nack(method.delivery_tag, requeue=True)
        if time.monotonic() > deadline:
            channel.cancel()
            break
    raise AssertionError(f"message {message_id} did not arrive on {queue} within {DEADLINE_S} s")


def refused(action: Callable[[], object]) -> pika.exceptions.ChannelClosedByBroker:
    """Runs ``action`` and returns the broker's channel error it must raise."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        action()
    return caught.value


# ---------------------------------------------------------------- (1) certificate login, own queue


def test_agent_logs_in_by_certificate_and_uses_its_own_queue(
        vesta: BlockingConnection, server: BlockingConnection) -> None:
    """agent-vesta connects with its certificate only, declares what the agent declares, consumes
    its site's assignments and publishes reports that the broker stamps as coming from agent-vesta."""
    agent = vesta.channel()
    declare_topology(agent, PREFIX, "vesta")  # the agent's own declarations fit its permissions
    agent.confirm_delivery()

    # The server sees vesta's report; RabbitMQ refuses a user_id that is not the connection's
    # user, so a delivered user_id of agent-vesta proves who logged in.
    relay = server.channel()
    reports = relay.queue_declare("", exclusive=True).method.queue
    relay.queue_bind(reports, f"{PREFIX}.status", routing_key="status.vesta")
    report_id = uuid.uuid4().hex
    agent.basic_publish(f"{PREFIX}.status", "status.vesta", b"report",
                        pika.BasicProperties(user_id="agent-vesta", message_id=report_id))
    properties, body = wait_for_message(relay, reports, report_id)
    assert (properties.user_id, body) == ("agent-vesta", b"report")

    assignment_id = uuid.uuid4().hex
    relay.basic_publish(f"{PREFIX}.assign", "vesta", b"assignment",
                        pika.BasicProperties(message_id=assignment_id, delivery_mode=2))
    _, body = wait_for_message(agent, f"{PREFIX}.assign.vesta", assignment_id)
    assert body == b"assignment"


def test_agent_cannot_claim_another_identity(vesta: BlockingConnection) -> None:
    """A report stamped user_id=agent-mira on agent-vesta's connection is refused by the broker."""
    agent = vesta.channel()
    agent.exchange_declare(f"{PREFIX}.status", "topic", durable=True)
    agent.confirm_delivery()
    error = refused(lambda: agent.basic_publish(f"{PREFIX}.status", "status.vesta", b"forged",
                                                pika.BasicProperties(user_id="agent-mira")))
    assert error.reply_code == PRECONDITION_FAILED, error


# ---------------------------------------------------------------- (2) credentials per agent


def test_agent_is_refused_to_declare_another_sites_queue(
        vesta: BlockingConnection, server: BlockingConnection) -> None:
    """agent-vesta may not (re)declare argo.assign.mira, which would change or take over that queue."""
    agent = vesta.channel()
    error = refused(lambda: agent.queue_declare(f"{PREFIX}.assign.mira", durable=True,
                                                arguments={"x-queue-type": "quorum",
                                                           "x-dead-letter-exchange": f"{PREFIX}.dead"}))
    assert error.reply_code == ACCESS_REFUSED, error
    assert "argo.assign.mira" in error.reply_text


def test_agent_is_refused_to_consume_another_sites_queue(
        vesta: BlockingConnection, server: BlockingConnection) -> None:
    """agent-vesta may not read mira's assignments."""
    agent = vesta.channel()
    error = refused(lambda: agent.basic_consume(f"{PREFIX}.assign.mira", lambda *_: None))
    assert error.reply_code == ACCESS_REFUSED, error


def test_agent_is_refused_to_bind_another_sites_key(
        vesta: BlockingConnection, server: BlockingConnection) -> None:
    """agent-vesta may not bind mira's queue (nor redirect mira's routing key to its own queue)."""
    agent = vesta.channel()
    error = refused(lambda: agent.queue_bind(f"{PREFIX}.assign.mira", f"{PREFIX}.assign", routing_key="vesta"))
    assert error.reply_code == ACCESS_REFUSED, error


def test_agent_is_refused_to_report_for_another_site(
        vesta: BlockingConnection, server: BlockingConnection) -> None:
    """Topic permissions: agent-vesta publishes status only under its own site's routing keys."""
    agent = vesta.channel()
    agent.confirm_delivery()
    error = refused(lambda: agent.basic_publish(f"{PREFIX}.status", "status.mira", b"spoofed"))
    assert error.reply_code == ACCESS_REFUSED, error


def test_other_agent_uses_its_own_queue(broker: TlsBroker, server: BlockingConnection) -> None:
    """Control for the refusals above: agent-mira, with its own certificate, may use argo.assign.mira."""
    connection = connect_agent(broker, "mira")
    try:
        channel = connection.channel()
        declare_topology(channel, PREFIX, "mira")
        channel.basic_consume(f"{PREFIX}.assign.mira", lambda *_: None)
    finally:
        connection.close()


# ---------------------------------------------------------------- (3) the client verifies the broker


def test_client_without_the_ca_fails_the_handshake(broker: TlsBroker) -> None:
    """A client trusting only the system store rejects the broker's certificate."""
    params = parameters(broker, tls_context(None, broker.vesta_cert, broker.vesta_key),
                        pika.credentials.ExternalCredentials())
    # pika re-raises the handshake's own error rather than wrapping it
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        BlockingConnection(params).close()
    assert "certificate verify failed" in str(caught.value).lower(), caught.value


def test_certificate_from_another_ca_is_refused(broker: TlsBroker, tmp_path: Path) -> None:
    """A self-made certificate with CN=agent-vesta does not log in: the broker verifies the issuer."""
    cert, key = tmp_path / "forged.pem", tmp_path / "forged.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-subj", "/O=ArgoCI/CN=agent-vesta",
                    "-days", "1"], check=True, capture_output=True, timeout=30)
    params = parameters(broker, tls_context(broker.ca, str(cert), str(key)),
                        pika.credentials.ExternalCredentials())
    # the broker's TLS alert (bad_certificate) ends the stream before any AMQP is spoken
    with pytest.raises(pika.exceptions.AMQPConnectionError) as caught:
        BlockingConnection(params).close()
    assert "bad certificate" in repr(caught.value).lower(), caught.value


def test_certificate_login_needs_a_certificate(broker: TlsBroker) -> None:
    """EXTERNAL without a client certificate is refused (the server accepts none-cert TLS only for PLAIN)."""
    params = parameters(broker, tls_context(broker.ca), pika.credentials.ExternalCredentials())
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as caught:
        BlockingConnection(params).close()
    assert "EXTERNAL" in repr(caught.value), caught.value


@pytest.mark.parametrize("user", ["agent-vesta", "guest"])
def test_agents_and_guest_have_no_password(broker: TlsBroker, user: str) -> None:
    """Agents log in by certificate only, and the default guest user does not exist."""
    for password in ("", "guest"):
        params = parameters(broker, tls_context(broker.ca), pika.credentials.PlainCredentials(user, password))
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            BlockingConnection(params).close()


# ---------------------------------------------------------------- (4) password login over TLS


def test_server_logs_in_with_its_password_over_tls(broker: TlsBroker) -> None:
    """argo-server's password login over TLS works: a message goes round through a private queue."""
    connection = connect_server(broker)
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"over tls")
        deadline = time.monotonic() + DEADLINE_S
        while (got := channel.basic_get(queue, auto_ack=True))[0] is None and time.monotonic() < deadline:
            connection.sleep(0.02)
        assert got[2] == b"over tls"
    finally:
        connection.close()


def test_server_with_a_wrong_password_is_refused(broker: TlsBroker) -> None:
    """Control for the password login: a wrong password is refused."""
    params = parameters(broker, tls_context(broker.ca),
                        pika.credentials.PlainCredentials(broker.server_user, broker.server_password + "x"))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        BlockingConnection(params).close()


# ---------------------------------------------------------------- (5) no plain AMQP


def test_plain_amqp_to_the_tls_port_fails(broker: TlsBroker) -> None:
    """The broker speaks only TLS: a plain amqp:// connection to its port gets no AMQP session."""
    params = pika.ConnectionParameters(
        broker.host, broker.port, credentials=pika.credentials.PlainCredentials(broker.server_user,
                                                                                 broker.server_password),
        connection_attempts=1, socket_timeout=5, stack_timeout=10)
    started = time.monotonic()
    with pytest.raises(pika.exceptions.IncompatibleProtocolError):
        BlockingConnection(params).close()
    assert time.monotonic() - started < 10  # refused outright, not by a timeout
