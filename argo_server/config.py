"""Server configuration: defaults, environment variables and an optional YAML file."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .affinity import check_cpu_affinity
from .db import check_sqlite_synchronous

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

#: Environment variables read by :meth:`ServerConfig.from_env`, mapped to config fields.
ENV_VARS = {
    "ARGO_DATABASE_URL": "database_url",
    "ARGO_AMQP_URL": "amqp_url",
    "ARGO_AMQP_PREFIX": "amqp_prefix",
    "ARGO_DATA_ROOT": "data_root",
    "ARGO_LISTEN": "listen",
    "ARGO_MONITOR_LISTEN": "monitor_listen",
}

#: Values of the ``relay`` setting.
RELAY_MODES = ("process", "thread")


def state_dir() -> Path:
    """Directory of the server's default state: ``$ARGO_HOME`` or ``~/.local/state/argo``."""
    home = os.environ.get("ARGO_HOME")
    return Path(home) if home else Path.home() / ".local" / "state" / "argo"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class ServerConfig:
    """Everything the server needs to run. Empty strings mean "the default under the state dir"."""

    listen: str = DEFAULT_LISTEN
    database_url: str = ""
    amqp_url: str = DEFAULT_AMQP_URL
    amqp_prefix: str = "argo"
    data_root: str = ""
    #: When set, CreateJob refuses steps whose target site is not listed.
    known_sites: list[str] | None = None
    #: A site whose last heartbeat is older than this is reported offline.
    site_offline_after: float = 30.0
    #: Allow a non-loopback listen address (needs ``auth`` and TLS: see :mod:`argo_server.listen_policy`).
    allow_remote: bool = False
    #: Worker threads of the gRPC server.
    max_workers: int = 16
    #: CPUs to pin the server's threads to (empty: no pinning; the relay process keeps the CPUs the
    #: server had): see :mod:`argo_server.affinity`.
    cpu_affinity: list[int] = dataclasses.field(default_factory=list)
    #: Where the outbox relay runs: ``process`` (a child process, beside the gRPC threads instead of under
    #: their interpreter lock) or ``thread`` (inside the server process).
    relay: str = "process"
    #: Seconds between outbox polls when nothing wakes the relay (other replicas' rows, retries).
    relay_poll_interval: float = 0.5
    #: Shortest time, in seconds, from the start of a relay pass that published to the start of the
    #: next: under load the envelopes committed meanwhile go in one message per site (0: no wait).
    relay_gather: float = 0.002
    #: Seconds between the background checkpoints of SQLite's WAL into the database (SQLite only).
    checkpoint_interval: float = 0.5
    #: SQLite only: ``full`` syncs every commit (it survives an OS crash or power loss), ``normal`` only
    #: the checkpoints (it survives a crash of the server): see :data:`argo_server.db.SQLITE_SYNCHRONOUS`.
    sqlite_synchronous: str = "full"
    #: Seconds between job_events polls of the WatchJobs poller.
    watch_poll_interval: float = 0.1
    #: Messages prefetched by the status consumer (and the most applied in one transaction).
    status_prefetch: int = 200
    #: Start the outbox relay and the status consumer with the server (off for pure-API tests).
    run_background: bool = True
    #: HOST:PORT of the monitor web page (empty: no page).
    monitor_listen: str = ""
    #: E-mail notices: the fields of :class:`argo_server.notices.MailConfig` (empty: no mail).
    mail: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Require a bearer token on every call (``argo-server token create``) and enforce job ownership.
    auth: bool = False
    #: Seconds a verified token is trusted without a database read (a revocation takes this long).
    token_cache_seconds: float = 10.0
    #: PEM certificate chain and key of the gRPC server: TLS when both are set.
    tls_cert: str = ""
    tls_key: str = ""
    #: PEM CA bundle of client certificates: when set, every client must present one it signed.
    tls_client_ca: str = ""
    #: Largest gRPC request accepted, in bytes; larger ones are refused before they are parsed.
    max_request_bytes: int = 4 * 1024 * 1024
    #: RabbitMQ over TLS (``amqps://``): CA of the broker, client certificate and key (EXTERNAL login
    #: when the URL has no user), and the name to verify when it differs from the URL's host.
    amqp_tls_ca: str = ""
    amqp_tls_cert: str = ""
    amqp_tls_key: str = ""
    amqp_tls_server_name: str = ""
    #: Largest status message accepted from the broker, in bytes; larger ones are dead-lettered unread.
    amqp_max_body_bytes: int = 8 * 1024 * 1024

    def resolved(self) -> ServerConfig:
        """Returns a copy with the state-dir defaults filled in (ValueError names a bad setting)."""
        if self.relay not in RELAY_MODES:
            raise ValueError(f"relay: must be one of {', '.join(RELAY_MODES)}, not {self.relay!r}")
        interval = self.checkpoint_interval
        if not _is_number(interval) or not interval > 0:
            raise ValueError(f"checkpoint_interval: must be a positive number of seconds, not {interval!r}")
        check_sqlite_synchronous(self.sqlite_synchronous)
        check_cpu_affinity(self.cpu_affinity)
        gather = self.relay_gather
        if not _is_number(gather) or not 0 <= gather <= 1:
            raise ValueError(f"relay_gather: must be a number of seconds from 0 to 1, not {gather!r}")
        copy = dataclasses.replace(self)
        if not copy.database_url:
            copy.database_url = f"sqlite:///{state_dir() / 'argo.db'}"
        if not copy.data_root:
            copy.data_root = (state_dir() / "data").as_uri()
        copy.data_root = copy.data_root.rstrip("/")
        return copy

    def with_env(self, environ: dict[str, str] | None = None) -> ServerConfig:
        """Returns a copy with the ``ARGO_*`` environment variables applied."""
        environ = dict(os.environ) if environ is None else environ
        values: dict[str, Any] = {attr: environ[var] for var, attr in ENV_VARS.items() if environ.get(var)}
        return dataclasses.replace(self, **values)

    @classmethod
    def from_file(cls, path: str | Path) -> ServerConfig:
        """Reads a YAML mapping of field names (``database_url: ...``, ``known_sites: [...]``)."""
        data: Any = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}; valid: {sorted(names)}")
        return cls(**data)

