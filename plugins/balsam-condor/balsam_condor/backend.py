"""The ``condor`` scheduler backend: HTCondor through its command-line tools.

A step attempt is one cluster (its id is the scheduler id): a generated vanilla-universe job, the
user's own submit description, or a DAGMan workflow submitted with ``condor_submit_dag`` and tracked
by the DAGMan job's cluster. One ``condor_q -json`` per poll for every active cluster; clusters that
left the queue are confirmed with one ``condor_history -json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from balsam_agent.records import SiteProfile
from balsam_agent.scheduler import (
    BatchScheduler,
    CommandResult,
    LaunchSpec,
    SchedulerError,
    SchedulerJobStatus,
)
from balsam_condor import commands, parsers

log = logging.getLogger(__name__)

# condor_submit words a transient failure (schedd unreachable, security handshake, timeout) in these.
_TRANSIENT_SUBMIT_ERRORS = ("connect", "queue manager", "timed out", "SECMAN", "timeout")


class CondorScheduler(BatchScheduler):
    """HTCondor backend (``condor``): ``condor_submit``/``condor_submit_dag``, ``condor_q``,
    ``condor_history``, ``condor_rm``, ``condor_hold``, ``condor_release``.

    Site options: ``command_timeout``, ``command_attempts``, ``command_backoff`` (seconds, count,
    seconds) and ``allow_user_submit_files`` (default true: steps may bring their own
    ``condor_job_file`` / ``condor_dagman_file``, as in the seed).
    """

    name = "condor"

    def __init__(self, site: SiteProfile) -> None:
        super().__init__(site)
        options: Mapping[str, Any] = site.options or {}
        self.command_timeout = float(options.get("command_timeout", self.command_timeout))
        self.command_attempts = int(options.get("command_attempts", self.command_attempts))
        self.command_backoff = float(options.get("command_backoff", self.command_backoff))
        self.allow_user_submit_files = bool(options.get("allow_user_submit_files", True))

    # --- submit ---

    def submit(self, spec: LaunchSpec) -> str:
        """Submits the step attempt and returns its cluster id."""
        argv = self.submit_argv(spec)
        delay = self.command_backoff
        last = ""
        for attempt in range(1, self.command_attempts + 1):
            try:
                result = self.run(argv, cwd=spec.workdir, check=False, attempts=1)
            except SchedulerError as exc:
                if not exc.transient:
                    raise
                last = str(exc)
            else:
                if result.returncode == 0:
                    return parsers.parse_submit_output(result.stdout)
                last = _failure(result)
                if not any(word in last for word in _TRANSIENT_SUBMIT_ERRORS):
                    raise SchedulerError(last, transient=False)
            log.warning("condor submit failed (attempt %d/%d): %s", attempt, self.command_attempts, last)
            # A timed-out or interrupted submit may still have queued the job: adopt it, never
            # submit it twice.
            adopted = self._find_quietly(spec.job_name)
            if adopted is not None:
                log.info("condor submit of %s had queued cluster %s", spec.job_name, adopted)
                return adopted
            if attempt < self.command_attempts:
                time.sleep(delay)
                delay *= 2
        raise SchedulerError(last)

    def submit_argv(self, spec: LaunchSpec) -> list[str]:
        """The submit command for a step attempt; writes the generated submit description if needed."""
        extra = commands.submit_commands_from_args(spec.scheduler_args)
        appended = [f"{name} = {value}" for name, value in extra]
        if spec.condor_dagman_file:
            dag = self._user_file(spec, spec.condor_dagman_file)
            return commands.condor_submit_dag_argv(dag, job_name=spec.job_name, appends=appended)
        if spec.condor_job_file:
            job_file = self._user_file(spec, spec.condor_job_file)
            return commands.condor_submit_argv(
                job_file, appends=[commands.job_name_command(spec.job_name), *appended])
        description = commands.render_submit_description(
            spec, log_file=f"{spec.job_name}.log", extra=extra)
        submit_file = spec.workdir / f"{spec.job_name}.sub"
        submit_file.write_text(description)
        return commands.condor_submit_argv(submit_file)

    def _user_file(self, spec: LaunchSpec, name: str) -> Path:
        if not self.allow_user_submit_files:
            raise SchedulerError(f"site {self.site.name!r} does not accept user submit files",
                                 transient=False)
        workdir = spec.workdir.resolve()
        path = (workdir / name).resolve()
        if not path.is_relative_to(workdir):
            raise SchedulerError(f"{name!r} is outside the step's working directory", transient=False)
        if not path.is_file():
            raise SchedulerError(f"{name!r} does not exist in the step's working directory",
                                 transient=False)
        return path

    # --- status ---

    def poll(self, scheduler_ids: Sequence[str]) -> dict[str, SchedulerJobStatus]:
        """One ``condor_q`` for all clusters, one ``condor_history`` for those that left the queue."""
        ids = []
        for scheduler_id in dict.fromkeys(scheduler_ids):
            try:
                ids.append(commands.check_cluster_id(scheduler_id))
            except SchedulerError:
                log.warning("ignoring %r: not an HTCondor cluster id", scheduler_id)
        if not ids:
            return {}
        queue = parsers.group_by_cluster(
            parsers.parse_job_ads(self.run(commands.condor_q_argv(ids)).stdout))
        result: dict[str, SchedulerJobStatus] = {}
        vanished = []
        for cluster in ids:
            procs = queue.get(cluster)
            if procs:
                status = parsers.summarize_cluster(cluster, procs)
                if not status.state.is_final:
                    result[cluster] = status
                    continue
            # Gone from the queue, or only its ended processes are still listed: the history file
            # holds the final word (and any processes that already left).
            vanished.append(cluster)
        if vanished:
            history = parsers.group_by_cluster(
                parsers.parse_job_ads(self.run(commands.condor_history_argv(vanished)).stdout))
            for cluster in vanished:
                by_proc = {ad.get("ProcId"): ad for ad in queue.get(cluster, [])}
                by_proc.update({ad.get("ProcId"): ad for ad in history.get(cluster, [])})
                if by_proc:
                    result[cluster] = parsers.summarize_cluster(cluster, by_proc.values())
                else:
                    log.warning("HTCondor cluster %s is neither in the queue nor in the history", cluster)
        return result

    def find_by_name(self, job_name: str) -> str | None:
        """The cluster tagged ``ArgoJobName == job_name``, in the queue or else in the history."""
        for argv in (commands.find_in_queue_argv(job_name), commands.find_in_history_argv(job_name)):
            clusters = parsers.group_by_cluster(parsers.parse_job_ads(self.run(argv).stdout))
            if clusters:
                return str(min(int(cluster) for cluster in clusters))
        return None

    def _find_quietly(self, job_name: str) -> str | None:
        try:
            return self.find_by_name(job_name)
        except SchedulerError as exc:
            log.warning("could not look up %s after a failed submit: %s", job_name, exc)
            return None

    # --- actions ---

    def cancel(self, scheduler_id: str) -> None:
        """``condor_rm``; a cluster that already left the queue counts as removed."""
        self._act(commands.condor_rm_argv(scheduler_id), scheduler_id, missing_ok=True)

    def hold(self, scheduler_id: str) -> None:
        """``condor_hold``."""
        self._act(commands.condor_hold_argv(scheduler_id), scheduler_id, missing_ok=False)

    def release(self, scheduler_id: str) -> None:
        """``condor_release``."""
        self._act(commands.condor_release_argv(scheduler_id), scheduler_id, missing_ok=False)

    def _act(self, argv: list[str], scheduler_id: str, *, missing_ok: bool) -> None:
        try:
            result = self.run(argv, check=False, attempts=1)
        except SchedulerError as exc:
            if not exc.transient:
                raise
            self.run(argv)  # timed out once: retry with backoff
            return
        if result.returncode == 0:
            return
        if parsers.is_unknown_job_message(result.stdout + result.stderr):
            if missing_ok:
                log.info("%s: cluster %s is no longer in the queue", argv[0], scheduler_id)
                return
            raise SchedulerError(_failure(result), transient=False)
        # Anything else may be the schedd being busy: the base class retries with backoff.
        self.run(argv)


def _failure(result: CommandResult) -> str:
    text = (result.stderr.strip() or result.stdout.strip())[:500]
    return f"{result.argv[0]} exited {result.returncode}: {text}"
