"""The ``slurm`` scheduler backend: sbatch, batched squeue, sacct for jobs that left the queue."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from balsam_agent.scheduler import (
    BatchScheduler,
    CommandResult,
    LaunchSpec,
    SchedulerError,
    SchedulerJobStatus,
)
from balsam_slurm import commands, parsers

log = logging.getLogger(__name__)

#: stderr of squeue/scancel/scontrol for a job id slurmctld no longer knows (purged after MinJobAge).
_INVALID_ID = "Invalid job id specified"


def _check_ids(scheduler_ids: Sequence[str]) -> list[str]:
    """Refuses ids that are not Slurm job ids: they end up on command lines."""
    bad = [job_id for job_id in scheduler_ids if not parsers.is_job_id(job_id)]
    if bad:
        raise SchedulerError(f"not Slurm job ids: {', '.join(map(repr, bad))}", transient=False)
    return list(scheduler_ids)


class SlurmScheduler(BatchScheduler):
    """Submits steps with ``sbatch`` and follows them with one ``squeue`` per poll cycle.

    A job missing from ``squeue`` (it ended) is looked up with ``sacct`` before it is reported ended;
    a job unknown to both is left out of the result. Site options read: ``constraint``,
    ``extra_directives`` (``#SBATCH`` words), ``srun_args`` (extra srun words) and ``accounting_days``
    (how far back ``sacct`` looks, default 7).
    """

    name = "slurm"

    @property
    def accounting_days(self) -> int:
        """Days of accounting ``sacct`` searches (``--starttime=now-Ndays``)."""
        return int(self.site.options.get("accounting_days", 7))

    def submit(self, spec: LaunchSpec) -> str:
        """Writes the batch script into the step's working directory and submits it with sbatch."""
        script = commands.render_script(spec, self.site)
        argv = commands.sbatch_argv(f"{spec.job_name}.sbatch", spec.scheduler_args)
        path = spec.workdir / f"{spec.job_name}.sbatch"
        path.write_text(script)
        os.chmod(path, 0o700)
        delay = self.command_backoff
        for attempt in range(1, self.command_attempts + 1):
            try:
                result = self.run(argv, cwd=spec.workdir, attempts=1)
                job_id = parsers.parse_submit(result.stdout)
            except SchedulerError as exc:
                if not exc.transient or attempt == self.command_attempts:
                    raise
                log.warning("sbatch failed (attempt %d/%d): %s", attempt, self.command_attempts, exc)
                time.sleep(delay)
                delay *= 2
                # a failed sbatch may still have reached slurmctld (a timeout after the job was queued):
                # adopt that job rather than submit a second one
                adopted = self.find_by_name(spec.job_name)
                if adopted is not None:
                    log.info("sbatch of %s had submitted job %s after all", spec.job_name, adopted)
                    return adopted
                continue
            log.info("submitted %s as Slurm job %s", spec.job_name, job_id)
            return job_id
        raise SchedulerError("sbatch failed")  # not reached: the loop returns or raises

    def poll(self, scheduler_ids: Sequence[str]) -> dict[str, SchedulerJobStatus]:
        """One squeue for every job; sacct only for the jobs squeue no longer lists."""
        ids = _check_ids(scheduler_ids)
        if not ids:
            return {}
        # squeue exits 1 with "Invalid job id specified" when its only id was purged: that is an empty
        # listing, not a failure (modern Balsam issue #323)
        listing = self._run_accepting(commands.squeue_argv(ids), _invalid_id_is_empty)
        statuses = parsers.parse_squeue(listing.stdout) if listing.returncode == 0 else {}
        statuses = {job_id: status for job_id, status in statuses.items() if job_id in ids}
        missing = [job_id for job_id in ids if job_id not in statuses]
        if missing:
            accounting = self.run(commands.sacct_argv(missing, self.accounting_days))
            ended = parsers.parse_sacct(accounting.stdout)
            for job_id in missing:
                status = ended.get(job_id)
                # sacct may lag behind squeue for a moment; a job still "active" there is not ended
                if status is not None and status.state.is_final:
                    statuses[job_id] = status
                elif status is not None:
                    log.info("Slurm job %s left squeue but sacct says %s", job_id, status.native_state)
        return statuses

    def cancel(self, scheduler_id: str) -> None:
        """``scancel``; a job that already ended or was purged counts as cancelled."""
        (job_id,) = _check_ids([scheduler_id])
        result = self._run_accepting(commands.scancel_argv(job_id), _already_gone)
        if result.returncode != 0 or result.stderr.strip():
            log.info("scancel %s: %s", job_id, result.stderr.strip())

    def hold(self, scheduler_id: str) -> None:
        """``scontrol hold``: only a pending job can be held (else a permanent error saying why)."""
        (job_id,) = _check_ids([scheduler_id])
        self._control(commands.hold_argv(job_id))

    def release(self, scheduler_id: str) -> None:
        """``scontrol release``."""
        (job_id,) = _check_ids([scheduler_id])
        self._control(commands.release_argv(job_id))

    def find_by_name(self, job_name: str) -> str | None:
        """The newest job with this name: active ones from squeue, else ended ones from sacct."""
        active = parsers.parse_job_ids(self.run(commands.squeue_name_argv(job_name)).stdout)
        if active:
            return max(active, key=parsers.job_id_order)
        ended = self.run(commands.sacct_name_argv(job_name, self.accounting_days)).stdout
        return parsers.latest_job_by_name(ended, job_name)

    def _control(self, argv: list[str]) -> None:
        result = self._run_accepting(argv, lambda r: _invalid_id(r) or "not pending" in r.stderr
                                     or "no longer pending" in r.stderr)
        if result.returncode != 0:
            raise SchedulerError(f"{' '.join(argv)}: {result.stderr.strip()[:300]}", transient=False)

    def _run_accepting(self, argv: list[str], accept: Callable[[CommandResult], bool]) -> CommandResult:
        """Runs ``argv`` with retries like :meth:`run`, returning at once a failure ``accept`` expects."""
        delay = self.command_backoff
        for attempt in range(1, self.command_attempts + 1):
            try:
                result = self.run(argv, check=False, attempts=1)
            except SchedulerError as exc:
                if not exc.transient or attempt == self.command_attempts:
                    raise
                last = str(exc)
            else:
                if result.returncode == 0 or accept(result):
                    return result
                last = f"{argv[0]} exited {result.returncode}: {(result.stderr or result.stdout).strip()[:500]}"
                if attempt == self.command_attempts:
                    raise SchedulerError(last)
            log.warning("scheduler command failed (attempt %d/%d): %s", attempt, self.command_attempts, last)
            time.sleep(delay)
            delay *= 2
        raise SchedulerError(f"{argv[0]} failed")  # not reached: the loop returns or raises


def _invalid_id(result: CommandResult) -> bool:
    return _INVALID_ID in result.stderr


def _invalid_id_is_empty(result: CommandResult) -> bool:
    return _invalid_id(result)


def _already_gone(result: CommandResult) -> bool:
    return _invalid_id(result) or "already completing or completed" in result.stderr
