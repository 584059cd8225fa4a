"""Where the client finds its server, TLS files and token: arguments, then environment, then config file.

The config file is YAML, ``$ARGO_CONFIG`` or ``~/.config/argo/config.yaml``::

    server: argo.example.org:50051
    tls_ca: ~/.config/argo/ca.pem      # turns TLS on
    tls_cert: ~/.config/argo/me.pem    # optional client certificate ...
    tls_key: ~/.config/argo/me.key     # ... and its key
    token: s3cret                      # sent as "authorization: Bearer s3cret"
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: Address used when neither an argument, ``ARGO_SERVER`` nor the config file names one.
DEFAULT_SERVER = "127.0.0.1:50051"

#: Environment variables read for each setting.
ENV_SERVER = "ARGO_SERVER"
ENV_TLS_CA = "ARGO_TLS_CA"
ENV_TLS_CERT = "ARGO_TLS_CERT"
ENV_TLS_KEY = "ARGO_TLS_KEY"
ENV_TOKEN = "ARGO_TOKEN"
ENV_CONFIG = "ARGO_CONFIG"

_CONFIG_KEYS = frozenset({"server", "tls_ca", "tls_cert", "tls_key", "token"})


class ConfigError(ValueError):
    """The config file cannot be read or holds something other than the documented keys."""


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings: the CA that signed the server's certificate and an optional client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def credentials(self) -> Any:
        """Builds the ``grpc.ChannelCredentials`` (reads the files now, so a missing file fails early)."""
        import grpc

        def read(path: str | None) -> bytes | None:
            return Path(path).expanduser().read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


@dataclass(frozen=True)
class Settings:
    """The resolved connection settings of one client."""

    server: str
    tls: TlsConfig | None
    token: str | None


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The config file's path: ``$ARGO_CONFIG`` or ``~/.config/argo/config.yaml``."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_CONFIG)
    if explicit:
        return Path(explicit).expanduser()
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "argo" / "config.yaml"


def load_config_file(path: Path) -> dict[str, str]:
    """Reads the config file; a missing file is an empty config, a malformed one a :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of {', '.join(sorted(_CONFIG_KEYS))}")
    unknown = sorted(str(key) for key in data if key not in _CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(_CONFIG_KEYS))})")
    result: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if not isinstance(value, str | int):
            raise ConfigError(f"{path}: {key}: must be a string")
        result[key] = str(value)
    return result


def resolve_settings(
    server: str | None = None,
    *,
    tls: TlsConfig | str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolves each setting from the first place that has it: argument, environment, config file.

    :param server: ``host:port`` of the server.
    :param tls: a :class:`TlsConfig`, or the path of a CA file; ``None`` to look further.
    :param token: the bearer token.
    :param environ: the environment to read (default ``os.environ``).
    :param config_file: the config file (default :func:`config_path`).
    :returns: the settings; TLS is on when any CA or client certificate is configured.
    """
    env = os.environ if environ is None else environ
    config = load_config_file(config_file if config_file is not None else config_path(env))

    def pick(argument: str | None, env_name: str, key: str) -> str | None:
        if argument:
            return argument
        return env.get(env_name) or config.get(key) or None

    if isinstance(tls, str):
        tls = TlsConfig(ca_file=tls)
    if tls is None:
        ca = pick(None, ENV_TLS_CA, "tls_ca")
        cert = pick(None, ENV_TLS_CERT, "tls_cert")
        key = pick(None, ENV_TLS_KEY, "tls_key")
        if ca or cert or key:
            tls = TlsConfig(ca_file=ca, cert_file=cert, key_file=key)
    return Settings(
        server=pick(server, ENV_SERVER, "server") or DEFAULT_SERVER,
        tls=tls,
        token=pick(token, ENV_TOKEN, "token"),
    )
