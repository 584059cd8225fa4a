"""Recorded Transfer API responses for the Globus plugin's tests, served by globus-sdk's testing helpers.

Every test runs with ``responses`` active, so a request nothing was recorded for fails instead of
reaching the network. The task documents follow the Transfer API's ``GET /task/<id>`` and
``GET /task/<id>/event_list`` answers; the task id is the one globus-sdk's own recorded
``submit_transfer`` answer returns.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from globus_sdk.testing import RegisteredResponse, ResponseSet, get_response_set, register_response_set

from balsam_agent.records import SiteProfile

TASK_ID = get_response_set("transfer.submit_transfer").metadata["task_id"]
LOCAL_ENDPOINT = "0b5e3a3e-1a4c-4b5e-9c8a-8e1f2d3c4b5a"
REMOTE_ENDPOINT = "7f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SET_ID = "balsam_globus.task"

_TASK = {
    "DATA_TYPE": "task", "type": "TRANSFER", "task_id": TASK_ID, "label": "balsam stage-in job1-step0",
    "status": "ACTIVE", "nice_status": "Queued", "nice_status_short_description": None,
    "faults": 0, "files": 1, "files_transferred": 0, "bytes_transferred": 0, "directories": 0,
    "subtasks_total": 1, "subtasks_pending": 1, "subtasks_succeeded": 0, "subtasks_failed": 0,
    "source_endpoint_id": REMOTE_ENDPOINT, "destination_endpoint_id": LOCAL_ENDPOINT,
    "fatal_error": None, "is_paused": False, "verify_checksum": True,
    "request_time": "2024-05-02T10:00:00+00:00", "completion_time": None,
    "deadline": "2024-05-03T10:00:00+00:00",
}


def task(**changes: Any) -> dict[str, Any]:
    """A task document with ``changes``."""
    doc = copy.deepcopy(_TASK)
    doc.update(changes)
    return doc


def _details(path: str) -> str:
    return (f"Error (transfer)\nEndpoint: remote ({REMOTE_ENDPOINT})\nServer: 10.0.0.1:443\nFile: {path}\n"
            f"Command: RETR {path}\nMessage: Fatal FTP response\n---\nDetails: 500-Command failed. : "
            f"globus_l_gfs_file_open failed.\r\n500-globus_xio: Unable to open file {path}\r\n"
            "500-globus_xio: System error in open: No such file or directory\r\n500 End.\r\n")


def events(*docs: dict[str, Any]) -> dict[str, Any]:
    """An event list document."""
    return {"DATA_TYPE": "event_list", "DATA": list(docs), "limit": 100, "offset": 0, "total": len(docs)}


FILE_NOT_FOUND = {
    "DATA_TYPE": "event", "code": "FILE_NOT_FOUND", "is_error": True, "description": "file not found",
    "details": _details("/data/job1/missing.dat"), "time": "2024-05-02T10:00:05+00:00",
}
CONNECT_FAILED = {
    "DATA_TYPE": "event", "code": "CONNECT_FAILED", "is_error": True,
    "description": "an error occurred while connecting", "details": "Connection timed out",
    "time": "2024-05-02T10:00:04+00:00",
}

_task_path = f"/v0.10/task/{TASK_ID}"
register_response_set(SET_ID, ResponseSet(
    metadata={"task_id": TASK_ID},
    active=RegisteredResponse(service="transfer", path=_task_path, json=task()),
    active_with_fault=RegisteredResponse(service="transfer", path=_task_path,
                                         json=task(faults=1, nice_status="FILE_NOT_FOUND")),
    active_retrying=RegisteredResponse(service="transfer", path=_task_path,
                                       json=task(faults=1, nice_status="CONNECT_FAILED")),
    succeeded=RegisteredResponse(service="transfer", path=_task_path,
                                 json=task(status="SUCCEEDED", nice_status=None, files_transferred=1,
                                           subtasks_pending=0, subtasks_succeeded=1,
                                           completion_time="2024-05-02T10:01:00+00:00")),
    failed=RegisteredResponse(service="transfer", path=_task_path, json=task(
        status="FAILED", nice_status=None, fatal_error={
            "code": "PERMISSION_DENIED", "description": "permission denied on /data/job1"})),
    events_file_not_found=RegisteredResponse(service="transfer", path=f"{_task_path}/event_list",
                                             json=events(FILE_NOT_FOUND, CONNECT_FAILED)),
    events_retry=RegisteredResponse(service="transfer", path=f"{_task_path}/event_list",
                                    json=events(CONNECT_FAILED)),
    events_none=RegisteredResponse(service="transfer", path=f"{_task_path}/event_list", json=events()),
    cancel=RegisteredResponse(service="transfer", method="POST", path=f"{_task_path}/cancel", json={
        "DATA_TYPE": "result", "code": "Canceled", "message": "The task has been cancelled successfully.",
        "resource": f"/task/{TASK_ID}/cancel", "request_id": "ABCdef789"}),
))


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    """Every HTTP request is answered from the recorded responses or fails; none leaves the machine."""
    responses.start()
    try:
        yield
    finally:
        responses.stop()
        responses.reset()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A step working directory under the site's work root."""
    path = tmp_path / "work" / "job1-step0"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def make_site(tmp_path: Path) -> Callable[..., SiteProfile]:
    """A site whose local endpoint shares ``tmp_path`` as ``/~/``; keyword arguments are globus options."""

    def make(**globus: Any) -> SiteProfile:
        options = {"client_id": "c0ffee00-1111-2222-3333-444455556666", "client_secret": "s3cret",
                   "local_endpoint": LOCAL_ENDPOINT, "local_fs_root": str(tmp_path),
                   "local_endpoint_root": "/~/", "poll_interval": 0.01, "api_retries": 0, **globus}
        return SiteProfile(name="polaris", scheduler="pbs", work_root=str(tmp_path / "work"),
                           options={"globus": options})

    return make
