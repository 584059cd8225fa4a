"""Against the real globus-gridftp-server on loopback: anonymous ftp:// and GSI gsiftp://."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from balsam_gridftp.backend import GridFTPBackend, TransferCancelled

from balsam_agent.transfer import TransferError, TransferItem

GIB = 1 << 30


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def make_big_file(path: Path, size: int) -> None:
    """A sparse file of ``size`` bytes with random 1 MiB blocks spread over it, made in milliseconds;
    the random blocks make the checksum catch any misplaced or lost range."""
    with path.open("wb") as out:
        out.truncate(size)
        for offset in range(0, size, size // 16):
            out.seek(offset)
            out.write(os.urandom(1 << 20))


def test_stage_out_then_in_over_anonymous_ftp(make_site, workdir, ftp_area) -> None:
    payload = os.urandom(300_000)
    (workdir / "events.dat").write_bytes(payload)
    backend = GridFTPBackend(make_site())
    # stage-out creates the missing remote directories
    backend.store([TransferItem(ftp_area.url_of("step1/events.dat"), workdir / "events.dat")],
                  threading.Event())
    assert (ftp_area.path / "step1" / "events.dat").read_bytes() == payload
    backend.fetch([TransferItem(ftp_area.url_of("step1/events.dat"), workdir / "in" / "copy.dat")],
                  threading.Event())
    assert (workdir / "in" / "copy.dat").read_bytes() == payload
    assert sorted(os.listdir(workdir / "in")) == ["copy.dat"]


def test_stage_out_then_in_over_gsiftp_with_a_proxy_and_checksums(make_site, workdir, gsiftp_area,
                                                                  gsi_options) -> None:
    payload = os.urandom(2_000_000)
    (workdir / "out file.dat").write_bytes(payload)  # a space survives the file:// URL
    backend = GridFTPBackend(make_site(verify_checksum=True, parallel_streams=4, **gsi_options))
    url = gsiftp_area.url_of("a/out%20file.dat")
    backend.store([TransferItem(url, workdir / "out file.dat")], threading.Event())
    assert (gsiftp_area.path / "a" / "out file.dat").read_bytes() == payload
    backend.fetch([TransferItem(url, workdir / "back.dat")], threading.Event())
    assert (workdir / "back.dat").read_bytes() == payload


def test_gsiftp_with_certificate_and_key_instead_of_a_proxy(make_site, workdir, gsiftp_area) -> None:
    cert, key = os.environ.get("ARGO_TEST_X509_USER_CERT"), os.environ.get("ARGO_TEST_X509_USER_KEY")
    if not (cert and key and os.access(key, os.R_OK)):
        pytest.skip("ARGO_TEST_X509_USER_CERT/KEY not set or the key is not readable")
    (workdir / "a.txt").write_text("hello")
    site = make_site(x509_user_cert=cert, x509_user_key=key, x509_cert_dir=os.environ["X509_CERT_DIR"],
                     x509_user_proxy="")
    GridFTPBackend(site).store([TransferItem(gsiftp_area.url_of("a.txt"), workdir / "a.txt")],
                               threading.Event())
    assert (gsiftp_area.path / "a.txt").read_text() == "hello"


def test_gsiftp_without_credentials_fails_without_retrying(make_site, workdir, gsiftp_area,
                                                           monkeypatch, tmp_path) -> None:
    # point the child at an empty credential set: the server must refuse, and no retry can help
    monkeypatch.delenv("X509_USER_PROXY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    site = make_site(x509_user_proxy=str(tmp_path / "no-proxy.pem"), retries=3, backoff_seconds=5.0,
                     x509_cert_dir=os.environ.get("X509_CERT_DIR", ""))
    started = time.monotonic()
    with pytest.raises(TransferError, match=r"^input file x.dat: transfer from gsiftp://") as info:
        GridFTPBackend(site).fetch([TransferItem(gsiftp_area.url_of("x.dat"), workdir / "x.dat")],
                                   threading.Event())
    assert not info.value.transient
    assert time.monotonic() - started < 5  # no backoff waited
    assert os.listdir(workdir) == []


def test_a_directory_goes_out_and_comes_back_recursively(make_site, workdir, ftp_area) -> None:
    tree = workdir / "results"
    (tree / "sub" / "deeper").mkdir(parents=True)
    files = {"a.dat": b"a" * 1000, "sub/b.dat": os.urandom(5000), "sub/deeper/c.dat": b"c"}
    for name, data in files.items():
        (tree / name).write_bytes(data)
    backend = GridFTPBackend(make_site())
    backend.store([TransferItem(ftp_area.url_of("results"), tree)], threading.Event())
    for name, data in files.items():
        assert (ftp_area.path / "results" / name).read_bytes() == data
    backend.fetch([TransferItem(ftp_area.url_of("results/"), workdir / "again")], threading.Event())
    for name, data in files.items():
        assert (workdir / "again" / name).read_bytes() == data
    assert sorted(os.listdir(workdir)) == ["again", "results"]  # no temporary directory left


def test_a_missing_source_names_the_file_and_the_url(make_site, workdir, ftp_area) -> None:
    url = ftp_area.url_of("never-made.dat")
    started = time.monotonic()
    with pytest.raises(TransferError) as info:
        GridFTPBackend(make_site(retries=3, backoff_seconds=5.0)).fetch(
            [TransferItem(url, workdir / "input.dat")], threading.Event())
    message = str(info.value)
    assert message.startswith(f"input file input.dat: not found at {url}")
    assert "No such file or directory" in message  # the server's own words
    assert time.monotonic() - started < 5  # not retried
    assert os.listdir(workdir) == []


def test_a_missing_source_directory_names_it(make_site, workdir, ftp_area) -> None:
    with pytest.raises(TransferError, match=r"^input file d: not found at .*/nodir/"):
        GridFTPBackend(make_site()).fetch([TransferItem(ftp_area.url_of("nodir/"), workdir / "d")],
                                          threading.Event())
    assert os.listdir(workdir) == []


def test_a_server_that_is_down_is_retried_then_fails_with_the_reason(make_site, workdir, closed_port,
                                                                     caplog) -> None:
    url = f"ftp://127.0.0.1:{closed_port}/data/in.dat"
    with pytest.raises(TransferError) as info:
        GridFTPBackend(make_site(retries=2)).fetch([TransferItem(url, workdir / "in.dat")],
                                                   threading.Event())
    message = str(info.value)
    assert message.startswith(f"input file in.dat: transfer from {url} failed after 3 attempts")
    assert "Connection refused" in message
    assert info.value.transient
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 3
    assert os.listdir(workdir) == []


def test_cancelling_a_large_download_stops_it_and_leaves_nothing(make_site, workdir, ftp_area) -> None:
    ftp_area.path.mkdir(mode=0o755)
    make_big_file(ftp_area.path / "big.dat", 4 * GIB)  # far longer than the test waits
    # one stream and a tiny block size keep the transfer slow enough to be caught in flight
    backend = GridFTPBackend(make_site(parallel_streams=1, block_size=16384, fast=False))
    cancelled = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            backend.fetch([TransferItem(ftp_area.url_of("big.dat"), workdir / "big.dat")], cancelled)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until bytes are arriving under the temporary name
        partial = [p for p in workdir.iterdir() if p.name.startswith(".big.dat.part-")]
        if partial and partial[0].stat().st_size > 0:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the download never started")
    started = time.monotonic()
    cancelled.set()
    worker.join(15)
    assert not worker.is_alive()
    assert time.monotonic() - started < 6
    assert len(errors) == 1 and isinstance(errors[0], TransferCancelled), errors
    assert os.listdir(workdir) == []


@pytest.mark.slow
def test_a_1_gib_file_round_trips_intact(make_site, workdir, ftp_area, gsiftp_area, gsi_options) -> None:
    source = workdir / "big.dat"
    make_big_file(source, GIB)
    expected = sha256(source)
    backend = GridFTPBackend(make_site(parallel_streams=4, **gsi_options))
    backend.store([TransferItem(gsiftp_area.url_of("big.dat"), source)], threading.Event())
    remote = gsiftp_area.path / "big.dat"
    assert remote.stat().st_size == GIB
    back = workdir / "back" / "big.dat"
    backend.fetch([TransferItem(gsiftp_area.url_of("big.dat"), back)], threading.Event())
    assert back.stat().st_size == GIB
    assert sha256(back) == expected
