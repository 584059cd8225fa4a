"""Pure parsers of PBS Professional output. They never assert: garbage raises :class:`SchedulerError`.

``qsub`` prints the job id with its server suffix (``1234.polaris-pbs-01``). ``qstat -f -F json`` prints
``{"timestamp":…, "pbs_version":…, "pbs_server":…, "Jobs": {id: {attribute: value}}}``; ids it does not
know are reported on stderr (``qstat: Unknown Job Id <id>``; without ``-x``, ``qstat: <id> Job has
finished, use -x or -H to obtain historical job information``) with a non-zero exit status, while the
known ones are still printed on stdout.
"""

from __future__ import annotations

import json
import re
from typing import Any

from balsam_agent.scheduler import SchedulerError, SchedulerJobStatus, SchedulerState
from balsam_pbs.states import FINAL_STATES, PBS_EXIT_REASONS, PBS_STATE_REASONS, translate_state

_JOB_ID = re.compile(r"^\d+(\[\d*\])?(\.[A-Za-z0-9_.\-]+)?$")
_UNKNOWN = re.compile(r"Unknown Job Id (\S+)")
_FINISHED = re.compile(r"(\S+) Job has finished")


def parse_qsub_output(stdout: str) -> str:
    """Returns the job id ``qsub`` printed, server suffix included."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines or not _JOB_ID.match(lines[-1]):
        raise SchedulerError(f"qsub printed no job id: {stdout.strip()[:200]!r}")
    return lines[-1]


def sequence_number(scheduler_id: str) -> str:
    """The part of a PBS id before the server name (``1234`` of ``1234.polaris-pbs-01.hsn…``)."""
    return scheduler_id.split(".", 1)[0]


def _job_status(job_id: str, job: Any) -> SchedulerJobStatus:
    if not isinstance(job, dict):
        raise SchedulerError(f"qstat JSON: job {job_id} is not an object")
    native = str(job.get("job_state", ""))
    comment = str(job.get("comment", ""))
    if native in FINAL_STATES:
        raw = job.get("Exit_status")
        if raw is None:
            return SchedulerJobStatus(job_id, SchedulerState.CANCELLED, None,
                                      comment or "deleted before it ran", native)
        try:
            code = int(raw)
        except (TypeError, ValueError) as exc:
            raise SchedulerError(f"qstat JSON: job {job_id} has Exit_status {raw!r}") from exc
        if code == 0:
            return SchedulerJobStatus(job_id, SchedulerState.COMPLETED, 0, "", native)
        if code < 0:
            reason = PBS_EXIT_REASONS.get(code, f"PBS could not run the job (exit status {code})")
        elif code > 256:
            reason = f"killed by signal {code - 256}"
        else:
            reason = f"exit code {code}"
        return SchedulerJobStatus(job_id, SchedulerState.FAILED, code, reason, native)
    reason = PBS_STATE_REASONS.get(native, "")
    if native == "H":
        holds = str(job.get("Hold_Types", ""))
        reason = {"u": "held by the user (qhold)", "o": "held by an operator",
                  "s": "held by the system"}.get(holds, f"held ({holds})" if holds else "held")
    if comment and native in ("Q", "H", "W"):
        reason = f"{reason}: {comment}" if reason else comment
    return SchedulerJobStatus(job_id, translate_state(native), None, reason, native)


def parse_qstat_json(text: str) -> dict[str, SchedulerJobStatus]:
    """Returns the status of every job in ``qstat -f -F json`` output (empty output: no jobs)."""
    if not text.strip():
        return {}
    try:
        # strict=False: PBS writes control characters of job variables unescaped.
        document = json.loads(text, strict=False)
    except ValueError as exc:
        raise SchedulerError(f"qstat printed invalid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SchedulerError("qstat JSON is not an object")
    jobs = document.get("Jobs", {})
    if not isinstance(jobs, dict):
        raise SchedulerError("qstat JSON: 'Jobs' is not an object")
    return {str(job_id): _job_status(str(job_id), job) for job_id, job in jobs.items()}


def unknown_ids(stderr: str) -> set[str]:
    """Ids ``qstat`` reported as unknown or finished (stderr), by sequence number."""
    found = {sequence_number(m) for m in _UNKNOWN.findall(stderr)}
    found |= {sequence_number(m) for m in _FINISHED.findall(stderr)}
    return found


def only_unknown_job_errors(stderr: str) -> bool:
    """Whether every stderr line is an unknown/finished-job message (so stdout is still complete)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return all(_UNKNOWN.search(line) or _FINISHED.search(line) for line in lines)


def parse_qselect_output(stdout: str) -> list[str]:
    """Job ids printed by ``qselect``, one per line."""
    ids = [line.strip() for line in stdout.splitlines() if line.strip()]
    for job_id in ids:
        if not _JOB_ID.match(job_id):
            raise SchedulerError(f"qselect printed {job_id!r}, not a job id")
    return ids
