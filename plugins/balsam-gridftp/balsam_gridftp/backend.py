"""The GridFTP transfer backend: ``globus-url-copy`` per file, with retries, cancellation and safe names.

Stage-in writes to a hidden temporary name next to the final one and renames it only after the transfer
process itself exited 0 (the seed checked the exit status of the wrong process), so a partial download is
never found under the final name. Stage-out creates the remote directories (``-cd``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from balsam_agent.records import SiteProfile
from balsam_agent.transfer import TransferBackend, TransferError, TransferItem, check_local_path
from balsam_gridftp import command, paths
from balsam_gridftp.options import GridFTPOptions

log = logging.getLogger(__name__)


class TransferCancelled(TransferError):
    """The step was cancelled while its files were moving."""


class GridFTPBackend(TransferBackend):
    """Moves files between the step's working directory and GridFTP/FTP servers."""

    schemes = ("gsiftp", "ftp")

    def __init__(self, site: SiteProfile) -> None:
        super().__init__(site)
        self.options = GridFTPOptions.from_site_options(site.options)

    # --- the TransferBackend API ---

    def fetch(self, items: Sequence[TransferItem], cancelled: threading.Event) -> None:
        """Copies every ``item.url`` to ``item.path``; a URL ending in ``/`` is a directory (recursive).

        Every item is checked before the first byte moves.
        """
        checked = [self._check(item, "input") for item in items]
        for item, local in checked:
            self._raise_if_cancelled(cancelled, item, "input")
            self._fetch_one(item, local, cancelled)

    def store(self, items: Sequence[TransferItem], cancelled: threading.Event) -> None:
        """Copies every ``item.path`` (file or directory) to ``item.url``, creating remote directories."""
        checked = [self._check(item, "output") for item in items]
        for item, local in checked:
            if not local.exists():
                raise TransferError(f"{paths.label(item, 'output')}: not found in the working directory")
        for item, local in checked:
            self._raise_if_cancelled(cancelled, item, "output")
            self._store_one(item, local, cancelled)

    # --- one file ---

    def _check(self, item: TransferItem, direction: str) -> tuple[TransferItem, Path]:
        what = paths.label(item, direction)
        paths.check_url(item.url, self.schemes, what)
        return item, check_local_path(item, self.site, what)

    def _fetch_one(self, item: TransferItem, local: Path, cancelled: threading.Event) -> None:
        what = paths.label(item, "input")
        directory = item.url.endswith("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = paths.temporary_sibling(local)
        argv = command.build_argv(
            self.options,
            item.url,
            paths.file_url(partial, directory=directory),
            recursive=directory,
            create_dirs=directory,
        )
        try:
            self._run_with_retries(argv, item, what, "from", cancelled)
            if directory:
                # A directory cannot replace a non-empty one atomically; a stale copy from an earlier
                # attempt of this step is removed first.
                if local.is_dir() and not local.is_symlink():
                    shutil.rmtree(local)
                partial.mkdir(exist_ok=True)  # an empty remote directory creates nothing locally
            os.replace(partial, local)
        finally:
            _remove(partial)

    def _store_one(self, item: TransferItem, local: Path, cancelled: threading.Event) -> None:
        what = paths.label(item, "output")
        directory = local.is_dir()
        url = item.url
        if directory and not url.endswith("/"):
            url += "/"
        argv = command.build_argv(
            self.options, paths.file_url(local, directory=directory), url, recursive=directory,
            create_dirs=True,
        )
        self._run_with_retries(argv, item, what, "to", cancelled)

    # --- processes ---

    def _run_with_retries(
        self, argv: list[str], item: TransferItem, what: str, preposition: str, cancelled: threading.Event
    ) -> None:
        """Runs ``argv`` until it exits 0, retrying failures that may go away, with backoff."""
        url = paths.redact(item.url)
        attempts = 1 + self.options.retries
        env = command.child_env(self.options, os.environ)
        for attempt in range(attempts):
            try:
                returncode, stderr = self._run(argv, env, cancelled)
            except OSError as exc:
                raise TransferError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}") from exc
            if cancelled.is_set():
                raise TransferCancelled(f"{what}: transfer {preposition} {url} cancelled")
            if returncode == 0:
                return
            failure = command.classify(returncode, stderr)
            log.warning("%s: globus-url-copy exited %s (attempt %d of %d): %s",
                        what, returncode, attempt + 1, attempts, failure.reason)
            if failure.not_found and preposition == "from":
                raise TransferError(f"{what}: not found at {url} ({failure.reason})")
            if not failure.transient:
                raise TransferError(f"{what}: transfer {preposition} {url} failed: {failure.reason}")
            if attempt + 1 < attempts and cancelled.wait(self.options.backoff(attempt)):
                raise TransferCancelled(f"{what}: transfer {preposition} {url} cancelled")
        raise TransferError(
            f"{what}: transfer {preposition} {url} failed after {attempts} attempts: {failure.reason}",
            transient=True,
        )

    def _run(self, argv: list[str], env: dict[str, str], cancelled: threading.Event) -> tuple[int, str]:
        """Runs one ``globus-url-copy``; terminates it when ``cancelled`` is set.

        :return: the process's own exit status (negative: killed by that signal) and its stderr.
        :raises OSError: when the program cannot be started.
        """
        # stderr goes to a file, not a pipe: a chatty child can never block on a full pipe that nobody reads.
        with tempfile.TemporaryFile(mode="w+b") as err:
            process = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,  # our signals (Ctrl-C) stay ours; cancellation is explicit
            )
            # The transfer is waited for directly (no polling delay added to every file); a watcher
            # thread turns the step's cancellation into signals.
            finished = threading.Event()
            watcher = threading.Thread(target=_watch, args=(process, cancelled, finished, self.options.kill_grace),
                                       name="gridftp-cancel-watch", daemon=True)
            watcher.start()
            try:
                returncode = process.wait()
            finally:
                finished.set()
                watcher.join()
            err.seek(0)
            return returncode, err.read().decode("utf-8", "replace")

    @staticmethod
    def _raise_if_cancelled(cancelled: threading.Event, item: TransferItem, direction: str) -> None:
        if cancelled.is_set():
            raise TransferCancelled(f"{paths.label(item, direction)}: cancelled before it started")


def _watch(process: subprocess.Popen[bytes], cancelled: threading.Event, finished: threading.Event,
           grace: float) -> None:
    """Until ``finished``: on ``cancelled``, SIGTERM the child, and SIGKILL it if it lingers ``grace`` s."""
    while not finished.is_set():
        if cancelled.wait(0.05):
            if finished.is_set():
                return
            process.terminate()
            if not finished.wait(grace):
                process.kill()
            return


def _remove(path: Path) -> None:
    """Deletes a leftover temporary file or directory, if any."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
