"""Registers the Globus backend with the agent (entry point ``balsam: globus``)."""

from __future__ import annotations

from balsam_agent import hookimpl
from balsam_agent.records import TransferRecord
from balsam_globus.backend import GlobusBackend


@hookimpl
def balsam_transfers() -> list[TransferRecord]:
    """Offer the Globus backend for ``globus://`` URLs."""
    return [TransferRecord("globus", GlobusBackend)]
