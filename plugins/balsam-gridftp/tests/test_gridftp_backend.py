"""The backend's own logic, with a stand-in globus-url-copy: refusals, retries on the transfer's own exit
status, no partial file under the final name, cancellation. No server needed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from balsam_gridftp.backend import GridFTPBackend, TransferCancelled
from balsam_gridftp.plugin import balsam_transfers

from balsam_agent.records import SiteProfile
from balsam_agent.transfer import TransferError, TransferItem

# A stand-in for globus-url-copy, steered by environment variables the site options pass to it:
# it logs its argv, writes some bytes to a file:// destination, then behaves as FAKE_MODE says.
FAKE = """#!{python}
import os, sys, time, urllib.parse
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
calls = sum(1 for _ in open(os.environ["FAKE_LOG"]))
dest = sys.argv[-1]
if dest.startswith("file://") and not dest.endswith("/"):
    with open(urllib.parse.unquote(dest[len("file://"):]), "wb") as out:
        out.write(b"partial")
mode = os.environ.get("FAKE_MODE", "ok")
if mode == "down-then-ok" and calls < 3 or mode == "down":
    sys.stderr.write("error: globus_xio: Unable to connect to 127.0.0.1:9\\n"
                     "globus_xio: System error in connect: Connection refused\\n")
    sys.exit(1)
if mode == "missing":
    sys.stderr.write("500-globus_xio: System error in open: No such file or directory\\n")
    sys.exit(1)
if mode == "hang":
    with open(os.environ["FAKE_LOG"] + ".pid", "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
"""


@pytest.fixture
def fake(tmp_path: Path) -> Callable[..., SiteProfile]:
    """A site whose globus-url-copy is the stand-in; keyword ``mode`` picks its behaviour."""
    program = tmp_path / "fake-globus-url-copy"
    program.write_text(FAKE.format(python=sys.executable))
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "fake.log"

    def make(mode: str = "ok", **gridftp: object) -> SiteProfile:
        options = {"command": str(program), "retries": 3, "backoff_seconds": 0.01,
                   "env": {"FAKE_LOG": str(log), "FAKE_MODE": mode}, "kill_grace": 1.0, **gridftp}
        return SiteProfile(name="s", scheduler="local", work_root=str(tmp_path / "work"),
                           options={"gridftp": options})

    return make


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "fake.log"
    return log.read_text().splitlines() if log.exists() else []


def test_the_plugin_offers_gsiftp_and_ftp() -> None:
    records = balsam_transfers()
    assert {r.scheme for r in records} == {"gsiftp", "ftp"}
    assert all(r.backend is GridFTPBackend for r in records)


def test_a_file_is_renamed_into_place_only_after_success(fake, tmp_path, workdir) -> None:
    backend = GridFTPBackend(fake("ok"))
    backend.fetch([TransferItem("ftp://h/data/in.dat", workdir / "in.dat")], threading.Event())
    assert (workdir / "in.dat").read_bytes() == b"partial"
    assert os.listdir(workdir) == ["in.dat"]
    (argv,) = calls(tmp_path)
    assert argv.startswith("-q -fast -p 4 -st 600 ftp://h/data/in.dat file://")
    assert "/.in.dat.part-" in argv  # written under a temporary name first


def test_retries_follow_the_transfer_process_own_exit_status(fake, tmp_path, workdir) -> None:
    backend = GridFTPBackend(fake("down-then-ok"))
    backend.fetch([TransferItem("gsiftp://h/data/in.dat", workdir / "in.dat")], threading.Event())
    assert len(calls(tmp_path)) == 3
    assert (workdir / "in.dat").exists()


def test_a_server_that_stays_down_fails_after_the_retries_with_the_reason(fake, tmp_path, workdir) -> None:
    backend = GridFTPBackend(fake("down", retries=2))
    with pytest.raises(TransferError) as info:
        backend.fetch([TransferItem("gsiftp://h/data/in.dat", workdir / "in.dat")], threading.Event())
    assert len(calls(tmp_path)) == 3
    message = str(info.value)
    assert message.startswith("input file in.dat: transfer from gsiftp://h/data/in.dat failed after 3 attempts")
    assert "Connection refused" in message
    assert info.value.transient
    assert os.listdir(workdir) == []  # the partial bytes are gone


def test_a_missing_source_fails_at_once_naming_the_file(fake, tmp_path, workdir) -> None:
    backend = GridFTPBackend(fake("missing"))
    with pytest.raises(TransferError, match=r"^input file in.dat: not found at ftp://h/data/in.dat") as info:
        backend.fetch([TransferItem("ftp://h/data/in.dat", workdir / "in.dat")], threading.Event())
    assert not info.value.transient
    assert len(calls(tmp_path)) == 1
    assert os.listdir(workdir) == []


def test_stage_out_creates_remote_directories_and_sends_directories_recursively(fake, tmp_path,
                                                                                 workdir) -> None:
    (workdir / "out.dat").write_text("x")
    (workdir / "events").mkdir()
    (workdir / "events" / "e1").write_text("y")
    backend = GridFTPBackend(fake("ok"))
    backend.store([TransferItem("ftp://h/data/out.dat", workdir / "out.dat"),
                   TransferItem("ftp://h/data/events", workdir / "events")], threading.Event())
    file_call, dir_call = calls(tmp_path)
    assert " -cd " in file_call and " -r " not in file_call
    assert file_call.endswith(f"file://{workdir}/out.dat ftp://h/data/out.dat")
    assert " -r -cd " in dir_call and dir_call.endswith(f"file://{workdir}/events/ ftp://h/data/events/")


def test_a_missing_output_fails_before_anything_is_sent(fake, tmp_path, workdir) -> None:
    (workdir / "a.dat").write_text("x")
    with pytest.raises(TransferError, match="output file b.dat: not found in the working directory"):
        GridFTPBackend(fake("ok")).store([TransferItem("ftp://h/d/a.dat", workdir / "a.dat"),
                                          TransferItem("ftp://h/d/b.dat", workdir / "b.dat")],
                                         threading.Event())
    assert calls(tmp_path) == []


@pytest.mark.parametrize("url", [
    "ftp://h/data/job1/../../etc/passwd",
    "ftp://h/data/job1/%2e%2e/job2/secret",
    "ftp://h/data/job1/%252e%252e/x",
    "gsiftp://h/data/..",
    "ftp://h/data/a%0Ab",
    "ftp:///data/nohost",
    "http://h/data/x",
    "ftp://h/",
])
def test_urls_that_leave_the_data_area_are_refused_before_any_byte_moves(fake, tmp_path, workdir,
                                                                          url) -> None:
    backend = GridFTPBackend(fake("ok"))
    good = TransferItem("ftp://h/data/ok.dat", workdir / "ok.dat")
    with pytest.raises(TransferError, match="input file bad.dat: "):
        backend.fetch([good, TransferItem(url, workdir / "bad.dat")], threading.Event())
    assert calls(tmp_path) == []  # not even the good file moved
    assert os.listdir(workdir) == []


def test_local_paths_outside_the_working_directory_are_refused(fake, tmp_path, workdir) -> None:
    backend = GridFTPBackend(fake("ok"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (workdir / "link").symlink_to(outside)
    for path in (workdir / ".." / ".." / "escape.dat", Path("/etc/passwd"), workdir / "link" / "x.dat"):
        with pytest.raises(TransferError, match="outside the step's working directory"):
            backend.fetch([TransferItem("ftp://h/data/x.dat", path)], threading.Event())
    (outside / "secret").write_text("s")
    with pytest.raises(TransferError, match="outside the step's working directory"):
        backend.store([TransferItem("ftp://h/data/x.dat", workdir / "link" / "secret")], threading.Event())
    assert calls(tmp_path) == []
    assert os.listdir(outside) == ["secret"]


def test_cancellation_terminates_the_transfer_process(fake, tmp_path, workdir) -> None:
    backend = GridFTPBackend(fake("hang"))
    cancelled = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            backend.fetch([TransferItem("ftp://h/data/big", workdir / "big")], cancelled)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    pid_file = tmp_path / "fake.log.pid"
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    started = time.monotonic()
    cancelled.set()
    worker.join(10)
    assert not worker.is_alive()
    assert time.monotonic() - started < 3
    assert len(errors) == 1 and isinstance(errors[0], TransferCancelled)
    assert "input file big: transfer from ftp://h/data/big cancelled" in str(errors[0])
    assert os.listdir(workdir) == []  # no partial file
    # the child is gone (reaped by the backend)
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_an_item_cancelled_before_it_starts_never_runs(fake, tmp_path, workdir) -> None:
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(TransferCancelled):
        GridFTPBackend(fake("ok")).fetch([TransferItem("ftp://h/d/a", workdir / "a")], cancelled)
    assert calls(tmp_path) == []


def test_a_missing_program_is_a_clear_error(tmp_path, workdir) -> None:
    site = SiteProfile(name="s", scheduler="local", work_root=str(tmp_path / "work"),
                       options={"gridftp": {"command": str(tmp_path / "nope"), "retries": 0}})
    with pytest.raises(TransferError, match=r"^input file a: cannot run .*nope: No such file"):
        GridFTPBackend(site).fetch([TransferItem("ftp://h/d/a", workdir / "a")], threading.Event())
