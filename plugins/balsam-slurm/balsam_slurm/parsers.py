"""Pure parsers of Slurm command output. They never assert: garbage raises :class:`SchedulerError`.

Formats: ``sbatch --parsable`` prints ``jobid[;cluster]`` (sbatch(1)); our ``squeue`` format prints
``id|STATE|reason`` per line (:data:`balsam_slurm.commands.SQUEUE_FORMAT`); ``sacct --parsable2
--noheader`` prints the fields of :data:`balsam_slurm.commands.SACCT_FIELDS` separated by ``|`` with no
trailing separator (sacct(1) "-p"/"-P").
"""

from __future__ import annotations

import re

from balsam_agent.scheduler import SchedulerError, SchedulerJobStatus, SchedulerState
from balsam_slurm.commands import FIELD_SEP, SACCT_FIELDS
from balsam_slurm.states import describe, normalize_state, parse_exit_code, translate_state

#: A Slurm job id: digits, optionally an array task (``123_4``) or a heterogeneous component (``123+1``).
JOB_ID = re.compile(r"[0-9]+(?:_[0-9]+|\+[0-9]+)?\Z")


def is_job_id(text: str) -> bool:
    """Whether ``text`` is a Slurm job id (so it is safe to put on a command line)."""
    return bool(JOB_ID.match(text))


def parse_submit(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``1234`` or ``1234;cluster``)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise SchedulerError("sbatch printed no job id")
    job_id = lines[-1].split(";", 1)[0].strip()
    if not is_job_id(job_id):
        raise SchedulerError(f"sbatch printed {lines[-1][:200]!r}, not a job id")
    return job_id


def _job_status(job_id: str, code: str, reason: str, exit_field: str = "") -> SchedulerJobStatus:
    state = translate_state(code, reason)
    exit_code, sig = parse_exit_code(exit_field)
    if sig:
        # a signalled program has no exit code of its own: report it as a shell would (128 + signal)
        exit_code = 128 + sig
    elif exit_code is None and state is SchedulerState.COMPLETED:
        exit_code = 0  # COMPLETED means every process exited 0 (squeue(1) "JOB STATE CODES")
    return SchedulerJobStatus(
        scheduler_id=job_id, state=state, exit_code=exit_code if state.is_final else None,
        reason=describe(code, reason, exit_code, sig), native_state=normalize_state(code),
        timed_out=normalize_state(code) == "TIMEOUT",
    )


def parse_squeue(stdout: str) -> dict[str, SchedulerJobStatus]:
    """Statuses from our ``squeue --noheader --format=%i|%T|%r`` output, keyed by job id."""
    statuses: dict[str, SchedulerJobStatus] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        fields = line.strip().split(FIELD_SEP, 2)
        if len(fields) != 3 or not is_job_id(fields[0].strip()) or not fields[1].strip():
            raise SchedulerError(f"squeue printed an unexpected line: {line[:200]!r}")
        job_id, code, reason = (field.strip() for field in fields)
        statuses[job_id] = _job_status(job_id, code, reason)
    return statuses


def parse_sacct(stdout: str) -> dict[str, SchedulerJobStatus]:
    """Statuses from ``sacct -X -P -n --format=JobID,JobName,State,ExitCode,Reason``, keyed by job id.

    A requeued job has one row per run; the last row (the latest run) wins.
    """
    statuses: dict[str, SchedulerJobStatus] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        row = sacct_row(line)
        statuses[row["JobID"]] = _job_status(row["JobID"], row["State"], row["Reason"], row["ExitCode"])
    return statuses


def sacct_row(line: str) -> dict[str, str]:
    """One ``sacct -P`` line as a mapping of :data:`SACCT_FIELDS`; the job name may contain ``|``."""
    fields = line.rstrip("\n").split(FIELD_SEP)
    extra = len(fields) - len(SACCT_FIELDS)
    if extra < 0:
        raise SchedulerError(f"sacct printed an unexpected line: {line[:200]!r}")
    # JobName is the only free-text field: glue back any separators it contained
    name = FIELD_SEP.join(fields[1:2 + extra])
    values = [fields[0], name, *fields[2 + extra:]]
    row = dict(zip(SACCT_FIELDS, (value.strip() for value in values), strict=True))
    if not is_job_id(row["JobID"]) or not row["State"]:
        raise SchedulerError(f"sacct printed an unexpected line: {line[:200]!r}")
    return row


def parse_job_ids(stdout: str) -> list[str]:
    """Job ids, one per line (``squeue --format=%i``), in the order printed."""
    ids = []
    for line in stdout.splitlines():
        text = line.strip()
        if not text:
            continue
        if not is_job_id(text):
            raise SchedulerError(f"squeue printed {text[:200]!r}, not a job id")
        ids.append(text)
    return ids


def latest_job_by_name(stdout: str, job_name: str) -> str | None:
    """The most recent job id named ``job_name`` in ``sacct -P`` output, or None."""
    found = [row["JobID"] for row in map(sacct_row, filter(str.strip, stdout.splitlines()))
             if row["JobName"] == job_name]
    return max(found, key=job_id_order) if found else None


def job_id_order(job_id: str) -> tuple[int, ...]:
    """Sort key of job ids: numeric, so job 10 comes after job 9."""
    return tuple(int(part) for part in re.split(r"[_+]", job_id))
