"""``globus://ENDPOINT_UUID/path`` URLs, the local endpoint's view of local paths, and the checks that run
before any task is submitted.

File names come from a remote user: a URL path may not climb out of the data area (``..`` segments, also
percent-encoded) and a local path must stay inside the step's working directory (after resolving
symbolic links).
"""

from __future__ import annotations

import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from balsam_agent.records import SiteProfile
from balsam_agent.transfer import TransferError, TransferItem

_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


@dataclass(frozen=True)
class GlobusURL:
    """A parsed ``globus://`` URL."""

    endpoint: str
    #: The path on the endpoint, decoded; ends with ``/`` for a directory.
    path: str

    @property
    def is_directory(self) -> bool:
        """A trailing ``/`` names a directory, copied recursively."""
        return self.path.endswith("/")


def label(item: TransferItem, direction: str) -> str:
    """How messages name a file: ``input file NAME`` or ``output file NAME``."""
    return f"{direction} file {item.path.name}"


def parse_url(url: str, what: str) -> GlobusURL:
    """Parses ``globus://ENDPOINT_UUID/path`` and refuses one that could leave the data area.

    :raises TransferError: for another scheme, an endpoint that is not a UUID, control characters, a
        path that is not absolute (``/`` or ``/~/``) or one with ``..`` segments.
    """
    if any(ch in _CONTROL for ch in url):
        raise TransferError(f"{what}: refused URL with control characters: {url!r}")
    parts = urlsplit(url)
    if parts.scheme != "globus":
        raise TransferError(f"{what}: not a globus:// URL: {url}")
    try:
        endpoint = str(uuid.UUID(parts.netloc))
    except ValueError:
        raise TransferError(f"{what}: the host of {url} is not an endpoint UUID") from None
    decoded = unquote(parts.path)
    for candidate in (parts.path, decoded, unquote(decoded)):
        if ".." in candidate.split("/") or any(ch in _CONTROL for ch in candidate):
            raise TransferError(f"{what}: refused URL that leaves the data area: {url}")
    if not decoded.startswith("/") or posixpath.normpath(decoded) in ("/", "//", "/~"):
        raise TransferError(f"{what}: URL names no file: {url}")
    return GlobusURL(endpoint=endpoint, path=decoded)


def check_local_path(item: TransferItem, site: SiteProfile, what: str) -> Path:
    """The item's local path, absolute and resolved, refused when it leaves the working directory.

    The directory is the step's own (a ``workdir`` attribute on the item, when the agent passes one) or
    else the site's ``work_root``.

    :raises TransferError: for a path that resolves (through ``..`` or symbolic links) outside it.
    """
    workdir_text = item.workdir or site.work_root
    workdir = Path(workdir_text) if workdir_text else None
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


def endpoint_path(local: Path, fs_root: str, endpoint_root: str, what: str, directory: bool) -> str:
    """What the site's own endpoint calls the local path ``local``.

    :raises TransferError: when the path is not under the part of the filesystem the endpoint shares.
    """
    root = Path(fs_root)
    if not local.is_relative_to(root):
        raise TransferError(f"{what}: {local} is not under {fs_root}, which the site's Globus endpoint shares")
    relative = local.relative_to(root).as_posix()
    text = posixpath.join(endpoint_root, relative) if relative != "." else endpoint_root
    return text + "/" if directory and not text.endswith("/") else text


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path``, so the final rename stays on one filesystem (atomic)."""
    return path.with_name(f".{path.name}.part-{uuid.uuid4().hex[:12]}")
