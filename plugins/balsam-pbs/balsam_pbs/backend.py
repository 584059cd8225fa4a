"""The PBS Professional scheduler backend: submit, batched poll with history, cancel, hold, release.

Poll: one ``qstat -f -F json`` for all ids; only ids it no longer lists are asked again with ``qstat -x``
(the job history: ``job_state`` F and ``Exit_status``). Ids are matched by sequence number, since PBS may
print a longer server name than ``qsub`` did. Scheduler ids are always strings with their server suffix.
"""

from __future__ import annotations

import getpass
import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from balsam_agent.records import SiteProfile
from balsam_agent.scheduler import (
    BatchScheduler,
    CommandResult,
    LaunchSpec,
    SchedulerError,
    SchedulerJobStatus,
    SchedulerState,
)
from balsam_pbs import commands, parsers

log = logging.getLogger(__name__)



class PbsScheduler(BatchScheduler):
    """PBS Professional (``qsub``/``qstat``/``qdel``/``qhold``/``qrls``/``qselect``) for Polaris and Aurora."""

    name = "pbs"

    def __init__(self, site: SiteProfile) -> None:
        super().__init__(site)
        self._lock = threading.Lock()
        self._cancelled: set[str] = set()
        for option in ("command_timeout", "command_attempts", "command_backoff"):
            if option in site.options:
                setattr(self, option, type(getattr(self, option))(site.options[option]))

    def build_submit(self, spec: LaunchSpec) -> tuple[list[str], str]:
        """Returns the qsub argv and the job script to write first."""
        script_path = spec.workdir / f"{spec.job_name}.pbs.sh"
        script = commands.job_script(spec, self.site.launch_style)
        return commands.qsub_argv(spec, self.site, script_path), script

    def submit(self, spec: LaunchSpec) -> str:
        """Submits the step; a failed qsub is retried only after checking it did not submit anyway."""
        argv, script = self.build_submit(spec)
        path = Path(argv[-1])
        path.write_text(script)
        path.chmod(0o755)

        def once() -> str:
            try:
                result = self.run(argv, cwd=spec.workdir, attempts=1)
            except SchedulerError:
                found = self.find_by_name(spec.job_name)
                if found is not None:
                    return found
                raise
            return parsers.parse_qsub_output(result.stdout)

        return self.retry(once)

    def poll(self, scheduler_ids: Sequence[str]) -> dict[str, SchedulerJobStatus]:
        """One ``qstat -f -F json`` for all jobs; ``qstat -x`` only for those it no longer lists."""
        ids = [i for i in dict.fromkeys(scheduler_ids) if i]
        if not ids:
            return {}
        by_sequence = {parsers.sequence_number(i): i for i in ids}
        result: dict[str, SchedulerJobStatus] = {}
        for history in (False, True):
            missing = [i for i in ids if i not in result]
            if not missing:
                break
            listed = self.retry(lambda m=missing, h=history: self._qstat(m, h))  # type: ignore[misc]
            for job_id, status in listed.items():
                wanted = by_sequence.get(parsers.sequence_number(job_id))
                if wanted is not None and wanted not in result:
                    result[wanted] = replace(status, scheduler_id=wanted)
        with self._lock:
            cancelled = set(self._cancelled)
        for job_id, status in list(result.items()):
            if job_id in cancelled and status.state is SchedulerState.FAILED:
                result[job_id] = replace(status, state=SchedulerState.CANCELLED,
                                         reason=f"deleted (qdel); {status.reason}")
        for job_id in ids:
            if job_id not in result:
                log.warning("PBS job %s is unknown to qstat, also with -x", job_id)
        return result

    def _qstat(self, ids: list[str], history: bool) -> dict[str, SchedulerJobStatus]:
        result = self.run(commands.qstat_argv(ids, history=history), check=False, attempts=1)
        if result.returncode != 0 and not parsers.only_unknown_job_errors(result.stderr):
            raise SchedulerError(_describe(result))
        return parsers.parse_qstat_json(result.stdout)

    def cancel(self, scheduler_id: str) -> None:
        """``qdel``; a job PBS no longer knows or that already finished needs no cancel."""
        with self._lock:
            self._cancelled.add(scheduler_id)
        result = self.run(commands.qdel_argv(scheduler_id), check=False)
        if result.returncode != 0:
            if parsers.only_unknown_job_errors(result.stderr):
                log.warning("qdel: PBS job %s already ended: %s", scheduler_id, result.stderr.strip())
                return
            raise SchedulerError(_describe(result))

    def hold(self, scheduler_id: str) -> None:
        """``qhold``; PBS refuses a job that runs or that it does not know."""
        self._control(commands.qhold_argv(scheduler_id))

    def release(self, scheduler_id: str) -> None:
        """``qrls``."""
        self._control(commands.qrls_argv(scheduler_id))

    def _control(self, argv: list[str]) -> None:
        result = self.run(argv, check=False)
        if result.returncode != 0:
            refused = parsers.only_unknown_job_errors(result.stderr) or "Request invalid" in result.stderr
            raise SchedulerError(_describe(result), transient=not refused)

    def find_by_name(self, job_name: str) -> str | None:
        """``qselect -x -N name -u user``: the newest job of this user with that name, or None."""
        result = self.run(commands.qselect_argv(job_name, getpass.getuser()))
        ids = parsers.parse_qselect_output(result.stdout)
        return ids[-1] if ids else None


def _describe(result: CommandResult) -> str:
    detail = (result.stderr or result.stdout).strip()[:500]
    return f"{result.argv[0]} exited {result.returncode}: {detail}"
