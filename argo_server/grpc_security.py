"""What the gRPC server exposes and how: the listen policy, TLS, request size limits and interceptors.

Listen policy (checked before anything binds):

- a loopback address is always allowed (with or without authentication and TLS);
- any other address needs ``allow_remote`` *and* ``auth`` *and* TLS: an unauthenticated control plane
  on the network would let anyone run programs at every site, and bearer tokens sent in clear text are
  as good as no tokens. A TLS-terminating proxy on the same host can forward to a loopback address.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

import grpc

from .auth import AuthInterceptor
from .config import ServerConfig
from .db import Database
from .tokens import TokenStore

log = logging.getLogger(__name__)


def is_loopback(listen: str) -> bool:
    """Whether ``HOST:PORT`` names a loopback address."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_enabled(config: ServerConfig) -> bool:
    """Whether the server speaks TLS (certificate and key configured; one without the other is an error)."""
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ValueError("tls_cert and tls_key go together: give both or neither")
    if config.tls_client_ca and not config.tls_cert:
        raise ValueError("tls_client_ca needs tls_cert and tls_key (client certificates are a TLS feature)")
    return bool(config.tls_cert)


def check_listen(config: ServerConfig) -> None:
    """Raises ValueError when the listen address would expose the API more than the settings allow."""
    tls = tls_enabled(config)
    if config.monitor_listen and not is_loopback(config.monitor_listen):
        if not (config.allow_remote and config.auth):
            raise ValueError(f"refusing to serve the monitor page on {config.monitor_listen}: a non-loopback "
                             "address needs --allow-remote and --auth")
        log.warning("the monitor page on %s is plain HTTP: put a TLS proxy in front of it, or tokens "
                    "typed into it cross the network in clear text", config.monitor_listen)
    if is_loopback(config.listen):
        return
    if not config.allow_remote:
        raise ValueError(f"refusing to listen on {config.listen}: a non-loopback address needs "
                         "--allow-remote, --auth and TLS (--tls-cert/--tls-key)")
    if not config.auth:
        raise ValueError(f"refusing to listen on {config.listen} without authentication: "
                         "--allow-remote needs --auth (tokens from `argo-server token create`)")
    if not tls:
        raise ValueError(f"refusing to listen on {config.listen} without TLS: bearer tokens would cross "
                         "the network in clear text (give --tls-cert and --tls-key)")


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials of the server (None without TLS); with ``tls_client_ca`` client certificates are
    required and verified against it."""
    if not tls_enabled(config):
        return None
    chain = Path(config.tls_cert).expanduser().read_bytes()
    key = Path(config.tls_key).expanduser().read_bytes()
    client_ca = Path(config.tls_client_ca).expanduser().read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def server_options(config: ServerConfig) -> list[tuple[str, Any]]:
    """Channel options of the server: requests over ``max_request_bytes`` are refused by gRPC itself
    (RESOURCE_EXHAUSTED) before any parsing."""
    return [("grpc.max_receive_message_length", config.max_request_bytes)]


def interceptors(config: ServerConfig, db: Database) -> list[grpc.ServerInterceptor]:
    """The security interceptors (authentication when ``auth`` is on)."""
    if not config.auth:
        return []
    return [AuthInterceptor(TokenStore(db, config.token_cache_seconds))]


def bind(server: grpc.Server, config: ServerConfig) -> int:
    """Binds the listen address (TLS when configured) and returns the port; OSError when it cannot."""
    credentials = server_credentials(config)
    if credentials is None:
        port = server.add_insecure_port(config.listen)
    else:
        port = server.add_secure_port(config.listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {config.listen}")
    if not config.auth:
        log.warning("authentication is off: every caller on %s may see and change every job", config.listen)
    return port


def monitor_credentials(config: ServerConfig) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    """How the monitor page's own channel reaches a TLS server: trusting the server's certificate chain
    (its last certificate is the issuing CA, or the certificate itself when self-signed), with the
    name checked against the certificate's, not the listen address."""
    if not tls_enabled(config):
        return None, []
    chain = Path(config.tls_cert).expanduser().read_bytes()
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    certificates = x509.load_pem_x509_certificates(chain)
    names = certificates[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        alt = certificates[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = alt.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    target = dns[0] if dns else (str(names[0].value) if names else "localhost")
    return grpc.ssl_channel_credentials(root_certificates=chain), [("grpc.ssl_target_name_override", target)]
