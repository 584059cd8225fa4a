"""Registers the GridFTP backend with the agent (entry point ``balsam: gridftp``)."""

from __future__ import annotations

from balsam_agent import hookimpl
from balsam_agent.records import TransferRecord
from balsam_gridftp.backend import GridFTPBackend


@hookimpl
def balsam_transfers() -> list[TransferRecord]:
    """Offer the GridFTP backend for ``gsiftp://`` and ``ftp://`` URLs."""
    return [TransferRecord(scheme, GridFTPBackend) for scheme in GridFTPBackend.schemes]
