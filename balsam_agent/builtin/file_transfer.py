"""The built-in ``file`` transfer: ``file://`` URLs on filesystems the agent can see.

Stage-in copies: a step may rewrite its inputs in place, and a hard link would let it change the data
area (and so a retry's or a later step's inputs). Stage-out hard-links when source and destination share
a filesystem (the step has ended; no bytes copied), else copies. Either way the file is written under a
temporary name next to the destination and renamed, so no partial file ever carries the final name. It
never creates symlinks (a symlink would let a step write through to the data area). Directories are
transferred recursively.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path

from balsam_agent import hookimpl
from balsam_agent.records import TransferRecord
from balsam_agent.transfer import TransferBackend, TransferError, TransferItem, check_url


def url_to_path(url: str) -> Path:
    """Returns the local path of a ``file://`` URL (``file:///a/b`` and ``file://localhost/a/b``)."""
    parsed = check_url(url, "file transfer")
    if parsed.scheme != "file":
        raise TransferError(f"{url}: not a file:// URL")
    if parsed.netloc not in ("", "localhost"):
        raise TransferError(f"{url}: file URLs on other hosts ({parsed.netloc}) are not reachable")
    return Path(urllib.parse.unquote(parsed.path))


def _place_file(source: Path, destination: Path, link: bool) -> None:
    """Hard-links (when ``link`` and possible) or copies one regular file to ``destination``, replacing it
    atomically."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()
        try:
            if not link:
                raise OSError("copy asked for")
            os.link(source, tmp)
        except OSError:
            # A copy asked for, another filesystem (EXDEV) or no link permission: copy the bytes.
            shutil.copy2(source, tmp)
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_tree(source: Path, destination: Path, cancelled: threading.Event, link: bool = False) -> None:
    """Copies (or, with ``link``, hard-links) a file or a directory tree, never following or creating
    symlinks inside it."""
    if source.is_symlink() and not source.exists():
        raise TransferError(f"{source}: dangling symbolic link")
    if source.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        for child in sorted(source.iterdir()):
            if cancelled.is_set():
                raise TransferError(f"{source}: transfer cancelled")
            if child.is_symlink():
                # A link inside a tree could point anywhere: copy what it names only if it is a file.
                if not child.is_file():
                    continue
            copy_tree(child, destination / child.name, cancelled, link)
        return
    if not source.exists():
        raise TransferError(f"{source}: no such file")
    _place_file(source, destination, link)


class FileTransfer(TransferBackend):
    """Moves ``file://`` URLs: stage-in copies, stage-out hard-links (or copies across filesystems)."""

    schemes = ("file",)

    def fetch(self, items: Sequence[TransferItem], cancelled: threading.Event) -> None:
        """Copies every ``item.url`` to ``item.path``; a missing source is an error naming it."""
        self._run(((url_to_path(item.url), item.path, item.url) for item in items), cancelled, link=False)

    def store(self, items: Sequence[TransferItem], cancelled: threading.Event) -> None:
        """Stores every ``item.path`` at ``item.url`` (hard link where possible), creating directories."""
        self._run(((item.path, url_to_path(item.url), str(item.path)) for item in items), cancelled, link=True)

    @staticmethod
    def _run(moves: Iterable[tuple[Path, Path, str]], cancelled: threading.Event, link: bool) -> None:
        for source, destination, label in moves:
            if cancelled.is_set():
                raise TransferError("transfer cancelled")
            if not source.exists():
                raise TransferError(f"{label}: no such file or directory")
            try:
                copy_tree(source, destination, cancelled, link)
            except TransferError:
                raise
            except OSError as exc:
                raise TransferError(f"{label} -> {destination}: {exc.strerror or exc}") from exc


@hookimpl
def balsam_transfers() -> list[TransferRecord]:
    """Offers the ``file`` scheme."""
    return [TransferRecord(scheme="file", backend=FileTransfer)]
