"""The Cobalt scheduler backend: submit, batched poll, cancel, hold, release, re-adoption by name.

Cobalt forgets a job as soon as it ends and has no accounting command, so the outcome of a job that
left the ``qstat`` listing is read from its ``.cobaltlog``. Every job is submitted with ``--debuglog
<log dir>/$jobid.cobaltlog`` (qsub expands ``$jobid``), so the log is found from the id alone, also
after an agent restart. The log directory is the site option ``cobaltlog_dir``, else
``<work_root>/.cobaltlogs``, else the step's working directory (then only this agent process knows it).
"""

from __future__ import annotations

import getpass
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from balsam_agent.records import SiteProfile
from balsam_agent.scheduler import (
    BatchScheduler,
    CommandResult,
    LaunchSpec,
    SchedulerError,
    SchedulerJobStatus,
)
from balsam_cobalt import commands, parsers

log = logging.getLogger(__name__)



class CobaltScheduler(BatchScheduler):
    """Cobalt (``qsub``/``qstat``/``qdel``/``qhold``/``qrls``) for Mira, Vesta and Tukey.

    The launch style of the site profile decides how ranks start: ``cobalt-mode`` (``--mode cN``,
    Cobalt starts runjob; ``--mode script`` when the step's scheduler arguments ask for it),
    ``runjob`` (always a script calling runjob), ``mpirun`` (a script calling mpirun) or ``plain``.
    """

    name = "cobalt"

    def __init__(self, site: SiteProfile) -> None:
        super().__init__(site)
        self._lock = threading.Lock()
        self._log_paths: dict[str, Path] = {}
        for option, attribute in (("command_timeout", "command_timeout"),
                                  ("command_attempts", "command_attempts"),
                                  ("command_backoff", "command_backoff")):
            if option in site.options:
                setattr(self, attribute, type(getattr(self, attribute))(site.options[option]))

    # --- submit ---

    def log_dir(self, spec: LaunchSpec | None = None) -> Path | None:
        """Directory of the ``.cobaltlog`` files (see the module docstring)."""
        configured = str(self.site.options.get("cobaltlog_dir", "") or "")
        if configured:
            return Path(configured)
        if self.site.work_root:
            return Path(self.site.work_root) / ".cobaltlogs"
        return spec.workdir if spec is not None else None

    def build_submit(self, spec: LaunchSpec) -> tuple[list[str], str | None]:
        """Returns the qsub argv and, for script mode, the script text to write first."""
        args = commands.normalise_scheduler_args(spec.scheduler_args)
        asked = commands.requested_mode(args)
        extra = commands.without_mode(args)
        style = self.site.launch_style
        log_dir = self.log_dir(spec)
        debuglog = (log_dir or spec.workdir) / "$jobid.cobaltlog"
        script_path = spec.workdir / f"{spec.job_name}.cobalt.sh"
        if style == "cobalt-mode" and asked != "script":
            mode = asked or commands.bgq_mode(spec.processes_per_node)
            if mode not in commands.BGQ_MODES:
                raise SchedulerError(f"unknown Cobalt --mode {mode!r}", transient=False)
            return commands.qsub_argv(spec, self.site, mode=mode, program=spec.argv,
                                      debuglog=debuglog, extra_args=extra), None
        if style in ("cobalt-mode", "runjob"):
            script = commands.runjob_script(spec)
        elif style == "mpirun":
            script = commands.mpirun_script(spec)
        elif style == "plain":
            script = commands.plain_script(spec)
        else:
            raise SchedulerError(f"launch style {style!r} is not supported by Cobalt", transient=False)
        return commands.qsub_argv(spec, self.site, mode="script", program=[str(script_path)],
                                  debuglog=debuglog, extra_args=extra), script

    def submit(self, spec: LaunchSpec) -> str:
        """Submits the step; a failed qsub is retried only after checking it did not submit anyway."""
        argv, script = self.build_submit(spec)
        if script is not None:
            path = Path(argv[-1])
            path.write_text(script)
            path.chmod(0o755)
        log_dir = self.log_dir(spec)
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)

        def once() -> str:
            try:
                result = self.run(argv, cwd=spec.workdir, attempts=1)
            except SchedulerError:
                # qsub may have queued the job before failing (a timeout): never submit twice.
                found = self.find_by_name(spec.job_name)
                if found is not None:
                    return found
                raise
            return parsers.parse_qsub_output(result.stdout)

        job_id = self.retry(once)
        with self._lock:
            self._log_paths[job_id] = (log_dir or spec.workdir) / f"{job_id}.cobaltlog"
        return job_id

    # --- poll ---

    def poll(self, scheduler_ids: Sequence[str]) -> dict[str, SchedulerJobStatus]:
        """One ``qstat`` for all jobs; jobs that left the queue are read from their ``.cobaltlog``."""
        ids = [i for i in dict.fromkeys(scheduler_ids) if i]
        if not ids:
            return {}
        bad = [i for i in ids if not i.isdigit()]
        if bad:
            raise SchedulerError(f"not Cobalt job ids: {', '.join(bad)}", transient=False)
        listed = self.retry(lambda: self._qstat(commands.qstat_argv(ids)))
        result = {i: listed[i] for i in ids if i in listed}
        for job_id in ids:
            if job_id in result:
                continue
            final = self._read_cobaltlog(job_id)
            if final is not None:
                result[job_id] = final
            else:
                log.warning("Cobalt job %s is neither queued nor recorded as ended in its cobaltlog", job_id)
        return result

    def _qstat(self, argv: list[str]) -> dict[str, SchedulerJobStatus]:
        result = self.run(argv, check=False, attempts=1)
        if result.returncode != 0:
            if not result.stdout.strip() and not result.stderr.strip():
                # Cobalt's qstat exits 1 silently when none of the given jobs is in the queue.
                return {}
            raise SchedulerError(_describe(result))
        return parsers.parse_qstat_status(result.stdout)

    def cobaltlog_path(self, scheduler_id: str) -> Path | None:
        """Where the job's ``.cobaltlog`` is (None when this agent cannot know)."""
        with self._lock:
            known = self._log_paths.get(scheduler_id)
        if known is not None:
            return known
        log_dir = self.log_dir()
        return log_dir / f"{scheduler_id}.cobaltlog" if log_dir is not None else None

    def _read_cobaltlog(self, scheduler_id: str) -> SchedulerJobStatus | None:
        path = self.cobaltlog_path(scheduler_id)
        if path is None:
            return None
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return None
        return parsers.parse_cobaltlog(text, scheduler_id)

    # --- control ---

    def cancel(self, scheduler_id: str) -> None:
        """``qdel``; a job Cobalt no longer knows needs no cancel (its outcome comes from its log)."""
        result = self.run(commands.qdel_argv(scheduler_id))
        if parsers.qdel_found_nothing(result.stdout):
            log.warning("qdel: Cobalt job %s was not found (already ended?)", scheduler_id)

    def hold(self, scheduler_id: str) -> None:
        """``qhold``; raises when Cobalt refused (job running, unknown, already held)."""
        result = self.run(commands.qhold_argv(scheduler_id))
        parsers.check_hold_output(result.stdout, result.stderr, scheduler_id, "hold")

    def release(self, scheduler_id: str) -> None:
        """``qrls``; raises when Cobalt refused (no user hold, unknown job)."""
        result = self.run(commands.qrls_argv(scheduler_id))
        parsers.check_hold_output(result.stdout, result.stderr, scheduler_id, "release")

    def find_by_name(self, job_name: str) -> str | None:
        """Finds a queued or running job of this user by its job name (re-adoption after a crash)."""
        result = self.run(commands.qstat_user_argv(getpass.getuser()), check=False)
        if result.returncode != 0:
            if not result.stdout.strip() and not result.stderr.strip():
                return None
            raise SchedulerError(_describe(result))
        return parsers.find_job_by_name(result.stdout, job_name)



def _describe(result: CommandResult) -> str:
    detail = (result.stderr or result.stdout).strip()[:500]
    return f"{result.argv[0]} exited {result.returncode}: {detail}"


__all__ = ["CobaltScheduler"]
