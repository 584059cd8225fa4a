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
