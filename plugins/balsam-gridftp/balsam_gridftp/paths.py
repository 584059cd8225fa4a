"""Checks that run before any byte moves, and the naming of local files and temporary files.

A step's file names come from a remote user, so both ends of every transfer are checked: the URL's path
may not climb out of the data area (``..`` segments, also percent-encoded), and the local path must stay
inside the step's working directory (after resolving symbolic links).
"""

from __future__ import annotations

import posixpath
import uuid
from pathlib import Path
from urllib.parse import SplitResult, quote, unquote, urlsplit

from balsam_agent.records import SiteProfile
from balsam_agent.transfer import TransferError, TransferItem

#: Characters that would let a URL smuggle a second line into a url-pair list or a log.
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def redact(url: str) -> str:
    """The URL without a password in its user info, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def label(item: TransferItem, direction: str) -> str:
    """How messages name a file: ``input file NAME`` or ``output file NAME``."""
    return f"{direction} file {item.path.name}"


def check_url(url: str, schemes: tuple[str, ...], what: str) -> SplitResult:
    """Parses a remote URL and refuses one that could reach outside the data area.

    :param what: the file's label, for the message.
    :raises TransferError: for another scheme, no host, control characters or ``..`` segments.
    """
    if any(ch in _CONTROL for ch in url):
        raise TransferError(f"{what}: refused URL with control characters: {redact(url)!r}")
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise TransferError(f"{what}: URL scheme {parts.scheme!r} is not one of {', '.join(schemes)}")
    if not parts.hostname:
        raise TransferError(f"{what}: URL has no host: {redact(url)}")
    decoded = unquote(parts.path)
    # Decode once more so that a double-encoded %252e%252e is caught as well as %2e%2e.
    for candidate in (parts.path, decoded, unquote(decoded)):
        if ".." in candidate.split("/") or any(ch in _CONTROL for ch in candidate):
            raise TransferError(f"{what}: refused URL that leaves the data area: {redact(url)}")
    if not decoded.startswith("/") or posixpath.normpath(decoded) in ("/", "//"):
        raise TransferError(f"{what}: URL names no file: {redact(url)}")
    return parts


def workdir_of(item: TransferItem, site: SiteProfile) -> Path | None:
    """The directory the item's local path must stay inside.

    The step's own working directory when the agent passes one (a ``workdir`` attribute on the item),
    else the site's ``work_root`` under which every step directory is made; ``None`` when neither is known.
    """
    workdir = item.workdir or site.work_root
    return Path(workdir) if workdir else None


def check_local_path(item: TransferItem, site: SiteProfile, what: str) -> Path:
    """The item's local path, absolute and resolved, refused when it leaves the working directory.

    :raises TransferError: for a relative path with no working directory known, or one that resolves
        (through ``..`` or symbolic links) outside the working directory or onto the directory itself.
    """
    workdir = workdir_of(item, site)
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


def file_url(path: Path, directory: bool = False) -> str:
    """A ``file://`` URL for ``globus-url-copy``; directories end with ``/`` as it requires."""
    text = quote(str(path), safe="/")
    if directory and not text.endswith("/"):
        text += "/"
    return f"file://{text}"


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path``, so the final rename stays on one filesystem (atomic)."""
    return path.with_name(f".{path.name}.part-{uuid.uuid4().hex[:12]}")
