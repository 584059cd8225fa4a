"""Fixtures of the GridFTP plugin's tests: the real servers started by ``scripts/services/gridftp``.

Their addresses come from the environment (``.ci/services.env``); a test that needs a server is skipped
with the missing variable named when it is absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from balsam_agent.records import SiteProfile


def _need(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.skip(f"{name} is not set: no GridFTP server (source .ci/services.env after "
                    "scripts/services/gridftp start)")
    return value


@dataclass(frozen=True)
class RemoteArea:
    """A fresh directory on the server for one test: its URL prefix and its local path."""

    url: str
    path: Path

    def url_of(self, relative: str) -> str:
        """The URL of ``relative`` inside the area."""
        return f"{self.url}/{relative}"


def _area(server: str) -> Iterator[RemoteArea]:
    root = Path(_need("ARGO_TEST_GRIDFTP_FTP_ROOT"))
    name = f"balsam-gridftp-test-{uuid.uuid4().hex[:10]}"
    # The servers map every client to nobody, who may write only in the world-writable data root.
    yield RemoteArea(url=f"{server}{root}/{name}", path=root / name)
    shutil.rmtree(root / name, ignore_errors=True)


@pytest.fixture
def ftp_area() -> Iterator[RemoteArea]:
    """A directory on the anonymous ``ftp://`` server."""
    yield from _area(_need("ARGO_TEST_GRIDFTP_FTP"))


@pytest.fixture
def gsiftp_area() -> Iterator[RemoteArea]:
    """A directory on the ``gsiftp://`` server (GSI with the throwaway CA)."""
    _need("ARGO_TEST_X509_USER_PROXY")
    yield from _area(_need("ARGO_TEST_GSIFTP"))


@pytest.fixture
def gsi_options() -> dict[str, Any]:
    """The credential options of the test user's proxy."""
    return {
        "x509_user_proxy": _need("ARGO_TEST_X509_USER_PROXY"),
        "x509_cert_dir": _need("X509_CERT_DIR"),
    }


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A step working directory under the site's work root."""
    path = tmp_path / "work" / "job1-step0"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def make_site(tmp_path: Path) -> Callable[..., SiteProfile]:
    """Builds a site profile whose work root holds ``workdir``; keyword arguments are gridftp options.

    Backoff is kept short so that retry tests take milliseconds.
    """

    def make(**gridftp: Any) -> SiteProfile:
        options = {"retries": 1, "backoff_seconds": 0.01, "backoff_max": 0.05, **gridftp}
        return SiteProfile(name="testsite", scheduler="local", work_root=str(tmp_path / "work"),
                           options={"gridftp": options})

    return make


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
