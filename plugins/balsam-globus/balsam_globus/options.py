"""The site options of the Globus backend, read from ``SiteProfile.options["globus"]``.

An unknown key, a value of the wrong type or a missing credential stops the agent at start-up rather
than failing the first transfer hours later.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from balsam_agent.records import coerce_option, option_default

#: Event codes after which a Globus task cannot succeed: the task is cancelled and the step fails at
#: once, instead of Globus retrying until the task's deadline (modern Balsam's issue #114).
DEFAULT_FATAL_CODES = (
    "FILE_NOT_FOUND",
    "PERMISSION_DENIED",
    "NOT_A_DIRECTORY",
    "IS_A_DIRECTORY",
    "QUOTA_EXCEEDED",
    "FILE_SIZE_CHANGED",
    "ENDPOINT_ERROR",
    "INVALID_PATH",
)


@dataclass(frozen=True)
class GlobusOptions:
    """How the backend talks to Globus at one site."""

    #: Globus Auth client id of the agent's app registration.
    client_id: str = ""
    #: Its secret: with no ``refresh_token``, the agent authenticates as the app itself (client
    #: credentials); with one, the secret makes the app a confidential client for refreshing.
    client_secret: str = ""
    #: A stored refresh token for the Transfer scope (a user's identity), used instead of client
    #: credentials when set.
    refresh_token: str = ""
    #: UUID of this site's own Globus endpoint (collection), which sees the step working directories.
    local_endpoint: str = ""
    #: Where the local endpoint's root is on this machine's filesystem, and what that directory is
    #: called on the endpoint: a local path ``<local_fs_root>/x`` is ``<local_endpoint_root>/x`` there.
    local_fs_root: str = "/"
    local_endpoint_root: str = "/"
    #: Seconds between polls of a task.
    poll_interval: float = 5.0
    #: Seconds a task may take before it is cancelled and the step fails (0: no limit of ours).
    deadline_seconds: float = 0.0
    #: Ask Globus to compare checksums of every file after it moved.
    verify_checksum: bool = True
    #: Event codes that fail the task at once (see :data:`DEFAULT_FATAL_CODES`).
    fatal_error_codes: tuple[str, ...] = DEFAULT_FATAL_CODES
    #: Prefix of the task labels shown in the Globus web app.
    label_prefix: str = "balsam"
    #: Retries of one Transfer API call after a network error or a 5xx answer (globus-sdk's own retry).
    api_retries: int = 5
    #: Consecutive failed polls tolerated before the transfer is given up (a short Globus outage
    #: should not fail every running step).
    poll_failures_allowed: int = 5

    @classmethod
    def from_site_options(cls, options: Mapping[str, Any]) -> GlobusOptions:
        """Reads ``options["globus"]``.

        :raises ValueError: naming every unknown key, wrongly typed value and missing setting at once.
        """
        raw = options.get("globus") or {}
        if not isinstance(raw, Mapping):
            raise ValueError("site option 'globus' must be a mapping")
        known = {f.name: f for f in fields(cls)}
        problems = [f"unknown key {key!r}" for key in raw if key not in known]
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key in known:
                try:
                    values[key] = coerce_option(key, value, option_default(known[key]))
                except TypeError as exc:
                    problems.append(str(exc))
        result = cls(**values) if not problems else cls()
        if not problems:
            problems += result._missing()
        if problems:
            raise ValueError("site option 'globus': " + "; ".join(problems))
        return result

    def _missing(self) -> list[str]:
        problems = []
        if not self.client_id:
            problems.append("'client_id' is required")
        if not self.refresh_token and not self.client_secret:
            problems.append("set 'client_secret' (client credentials) or 'refresh_token'")
        try:
            uuid.UUID(self.local_endpoint)
        except ValueError:
            problems.append(f"'local_endpoint' must be the UUID of this site's endpoint, not "
                            f"{self.local_endpoint!r}")
        if not self.local_fs_root.startswith("/") or not self.local_endpoint_root.startswith("/"):
            problems.append("'local_fs_root' and 'local_endpoint_root' must be absolute paths")
        if self.poll_interval <= 0:
            problems.append("'poll_interval' must be positive")
        return problems
