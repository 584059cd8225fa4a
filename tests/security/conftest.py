"""Fixtures of the security tests: throwaway certificates and servers with authentication on."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from argobalsam.argo.v1 import argo_service_pb2_grpc, site_service_pb2_grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from argo_server.app import ServerProcess
from argo_server.config import ServerConfig
from argo_server.db import Database
from argo_server.schema import upgrade
from argo_server.tokens import TokenStore


@dataclass(frozen=True)
class Pki:
    """PEM files of a throwaway CA, a server certificate (localhost, 127.0.0.1) and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ArgoTest"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _ca(path: Path, common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _leaf(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, common_name: str, cert_path: Path,
          key_path: Path, *, server: bool) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert_path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA with a server and a client certificate, and an unrelated second CA."""
    root = tmp_path_factory.mktemp("pki")
    ca, ca_key = _ca(root / "ca.pem", "Argo Test CA")
    _leaf(ca, ca_key, "localhost", root / "server.pem", root / "server.key", server=True)
    _leaf(ca, ca_key, "alice", root / "client.pem", root / "client.key", server=False)
    _ca(root / "other-ca.pem", "Unrelated CA")
    return Pki(root / "ca.pem", root / "server.pem", root / "server.key", root / "client.pem",
               root / "client.key", root / "other-ca.pem")


@dataclass
class AuthServer:
    """A running server with authentication on, and tokens of two users and an admin."""

    process: ServerProcess
    tokens: TokenStore
    alice: str
    bob: str
    admin: str

    @property
    def address(self) -> str:
        """``127.0.0.1:port``."""
        return f"127.0.0.1:{self.process.port}"

    def stubs(self, channel: grpc.Channel) -> tuple[argo_service_pb2_grpc.ArgoServiceStub,
                                                    site_service_pb2_grpc.SiteServiceStub]:
        """Stubs over ``channel``."""
        return argo_service_pb2_grpc.ArgoServiceStub(channel), site_service_pb2_grpc.SiteServiceStub(channel)


def issue_tokens(database_url: str) -> tuple[TokenStore, str, str, str]:
    """Migrates the database and issues tokens for alice, bob and an admin."""
    db = Database(database_url)
    upgrade(db.engine)
    store = TokenStore(db, cache_seconds=0.0)
    return (store, store.create("alice")[0], store.create("bob")[0],
            store.create("root", admin=True, description="test admin")[0])


@pytest.fixture
def start_auth_server(tmp_path: Path) -> Iterator[Callable[..., AuthServer]]:
    """Starts servers with ``auth`` on (SQLite, no broker loops: the API alone) and stops them after."""
    started: list[AuthServer] = []

    def start(**settings: object) -> AuthServer:
        url = f"sqlite:///{tmp_path / f'argo{len(started)}.db'}"
        tokens, alice, bob, admin = issue_tokens(url)
        defaults: dict[str, object] = {
            "listen": "127.0.0.1:0", "database_url": url,
            "data_root": (tmp_path / "data").as_uri(), "auth": True, "run_background": False,
            "token_cache_seconds": 0.0}
        process = ServerProcess(ServerConfig(**{**defaults, **settings}))  # type: ignore[arg-type]
        process.start()
        server = AuthServer(process, tokens, alice, bob, admin)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.stop(grace=0.5)
        server.tokens.db.dispose()


def bearer(token: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying ``token``."""
    return (("authorization", f"Bearer {token}"),)
