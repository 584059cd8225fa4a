"""The Globus backend against recorded Transfer API answers (globus-sdk's testing helpers)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from balsam_globus.backend import GlobusBackend, TransferCancelled
from balsam_globus.options import GlobusOptions
from balsam_globus.plugin import balsam_transfers
from globus_sdk.testing import RegisteredResponse, get_response_set, load_response

from balsam_agent.transfer import TransferError, TransferItem

TASK_URL_SUFFIX = "/v0.10/task/"
SET_ID = "balsam_globus.task"
LOCAL = "0b5e3a3e-1a4c-4b5e-9c8a-8e1f2d3c4b5a"
REMOTE = "7f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def remote(path: str) -> str:
    return f"globus://{REMOTE}{path}"


def submit_and_auth() -> None:
    load_response("auth.oauth2_client_credentials_tokens")
    load_response("transfer.get_submission_id")
    load_response("transfer.submit_transfer")


def recorded(case: str) -> RegisteredResponse:
    """One recorded answer of the task's response set, without activating it."""
    response = get_response_set(SET_ID).lookup(case)
    assert isinstance(response, RegisteredResponse)
    return response


def calls(fragment: str, method: str | None = None) -> list[Any]:
    return [c for c in responses.calls if fragment in (c.request.url or "")
            and (method is None or c.request.method == method)]


def submitted() -> dict[str, Any]:
    (call,) = calls("/v0.10/transfer", "POST")
    return json.loads(call.request.body)


def endpoint_delivers(tmp_path: Path) -> None:
    """The task succeeds, and the local endpoint (shared as /~/ = tmp_path) has written what was asked."""
    succeeded = recorded("succeeded")

    def deliver(request: Any) -> tuple[int, dict[str, str], str]:
        for item in submitted()["DATA"]:
            target = tmp_path / item["destination_path"].removeprefix("/~/")
            if item.get("recursive"):
                (target / "sub").mkdir(parents=True)
                (target / "sub" / "f.txt").write_text("from globus")
            else:
                target.write_text("from globus")
        return 200, {}, json.dumps(succeeded.json)

    responses.add_callback(responses.GET, succeeded.full_url, callback=deliver)


def test_the_plugin_offers_globus() -> None:
    (record,) = balsam_transfers()
    assert (record.scheme, record.backend) == ("globus", GlobusBackend)


def test_options_name_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as info:
        GlobusOptions.from_site_options({"globus": {"local_endpoint": "mira", "client_id": "x",
                                                    "poll_intervall": 3}})
    assert "unknown key 'poll_intervall'" in str(info.value)
    with pytest.raises(ValueError) as info:
        GlobusOptions.from_site_options({"globus": {"local_endpoint": "mira"}})
    message = str(info.value)
    assert "'client_id' is required" in message and "'client_secret'" in message
    assert "UUID of this site's endpoint" in message


def test_one_task_fetches_every_file_of_the_step(make_site, workdir, tmp_path) -> None:
    submit_and_auth()
    load_response(SET_ID, case="active")
    endpoint_delivers(tmp_path)
    items = [TransferItem(remote("/data/job1/a.dat"), workdir / "a.dat"),
             TransferItem(remote("/data/job1/events/"), workdir / "events")]
    GlobusBackend(make_site()).fetch(items, threading.Event())

    body = submitted()
    assert (body["source_endpoint"], body["destination_endpoint"]) == (REMOTE, LOCAL)
    assert body["verify_checksum"] is True
    file_item, dir_item = body["DATA"]
    assert file_item["source_path"] == "/data/job1/a.dat" and not file_item.get("recursive")
    assert file_item["destination_path"].startswith("/~/work/job1-step0/.a.dat.part-")
    assert dir_item["source_path"] == "/data/job1/events/" and dir_item["recursive"] is True
    # renamed into place after SUCCEEDED; no temporary name left
    assert (workdir / "a.dat").read_text() == "from globus"
    assert (workdir / "events" / "sub" / "f.txt").read_text() == "from globus"
    assert sorted(os.listdir(workdir)) == ["a.dat", "events"]
    assert len(calls(TASK_URL_SUFFIX, "GET")) == 2  # ACTIVE, then SUCCEEDED
    # authenticated as the site's app by client credentials
    (token,) = calls("/v2/oauth2/token")
    assert parse_qs(token.request.body)["grant_type"] == ["client_credentials"]
    assert calls("/v0.10/transfer")[0].request.headers["Authorization"].startswith("Bearer ")


def test_a_missing_source_fails_at_once_from_the_event_list(make_site, workdir) -> None:
    submit_and_auth()
    load_response(SET_ID, case="active_with_fault")  # Globus would keep retrying it: it must not hang
    load_response(SET_ID, case="events_file_not_found")
    load_response(SET_ID, case="cancel")
    items = [TransferItem(remote("/data/job1/here.dat"), workdir / "here.dat"),
             TransferItem(remote("/data/job1/missing.dat"), workdir / "missing.dat")]
    with pytest.raises(TransferError) as info:
        # the deadline only bounds this test if fatal-error detection were broken
        GlobusBackend(make_site(poll_interval=0.05, deadline_seconds=5.0)).fetch(items, threading.Event())
    message = str(info.value)
    assert message.startswith(f"input file missing.dat: not found at {remote('/data/job1/missing.dat')}")
    assert "FILE_NOT_FOUND" in message
    assert not info.value.transient
    assert len(calls(TASK_URL_SUFFIX, "GET")) == 2  # one poll, one event list: no waiting
    (event_call,) = calls("/event_list")
    assert "filter=is_error%3A1" in event_call.request.url
    assert len(calls("/cancel", "POST")) == 1  # the task does not linger at Globus
    assert os.listdir(workdir) == []


def test_errors_globus_gets_past_do_not_fail_the_step(make_site, workdir, tmp_path) -> None:
    submit_and_auth()
    load_response(SET_ID, case="active_retrying")
    load_response(SET_ID, case="events_retry")
    endpoint_delivers(tmp_path)
    GlobusBackend(make_site()).fetch([TransferItem(remote("/data/a.dat"), workdir / "a.dat")],
                                     threading.Event())
    assert (workdir / "a.dat").exists()
    assert calls("/cancel") == []


def test_a_failed_task_reports_its_fatal_error(make_site, workdir) -> None:
    submit_and_auth()
    load_response(SET_ID, case="failed")
    load_response(SET_ID, case="events_none")
    load_response(SET_ID, case="cancel")
    with pytest.raises(TransferError, match=r"^input file a.dat: Globus task .*: PERMISSION_DENIED: "
                                            r"permission denied on /data/job1"):
        GlobusBackend(make_site()).fetch([TransferItem(remote("/data/job1/a.dat"), workdir / "a.dat")],
                                         threading.Event())
    assert os.listdir(workdir) == []


def test_cancelling_the_step_cancels_the_task(make_site, workdir) -> None:
    submit_and_auth()
    active = recorded("active")
    load_response(SET_ID, case="cancel")
    cancelled = threading.Event()
    polls: list[int] = []

    def still_active(request: Any) -> tuple[int, dict[str, str], str]:
        polls.append(1)
        if len(polls) == 3:
            cancelled.set()  # the agent cancels the step while the task runs
        return 200, {}, json.dumps(active.json)

    responses.add_callback(responses.GET, active.full_url, callback=still_active)
    with pytest.raises(TransferCancelled, match="cancelled"):
        GlobusBackend(make_site()).fetch([TransferItem(remote("/data/a.dat"), workdir / "a.dat")], cancelled)
    assert len(polls) == 3
    (cancel,) = calls("/cancel", "POST")
    assert cancel.request.url.endswith(f"/v0.10/task/{get_response_set(SET_ID).metadata['task_id']}/cancel")
    assert os.listdir(workdir) == []


def test_a_task_past_its_deadline_is_cancelled(make_site, workdir) -> None:
    submit_and_auth()
    load_response(SET_ID, case="active")
    load_response(SET_ID, case="cancel")
    with pytest.raises(TransferError, match="did not finish within 0.05 s") as info:
        GlobusBackend(make_site(deadline_seconds=0.05)).fetch(
            [TransferItem(remote("/data/a.dat"), workdir / "a.dat")], threading.Event())
    assert info.value.transient
    assert len(calls("/cancel", "POST")) == 1


def test_stage_out_sends_files_and_directories_from_the_local_endpoint(make_site, workdir) -> None:
    submit_and_auth()
    load_response(SET_ID, case="succeeded")
    (workdir / "out.dat").write_text("x")
    (workdir / "logs").mkdir()
    (workdir / "logs" / "l.txt").write_text("y")
    GlobusBackend(make_site(verify_checksum=False)).store(
        [TransferItem(remote("/data/job1/out.dat"), workdir / "out.dat"),
         TransferItem(remote("/data/job1/logs"), workdir / "logs")], threading.Event())
    body = submitted()
    assert (body["source_endpoint"], body["destination_endpoint"]) == (LOCAL, REMOTE)
    assert body["verify_checksum"] is False
    assert body["label"] == "balsam stage-out job1-step0"
    assert [(i["source_path"], i["destination_path"], bool(i.get("recursive"))) for i in body["DATA"]] == [
        ("/~/work/job1-step0/out.dat", "/data/job1/out.dat", False),
        ("/~/work/job1-step0/logs/", "/data/job1/logs/", True),
    ]


def test_a_stored_refresh_token_authenticates_instead_of_client_credentials(make_site, workdir) -> None:
    submit_and_auth()  # the token endpoint answers a refresh grant the same way
    load_response(SET_ID, case="succeeded")
    (workdir / "out.dat").write_text("x")
    site = make_site(refresh_token="RT-stored-for-the-user", client_secret="")
    GlobusBackend(site).store([TransferItem(remote("/data/out.dat"), workdir / "out.dat")], threading.Event())
    (token,) = calls("/v2/oauth2/token")
    form = parse_qs(token.request.body)
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["RT-stored-for-the-user"]


def test_a_refused_submission_names_the_files(make_site, workdir) -> None:
    load_response("auth.oauth2_client_credentials_tokens")
    load_response("transfer.get_submission_id")
    load_response("transfer.submit_transfer", case="failure")
    (workdir / "a.dat").write_text("x")
    (workdir / "b.dat").write_text("x")
    with pytest.raises(TransferError, match=r"^output files a.dat, b.dat: Globus refused the transfer: "
                                            r"ClientError.BadRequest.NoTransferItems"):
        GlobusBackend(make_site()).store([TransferItem(remote("/d/a.dat"), workdir / "a.dat"),
                                          TransferItem(remote("/d/b.dat"), workdir / "b.dat")],
                                         threading.Event())


@pytest.mark.parametrize("url", [
    remote("/data/job1/../../etc/passwd"),
    remote("/data/job1/%2e%2e/job2/x"),
    "globus://not-a-uuid/data/x",
    "gsiftp://host/data/x",
    remote("/"),
])
def test_urls_that_leave_the_data_area_are_refused_before_any_request(make_site, workdir, url) -> None:
    items = [TransferItem(remote("/data/ok.dat"), workdir / "ok.dat"), TransferItem(url, workdir / "bad.dat")]
    with pytest.raises(TransferError, match="^input file bad.dat: "):
        GlobusBackend(make_site()).fetch(items, threading.Event())
    assert len(responses.calls) == 0


def test_local_paths_outside_the_working_directory_are_refused(make_site, workdir, tmp_path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (workdir / "link").symlink_to(outside)
    backend = GlobusBackend(make_site())
    for path in (workdir / ".." / ".." / "x.dat", Path("/etc/passwd"), workdir / "link" / "x.dat"):
        with pytest.raises(TransferError, match="outside the step's working directory"):
            backend.fetch([TransferItem(remote("/data/x.dat"), path)], threading.Event())
    assert len(responses.calls) == 0


def test_a_path_the_local_endpoint_cannot_see_is_refused(make_site, workdir) -> None:
    with pytest.raises(TransferError, match="which the site's Globus endpoint shares"):
        GlobusBackend(make_site(local_fs_root="/nonexistent-share")).fetch(
            [TransferItem(remote("/data/x.dat"), workdir / "x.dat")], threading.Event())
    assert len(responses.calls) == 0


def test_a_success_that_delivered_nothing_is_not_reported_complete(make_site, workdir) -> None:
    # e.g. local_fs_root pointing the endpoint at another directory than the agent's
    submit_and_auth()
    load_response(SET_ID, case="succeeded")
    with pytest.raises(TransferError, match="^input file a.dat: Globus reported success but nothing arrived"):
        GlobusBackend(make_site()).fetch([TransferItem(remote("/data/a.dat"), workdir / "a.dat")],
                                         threading.Event())
    assert os.listdir(workdir) == []
