"""Checks that run before any byte moves, and the naming of local files and temporary files.

A step's file names come from a remote user, so both ends of every transfer are checked: the URL's path
may not climb out of the data area (``..`` segments, also percent-encoded), and the local path must stay
inside the step's working directory (after resolving symbolic links).
"""

from __future__ import annotations

import posixpath
import uuid
from pathlib import Path
from urllib.parse import SplitResult, quote, unquote

from balsam_agent.transfer import TransferError, TransferItem, redact
from balsam_agent.transfer import check_url as check_transfer_url


def label(item: TransferItem, direction: str) -> str:
    """How messages name a file: ``input file NAME`` or ``output file NAME``."""
    return f"{direction} file {item.path.name}"


def check_url(url: str, schemes: tuple[str, ...], what: str) -> SplitResult:
    """Parses a remote URL and refuses one that could reach outside the data area.

    :param what: the file's label, for the message.
    :raises TransferError: for another scheme, no host, control characters or ``..`` segments.
    """
    parts = check_transfer_url(url, what)
    if parts.scheme not in schemes:
        raise TransferError(f"{what}: URL scheme {parts.scheme!r} is not one of {', '.join(schemes)}")
    if not parts.hostname:
        raise TransferError(f"{what}: URL has no host: {redact(url)}")
    decoded = unquote(parts.path)
    if not decoded.startswith("/") or posixpath.normpath(decoded) in ("/", "//"):
        raise TransferError(f"{what}: URL names no file: {redact(url)}")
    return parts


def file_url(path: Path, directory: bool = False) -> str:
    """A ``file://`` URL for ``globus-url-copy``; directories end with ``/`` as it requires."""
    text = quote(str(path), safe="/")
    if directory and not text.endswith("/"):
        text += "/"
    return f"file://{text}"


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path``, so the final rename stays on one filesystem (atomic)."""
    return path.with_name(f".{path.name}.part-{uuid.uuid4().hex[:12]}")
