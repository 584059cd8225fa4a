"""The transfer backend API: what a transfer plugin implements for its URL schemes.

The agent groups a step's files per direction and scheme and calls the backend once per group, from a
worker thread, so one slow transfer holds back no other step. A backend raises :class:`TransferError`
naming the file and the reason; it must never leave a partial file at the destination under the final
name (write to a temporary name and rename, or delete on failure).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from balsam_agent.records import SiteProfile


@dataclass(frozen=True)
class TransferItem:
    """One file to move: a remote URL and a local path inside the step's working directory."""

    url: str
    path: Path
    #: The step's working directory, which ``path`` must stay inside (backends re-check it).
    workdir: Path | None = None


class TransferError(Exception):
    """A transfer failed; the message names the file and says why."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


#: Characters that would let a URL smuggle a second line into an argument list, a url-pair file or a log.
_CONTROL = frozenset(chr(c) for c in range(32)) | {"\x7f"}


def redact(url: str) -> str:
    """The URL without a password in its user info, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def check_url(url: str, what: str) -> SplitResult:
    """Parses a transfer URL and refuses one whose path could climb out of the data area.

    Every backend calls this before any byte moves, and the agent calls it when an assignment arrives.

    :param what: how messages name the file (``input file X``).
    :raises TransferError: for control characters or ``..`` path segments, also percent-encoded once or
        twice (``%2e%2e``, ``%252e%252e``).
    """
    if any(ch in _CONTROL for ch in url):
        raise TransferError(f"{what}: refused URL with control characters: {redact(url)!r}")
    parts = urlsplit(url)
    decoded = unquote(parts.path)
    for candidate in (parts.path, decoded, unquote(decoded)):
        if ".." in candidate.split("/") or any(ch in _CONTROL for ch in candidate):
            raise TransferError(f"{what}: refused URL that leaves the data area: {redact(url)}")
    return parts


def check_local_path(item: TransferItem, site: SiteProfile, what: str) -> Path:
    """The item's local path, absolute and resolved, refused when it leaves the working directory.

    The directory is the step's own (``item.workdir``) or else the site's ``work_root``.

    :raises TransferError: for a relative path with no working directory known, or one that resolves
        (through ``..`` or symbolic links) outside the working directory or onto the directory itself.
    """
    workdir = Path(item.workdir or site.work_root) if (item.workdir or site.work_root) else None
    path = item.path
    if not path.is_absolute():
        if workdir is None:
            raise TransferError(f"{what}: refused relative local path {str(path)!r} (no working directory)")
        path = workdir / path
    resolved = path.resolve()
    if workdir is not None:
        root = workdir.resolve()
        if resolved == root or not resolved.is_relative_to(root):
            raise TransferError(f"{what}: refused local path outside the step's working directory: {path}")
    elif ".." in path.parts:
        raise TransferError(f"{what}: refused local path with '..': {path}")
    return resolved


class TransferBackend(ABC):
    """Base class of every transfer backend. One instance per agent; thread-safe."""

    #: URL schemes handled (without ``://``).
    schemes: tuple[str, ...] = ()

    def __init__(self, site: SiteProfile) -> None:
        self.site = site

    @abstractmethod
    def fetch(self, items: Sequence[TransferItem], cancelled: threading.Event) -> None:
        """Copies every ``item.url`` to ``item.path`` (stage-in). Stops early when ``cancelled`` is set."""

    @abstractmethod
    def store(self, items: Sequence[TransferItem], cancelled: threading.Event) -> None:
        """Copies every ``item.path`` to ``item.url`` (stage-out), creating directories as needed."""

    def close(self) -> None:  # noqa: B027 - optional for backends
        """Releases resources at agent shutdown."""
