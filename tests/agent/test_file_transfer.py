"""The built-in file transfer: links or copies, never symlinks, names a missing file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from balsam_agent.builtin.file_transfer import FileTransfer
from balsam_agent.records import SiteProfile
from balsam_agent.transfer import TransferError, TransferItem


@pytest.fixture
def transfer() -> FileTransfer:
    return FileTransfer(SiteProfile(name="local", scheduler="local"))


def test_fetch_copies_so_a_step_cannot_change_the_data_area(transfer: FileTransfer, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("data")
    target = tmp_path / "work" / "a.txt"
    transfer.fetch([TransferItem(source.as_uri(), target)], threading.Event())
    assert target.read_text() == "data"
    assert not target.is_symlink()
    assert target.stat().st_ino != source.stat().st_ino
    with target.open("w") as rewritten:  # the program rewrites its input in place
        rewritten.write("changed")
    assert source.read_text() == "data"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_store_hard_links_on_one_filesystem(transfer: FileTransfer, tmp_path: Path) -> None:
    produced = tmp_path / "work" / "grid1"
    produced.parent.mkdir()
    produced.write_text("grid")
    stored = tmp_path / "area" / "grid1"
    transfer.store([TransferItem(stored.as_uri(), produced)], threading.Event())
    assert stored.read_text() == "grid" and not stored.is_symlink()
    assert stored.stat().st_ino == produced.stat().st_ino
    assert [p.name for p in stored.parent.iterdir()] == ["grid1"]


def test_store_copies_directories_recursively(transfer: FileTransfer, tmp_path: Path) -> None:
    tree = tmp_path / "out"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "x.dat").write_text("x")
    destination = tmp_path / "area" / "out"
    transfer.store([TransferItem(destination.as_uri(), tree)], threading.Event())
    assert (destination / "sub" / "x.dat").read_text() == "x"


def test_missing_source_names_the_file(transfer: FileTransfer, tmp_path: Path) -> None:
    missing = tmp_path / "missing.lhe"
    with pytest.raises(TransferError, match="missing.lhe: no such file"):
        transfer.fetch([TransferItem(missing.as_uri(), tmp_path / "w" / "m")], threading.Event())
    assert not (tmp_path / "w" / "m").exists()


def test_other_hosts_are_refused(transfer: FileTransfer, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="other hosts"):
        transfer.fetch([TransferItem("file://elsewhere/x", tmp_path / "x")], threading.Event())
