"""TLS, certificate login and refusals of the agent's RabbitMQ connections.

``amqps://`` URLs are verified against ``amqp_tls_ca`` (or the system store) with host name checking.
With ``amqp_tls_cert``/``amqp_tls_key`` the agent presents a client certificate; when the URL has no
user name the certificate is the login (SASL EXTERNAL), so a site holds no broker password at all.

A refusal by the broker (bad login, no permission for this site's queue, an untrusted certificate) is
not an outage: retrying cannot help, so the agent stops and says why (:func:`refusal_of`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import pika
import pika.credentials
import pika.exceptions

if TYPE_CHECKING:
    from balsam_agent.config import AgentConfig

ACCESS_REFUSED = 403
NOT_ALLOWED = 530


@dataclass(frozen=True)
class AmqpTls:
    """TLS settings of the agent's broker connections (all optional)."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""


def apply_tls(parameters: pika.URLParameters, url: str, tls: AmqpTls | None) -> pika.URLParameters:
    """Adds TLS (and EXTERNAL login) to ``parameters`` of ``url``; returns them.

    Raises ValueError for TLS settings on a plain ``amqp://`` URL (they would be silently unused) and
    for a certificate without its key."""
    tls = tls or AmqpTls()
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


def refusal_of(error: BaseException) -> str | None:
    """Why the broker refused us for good (login, permissions, certificate), or None for an error that
    a reconnect may cure (broker down, connection lost, an exchange not declared yet)."""
    if isinstance(error, (pika.exceptions.ProbableAuthenticationError,
                          pika.exceptions.ProbableAccessDeniedError)):
        return f"the broker refused the login: {error}"
    if isinstance(error, (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)) \
            and error.reply_code in (ACCESS_REFUSED, NOT_ALLOWED):
        return f"the broker refused access ({error.reply_code}): {error.reply_text}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the broker's certificate is not trusted: {error}"
    if isinstance(error, pika.exceptions.AMQPConnectionError) and "certificate" in repr(error).lower():
        return f"the broker refused our certificate: {error!r}"
    return None


class _Link(Protocol):
    tls: AmqpTls | None
    declare_exchanges: bool


def configure_links(config: AgentConfig, *links: _Link) -> None:
    """Applies the configuration's TLS and declaration settings to the agent's broker connections
    (with no links: only checks them). Raises ConfigError for settings that cannot work, so the agent
    fails at start rather than in its reconnect loop."""
    from balsam_agent.config import ConfigError

    tls = AmqpTls(config.amqp_tls_ca, config.amqp_tls_cert, config.amqp_tls_key, config.amqp_tls_server_name)
    try:
        apply_tls(pika.URLParameters(config.amqp_url), config.amqp_url, tls)
    except (ValueError, OSError) as error:
        raise ConfigError(str(error)) from error
    for link in links:
        link.tls = tls
        link.declare_exchanges = config.declare_exchanges
