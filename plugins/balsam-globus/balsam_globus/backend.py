"""The Globus transfer backend: one transfer task per step and direction with all of its files.

The task is polled until it ends. While it runs, its event list is read whenever Globus reports faults:
an error Globus cannot get past (a missing file, a permission refused, ...) fails the step at once and
cancels the task, instead of letting Globus retry until the task's deadline (modern Balsam's issue #114).
A cancelled step cancels its task. Stage-in lands under hidden temporary names that are renamed to the
final ones only after the task succeeded, so a partial download is never found under the final name.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import globus_sdk

from balsam_agent.records import SiteProfile
from balsam_agent.transfer import TransferBackend, TransferError, TransferItem, check_local_path
from balsam_globus import auth, paths
from balsam_globus.options import GlobusOptions

log = logging.getLogger(__name__)

#: Task statuses of the Transfer API (``GET /task/<id>``).
SUCCEEDED, FAILED, INACTIVE = "SUCCEEDED", "FAILED", "INACTIVE"


class TransferCancelled(TransferError):
    """The step was cancelled while its files were moving."""


@dataclass(frozen=True)
class _File:
    """One item of a task: where it is on both endpoints."""

    item: TransferItem
    remote: paths.GlobusURL
    local: Path
    #: What the local endpoint writes or reads: a temporary sibling on stage-in, ``local`` on stage-out.
    staged: Path
    directory: bool


class GlobusBackend(TransferBackend):
    """Moves files between the step's working directory (seen by the site's own Globus endpoint) and
    remote Globus endpoints."""

    schemes = ("globus",)

    def __init__(self, site: SiteProfile) -> None:
        super().__init__(site)
        self.options = GlobusOptions.from_site_options(site.options)
        self._authorizer: globus_sdk.authorizers.GlobusAuthorizer | None = None
        self._lock = threading.Lock()

    # --- the TransferBackend API ---

    def fetch(self, items: Sequence[TransferItem], cancelled: threading.Event) -> None:
        """Copies every ``item.url`` to ``item.path``; a URL ending in ``/`` is a directory (recursive)."""
        files = [self._plan(item, "input") for item in items]
        try:
            for file in files:
                file.local.parent.mkdir(parents=True, exist_ok=True)
            self._transfer(files, "input", cancelled)
            for file in files:
                if file.directory:
                    # a directory cannot replace a non-empty one; a stale copy of an earlier attempt goes
                    if file.local.is_dir() and not file.local.is_symlink():
                        shutil.rmtree(file.local)
                    file.staged.mkdir(exist_ok=True)  # an empty remote directory creates nothing here
                elif not file.staged.is_file():
                    raise TransferError(f"{paths.label(file.item, 'input')}: Globus reported success but "
                                        f"nothing arrived from {file.item.url} (is 'local_fs_root' right?)")
                os.replace(file.staged, file.local)
        finally:
            for file in files:
                _remove(file.staged)

    def store(self, items: Sequence[TransferItem], cancelled: threading.Event) -> None:
        """Copies every ``item.path`` (file or directory) to ``item.url``."""
        files = [self._plan(item, "output") for item in items]
        for file in files:
            if not file.local.exists():
                raise TransferError(f"{paths.label(file.item, 'output')}: not found in the working directory")
        self._transfer(files, "output", cancelled)

    def close(self) -> None:
        """Forgets the cached tokens."""
        self._authorizer = None

    # --- planning ---

    def _plan(self, item: TransferItem, direction: str) -> _File:
        """Checks one item before anything is submitted and works out both of its paths."""
        what = paths.label(item, direction)
        remote = paths.parse_url(item.url, what)
        local = check_local_path(item, self.site, what)
        if direction == "input":
            directory = remote.is_directory
            staged = paths.temporary_sibling(local)
        else:
            directory = local.is_dir()
            staged = local
            if directory and not remote.is_directory:
                remote = paths.GlobusURL(remote.endpoint, remote.path + "/")
        # checked here, before any task exists, that the local endpoint can see the path
        self._endpoint_path(staged, what, directory)
        return _File(item, remote, local, staged, directory)

    def _endpoint_path(self, local: Path, what: str, directory: bool) -> str:
        fs_root = str(Path(self.options.local_fs_root).resolve())
        return paths.endpoint_path(local, fs_root, self.options.local_endpoint_root, what, directory)

    # --- tasks ---

    def _client(self) -> globus_sdk.TransferClient:
        """A Transfer client per call (clients hold a requests session, which threads should not share);
        the authorizer, which caches the access token, is shared."""
        with self._lock:
            if self._authorizer is None:
                self._authorizer = auth.make_authorizer(self.options)
            authorizer = self._authorizer
        return globus_sdk.TransferClient(
            authorizer=authorizer, app_name="balsam-globus",
            retry_config=globus_sdk.transport.RetryConfig(max_retries=self.options.api_retries),
        )

    def _transfer(self, files: list[_File], direction: str, cancelled: threading.Event) -> None:
        """Submits one task per remote endpoint (normally one per step and direction) and waits for all."""
        if not files:
            return
        if cancelled.is_set():
            raise TransferCancelled(f"{self._names(files, direction)}: cancelled before it started")
        client = self._client()
        groups: dict[str, list[_File]] = {}
        for file in files:
            groups.setdefault(file.remote.endpoint, []).append(file)
        tasks: dict[str, list[_File]] = {}
        try:
            for endpoint, group in groups.items():
                tasks[self._submit(client, endpoint, group, direction)] = group
            self._wait(client, tasks, direction, cancelled)
        except BaseException:
            for task_id in tasks:
                self._cancel(client, task_id)
            raise

    def _submit(self, client: globus_sdk.TransferClient, endpoint: str, group: list[_File],
                direction: str) -> str:
        local_endpoint = self.options.local_endpoint
        source, destination = (endpoint, local_endpoint) if direction == "input" else (local_endpoint, endpoint)
        data = globus_sdk.TransferData(
            source, destination, label=self._label(group, direction),
            verify_checksum=self.options.verify_checksum, fail_on_quota_errors=True,
        )
        for file in group:
            local_path = self._endpoint_path(file.staged, "", file.directory)
            if direction == "input":
                data.add_item(file.remote.path, local_path, recursive=file.directory)
            else:
                data.add_item(local_path, file.remote.path, recursive=file.directory)
        try:
            task_id = str(client.submit_transfer(data)["task_id"])
        except globus_sdk.GlobusAPIError as exc:
            raise TransferError(f"{self._names(group, direction)}: Globus refused the transfer: "
                                f"{exc.code}: {exc.message}", transient=exc.http_status >= 500) from exc
        except globus_sdk.NetworkError as exc:
            raise TransferError(f"{self._names(group, direction)}: cannot reach Globus: {exc}",
                                transient=True) from exc
        log.info("Globus task %s submitted: %s, %d item(s) between %s and %s", task_id, direction,
                 len(group), source, destination)
        return task_id

    def _wait(self, client: globus_sdk.TransferClient, tasks: dict[str, list[_File]], direction: str,
              cancelled: threading.Event) -> None:
        """Polls every task until it succeeded; raises at the first one that cannot."""
        pending = dict(tasks)
        deadline = time.monotonic() + self.options.deadline_seconds if self.options.deadline_seconds else None
        failed_polls = 0
        while True:
            for task_id, group in list(pending.items()):
                try:
                    task = client.get_task(task_id)
                    failed_polls = 0
                except (globus_sdk.NetworkError, globus_sdk.GlobusAPIError) as exc:
                    # a 4xx on our own task (403, 404) will not heal; an outage may
                    if isinstance(exc, globus_sdk.GlobusAPIError) and exc.http_status < 500:
                        raise TransferError(f"{self._names(group, direction)}: Globus task {task_id}: "
                                            f"{exc.code}: {exc.message}") from exc
                    failed_polls += 1
                    log.warning("polling Globus task %s failed (%d in a row): %s", task_id, failed_polls, exc)
                    if failed_polls > self.options.poll_failures_allowed:
                        raise TransferError(f"{self._names(group, direction)}: lost contact with Globus "
                                            f"while task {task_id} ran: {exc}", transient=True) from exc
                    continue
                status = task["status"]
                if status == SUCCEEDED:
                    log.info("Globus task %s succeeded", task_id)
                    del pending[task_id]
                elif status in (FAILED, INACTIVE) or task.get("faults"):
                    self._raise_if_fatal(client, task_id, task, group, direction)
            if not pending:
                return
            if deadline is not None and time.monotonic() > deadline:
                task_id, group = next(iter(pending.items()))
                raise TransferError(f"{self._names(group, direction)}: Globus task {task_id} did not finish "
                                    f"within {self.options.deadline_seconds:g} s", transient=True)
            if cancelled.wait(self.options.poll_interval):
                raise TransferCancelled(f"{self._names(list(tasks.values())[0], direction)}: cancelled "
                                        f"(Globus task(s) {', '.join(tasks)})")

    def _raise_if_fatal(self, client: globus_sdk.TransferClient, task_id: str, task: Any,
                        group: list[_File], direction: str) -> None:
        """Reads the task's error events; raises when one is fatal or the task ended or stalled."""
        event = self._fatal_event(client, task_id)
        if event is None and task["status"] == FAILED:
            fatal = task.get("fatal_error") or {}
            event = {"code": fatal.get("code") or task.get("nice_status") or "FAILED",
                     "description": fatal.get("description") or "the task failed", "details": ""}
        if event is None and task["status"] == INACTIVE:
            event = {"code": task.get("nice_status") or INACTIVE,
                     "description": "the task is inactive (endpoint credentials expired or paused)",
                     "details": ""}
        if event is None:
            log.info("Globus task %s has %s fault(s), none fatal yet: Globus retries", task_id,
                     task.get("faults"))
            return
        raise TransferError(self._message(task_id, event, group, direction))

    def _fatal_event(self, client: globus_sdk.TransferClient, task_id: str) -> dict[str, Any] | None:
        """The first error event whose code Globus cannot get past, if any."""
        events = client.task_event_list(task_id, limit=100, query_params={"filter": "is_error:1"})
        for event in events:
            if event.get("is_error") and event.get("code") in self.options.fatal_error_codes:
                return dict(event)
        return None

    def _message(self, task_id: str, event: dict[str, Any], group: list[_File], direction: str) -> str:
        """Names the file the event is about (its path appears in the event's details) and the reason."""
        code = str(event.get("code") or "ERROR")
        description = str(event.get("description") or "").strip()
        details = str(event.get("details") or "")
        culprits = [f for f in group if f.remote.path.rstrip("/") and f.remote.path.rstrip("/") in details]
        if not culprits:
            # on stage-out the local side is the one named
            culprits = [f for f in group if self._endpoint_path(f.staged, "", False) in details]
        named = culprits[:1] or group
        reason = f"Globus task {task_id}: {code}: {description}" if description else f"Globus task {task_id}: {code}"
        if code == "FILE_NOT_FOUND" and direction == "input" and len(named) == 1:
            return f"{paths.label(named[0].item, 'input')}: not found at {named[0].item.url} ({reason})"
        return f"{self._names(named, direction)}: {reason}"

    def _cancel(self, client: globus_sdk.TransferClient, task_id: str) -> None:
        """Cancels a task that may still run; a task already ended makes this a no-op."""
        try:
            result = client.cancel_task(task_id)
            log.info("Globus task %s: %s", task_id, result.get("code"))
        except (globus_sdk.GlobusAPIError, globus_sdk.NetworkError) as exc:
            log.warning("cancelling Globus task %s failed: %s", task_id, exc)

    # --- naming ---

    @staticmethod
    def _names(files: list[_File], direction: str) -> str:
        if len(files) == 1:
            return paths.label(files[0].item, direction)
        shown = ", ".join(f.item.path.name for f in files[:5])
        more = f" and {len(files) - 5} more" if len(files) > 5 else ""
        return f"{direction} files {shown}{more}"

    def _label(self, group: list[_File], direction: str) -> str:
        """A task label for the Globus web app; the Transfer API allows only a few characters."""
        step = group[0].local.parent.name
        text = f"{self.options.label_prefix} {'stage-in' if direction == 'input' else 'stage-out'} {step}"
        return re.sub(r"[^A-Za-z0-9 _,.-]", "_", text)[:128]


def _remove(path: Path) -> None:
    """Deletes a leftover temporary file or directory, if any."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
