"""The agent's configuration: the YAML file of ``balsam-agent --config`` and its resolution into a site.

Example::

    amqp_url: amqp://agent-mira:secret@argo-host:5672/%2F
    amqp_prefix: argo
    state_dir: /var/lib/balsam          # agent.sqlite and, by default, the step working directories
    heartbeat_interval: 5
    workers: 16                         # threads for blocking phases (transfers, hooks, submits)
    retention_days: 7                   # how long ended attempts stay in agent.sqlite
    site:                               # overrides fields of the SiteProfile of that name
      allowed_exec_dir: /projects/atlas/bin
      max_queued_steps: 200
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from balsam_agent.records import SiteProfile
from balsam_agent.state import SQLITE_SYNCHRONOUS

_SITE_FIELDS = {f.name for f in dataclasses.fields(SiteProfile)}


class ConfigError(Exception):
    """The configuration file is wrong; the message says where."""


@dataclass
class AgentConfig:
    """Settings of one agent process."""

    #: Name of the site the agent serves (the routing key of its assignment queue).
    site_name: str
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    amqp_prefix: str = "argo"
    #: Holds ``agent.sqlite`` and, unless the site names a ``work_root``, ``work/``.
    state_dir: Path = field(default_factory=lambda: Path("balsam-state"))
    #: Seconds between heartbeats.
    heartbeat_interval: float = 5.0
    #: Threads for blocking phases (transfers, hooks, scheduler commands).
    workers: int = 16
    #: Envelopes the broker may hand the agent before it acks (bounded by the agent's commits).
    prefetch: int = 500
    #: Days an ended attempt (and the envelopes seen for it) stays in the agent's database; within
    #: them a re-delivered envelope of that attempt is recognised as a duplicate.
    retention_days: float = 7.0
    #: Least seconds between two status messages: under load, the updates of this long travel together.
    report_linger: float = 0.05
    #: Field overrides of the site profile (or a whole profile when no plugin offers the site).
    site: Mapping[str, Any] = field(default_factory=dict)
    #: Load external plugins from the ``balsam`` entry-point group.
    load_entry_points: bool = True
    #: Plugin objects registered in addition (tests, embedding applications).
    extra_plugins: tuple[object, ...] = ()
    #: RabbitMQ over TLS (``amqps://``): CA of the broker, client certificate and key (the certificate
    #: is the login when the URL has no user), and the name to verify when it differs from the host.
    amqp_tls_ca: str = ""
    amqp_tls_cert: str = ""
    amqp_tls_key: str = ""
    amqp_tls_server_name: str = ""
    #: Declare the exchanges the server owns (assign, status, dead); false only checks that they exist,
    #: so the broker may deny the agent every configure permission but its own queue's.
    declare_exchanges: bool = True
    #: ``full`` syncs every commit of the agent's database (it survives an OS crash or power loss),
    #: ``normal`` only its checkpoints (it survives a crash of the agent): see ``state.SQLITE_SYNCHRONOUS``.
    sqlite_synchronous: str = "full"

    @classmethod
    def from_mapping(cls, site_name: str, data: Mapping[str, Any]) -> AgentConfig:
        """Builds a configuration from the parsed YAML mapping."""
        known = {"amqp_url", "amqp_prefix", "state_dir", "heartbeat_interval", "workers", "prefetch", "site",
                 "retention_days", "report_linger",
                 "load_entry_points", "amqp_tls_ca", "amqp_tls_cert", "amqp_tls_key", "amqp_tls_server_name",
                 "declare_exchanges", "sqlite_synchronous"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration keys {unknown}; valid: {sorted(known)}")
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if v is not None}
        for name, kind, lowest in (("heartbeat_interval", float, 0.0), ("workers", int, 1), ("prefetch", int, 1),
                                   ("retention_days", float, 0.0), ("report_linger", float, 0.0)):
            if name in kwargs:
                value = kwargs[name]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                        (kind is int and not isinstance(value, int)) or value < lowest:
                    raise ConfigError(f"{name}: expected {'an integer' if kind is int else 'a number'} "
                                      f">= {lowest:g}, got {value!r}")
        if kwargs.get("sqlite_synchronous", "full") not in SQLITE_SYNCHRONOUS:
            raise ConfigError(f"sqlite_synchronous: expected one of {', '.join(SQLITE_SYNCHRONOUS)}, "
                              f"got {kwargs['sqlite_synchronous']!r}")
        if "state_dir" in kwargs:
            kwargs["state_dir"] = Path(kwargs["state_dir"]).expanduser()
        site = kwargs.get("site") or {}
        if not isinstance(site, Mapping):
            raise ConfigError("'site' must be a mapping of SiteProfile fields")
        kwargs["site"] = dict(site)
        return cls(site_name=site_name, **kwargs)

    @classmethod
    def load(cls, site_name: str, path: Path) -> AgentConfig:
        """Reads a YAML configuration file."""
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return cls.from_mapping(site_name, data)

    @property
    def database_path(self) -> Path:
        """Where the agent's SQLite database lives."""
        return self.state_dir / "agent.sqlite"


def resolve_site(config: AgentConfig, offered: Mapping[str, SiteProfile]) -> SiteProfile:
    """Picks the site profile by name from what plugins offer and applies the configured overrides.

    Without a plugin profile of that name, the ``site`` mapping must be a whole profile (at least
    ``scheduler``). ``work_root`` defaults to ``<state_dir>/work``.
    """
    overrides = dict(config.site)
    unknown = sorted(set(overrides) - _SITE_FIELDS)
    if unknown:
        raise ConfigError(f"unknown site fields {unknown}; valid: {sorted(_SITE_FIELDS)}")
    overrides.pop("name", None)
    base = offered.get(config.site_name)
    if base is None:
        if "scheduler" not in overrides:
            valid = ", ".join(sorted(offered)) or "none"
            raise ConfigError(f"no plugin offers a site profile {config.site_name!r} (offered: {valid}); "
                              "give a whole profile under 'site:' (at least 'scheduler')")
        profile = SiteProfile(name=config.site_name, **overrides)
    else:
        if "options" in overrides:
            # Options merge: a configuration adds settings to the plugin's, it does not drop them.
            overrides["options"] = {**base.options, **overrides["options"]}
        profile = dataclasses.replace(base, **overrides)
    if not profile.work_root:
        profile = dataclasses.replace(profile, work_root=str((config.state_dir / "work").resolve()))
    return profile
