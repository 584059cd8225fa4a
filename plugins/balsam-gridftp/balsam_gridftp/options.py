"""The site options of the GridFTP backend, read from ``SiteProfile.options["gridftp"]``.

Every key is optional; an unknown key or a value of the wrong type stops the agent at start-up, because
a misspelt credential path would otherwise only show up as a failed transfer hours later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from balsam_agent.records import coerce_option, option_default

#: Environment variables of ``globus-url-copy`` that carry the GSI credentials, by option name.
CREDENTIAL_ENV = {
    "x509_user_proxy": "X509_USER_PROXY",
    "x509_user_cert": "X509_USER_CERT",
    "x509_user_key": "X509_USER_KEY",
    "x509_cert_dir": "X509_CERT_DIR",
}


@dataclass(frozen=True)
class GridFTPOptions:
    """How the backend runs ``globus-url-copy`` at one site."""

    #: Parallel data streams per file (``-p``); 1 turns parallelism off.
    parallel_streams: int = 4
    #: GSI proxy certificate (``X509_USER_PROXY`` of the child process).
    x509_user_proxy: str = ""
    #: User certificate and key, used when there is no proxy (``X509_USER_CERT`` / ``X509_USER_KEY``).
    x509_user_cert: str = ""
    x509_user_key: str = ""
    #: Directory of trusted CA certificates and signing policies (``X509_CERT_DIR``).
    x509_cert_dir: str = ""
    #: Compare source and destination checksums after each file (``-verify-checksum``).
    verify_checksum: bool = False
    #: Checksum algorithm for the comparison (``-checksum-alg``, e.g. ``MD5``, ``ADLER32``); empty: MD5.
    checksum_alg: str = ""
    #: Further attempts after a failure that may go away (server down, connection reset).
    retries: int = 3
    #: Seconds before the first retry; doubled for every further one, capped at ``backoff_max``.
    backoff_seconds: float = 2.0
    backoff_max: float = 60.0
    #: Seconds without data movement before ``globus-url-copy`` gives up (``-stall-timeout``); 0: never.
    stall_timeout: int = 600
    #: TCP buffer size in bytes (``-tcp-bs``); 0: the system's default.
    tcp_buffer_size: int = 0
    #: Block size in bytes (``-bs``); 0: the default.
    block_size: int = 0
    #: Use MODE E for every transfer (``-fast``), recommended with GridFTP servers.
    fast: bool = True
    #: Expected subject (DN) of the servers' host certificates (``-s``); empty: derived from the host.
    subject: str = ""
    #: Program to run (a name on PATH or an absolute path).
    command: str = "globus-url-copy"
    #: Extra arguments placed before the URLs, for site-specific needs (``-nodcau``, ``-dcpriv``, ...).
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    #: Extra environment variables of the child (``GLOBUS_TCP_PORT_RANGE``, ...).
    env: Mapping[str, str] = field(default_factory=dict)
    #: Seconds between a cancellation's SIGTERM and the SIGKILL that follows if the child lingers.
    kill_grace: float = 5.0

    @classmethod
    def from_site_options(cls, options: Mapping[str, Any]) -> GridFTPOptions:
        """Reads ``options["gridftp"]`` (absent: every default).

        :raises ValueError: naming every unknown key and every value of the wrong type at once.
        """
        raw = options.get("gridftp") or {}
        if not isinstance(raw, Mapping):
            raise ValueError("site option 'gridftp' must be a mapping")
        known = {f.name: f for f in fields(cls)}
        problems = [f"unknown key {key!r}" for key in raw if key not in known]
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                continue
            try:
                values[key] = coerce_option(key, value, option_default(known[key]))
            except (TypeError, ValueError) as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("site option 'gridftp': " + "; ".join(problems))
        result = cls(**values)
        if result.parallel_streams < 1:
            raise ValueError("site option 'gridftp': parallel_streams must be at least 1")
        if result.retries < 0 or result.backoff_seconds < 0 or result.backoff_max < 0:
            raise ValueError("site option 'gridftp': retries and backoff must not be negative")
        return result

    def credential_env(self) -> dict[str, str]:
        """The X509_* variables the child process gets (only those configured)."""
        return {env: getattr(self, name) for name, env in CREDENTIAL_ENV.items() if getattr(self, name)}

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        return float(min(self.backoff_seconds * (2**attempt), self.backoff_max))
