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
from urllib.parse import unquote

from balsam_agent.transfer import TransferError, TransferItem, check_url


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
    parts = check_url(url, what)
    if parts.scheme != "globus":
        raise TransferError(f"{what}: not a globus:// URL: {url}")
    try:
        endpoint = str(uuid.UUID(parts.netloc))
    except ValueError:
        raise TransferError(f"{what}: the host of {url} is not an endpoint UUID") from None
    decoded = unquote(parts.path)
    if not decoded.startswith("/") or posixpath.normpath(decoded) in ("/", "//", "/~"):
        raise TransferError(f"{what}: URL names no file: {url}")
    return GlobusURL(endpoint=endpoint, path=decoded)


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
