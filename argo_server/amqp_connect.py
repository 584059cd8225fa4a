"""Connection parameters of the server's RabbitMQ connections (outbox relay, status consumer).

``amqps://`` URLs are verified against ``amqp_tls_ca`` (or the system store), always with host name
checking. A client certificate (``amqp_tls_cert``/``amqp_tls_key``) is presented when configured; when
the URL carries no user name, the login is the certificate itself (SASL EXTERNAL, RabbitMQ's
``rabbitmq_auth_mechanism_ssl``), as the original system's agents logged in.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import pika
import pika.credentials

from .config import ServerConfig


@dataclass(frozen=True)
class AmqpTls:
    """TLS settings of a broker connection (all optional)."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""

    @classmethod
    def from_config(cls, config: ServerConfig) -> AmqpTls:
        """The ``amqp_tls_*`` settings of the server."""
        return cls(config.amqp_tls_ca, config.amqp_tls_cert, config.amqp_tls_key, config.amqp_tls_server_name)


def connection_parameters(url: str, name: str, tls: AmqpTls | None = None) -> pika.URLParameters:
    """Parameters for ``url`` with a connection name operators see in ``rabbitmqctl list_connections``.

    Raises ValueError for TLS settings on a plain ``amqp://`` URL (they would be silently unused)."""
    tls = tls or AmqpTls()
    parameters = pika.URLParameters(url)
    parameters.client_properties = {"connection_name": name}
    parts = urlsplit(url)
    if parts.scheme != "amqps":
        if tls.ca or tls.cert or tls.key:
            raise ValueError(f"amqp_tls_* settings need an amqps:// URL, not {parts.scheme}://")
        return parameters
    if bool(tls.cert) != bool(tls.key):
        raise ValueError("amqp_tls_cert and amqp_tls_key go together: give both or neither")
    context = ssl.create_default_context(cafile=tls.ca or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert:
        context.load_cert_chain(tls.cert, tls.key)
    parameters.ssl_options = pika.SSLOptions(context, tls.server_name or parts.hostname or "localhost")
    if not parts.username and tls.cert:
        parameters.credentials = pika.credentials.ExternalCredentials()
    return parameters
