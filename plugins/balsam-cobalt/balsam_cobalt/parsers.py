"""Pure parsers of Cobalt's command output. They never assert: garbage raises :class:`SchedulerError`.

Formats (Cobalt sources ``src/clients/POSIX/qstat.py``, ``src/lib/client_utils.py``, ``Cobalt/Util.py``;
``qsub(1)``): ``qsub`` prints only the job id on stdout. ``qstat`` prints a table: a header row, a row of
``=``, then one row per job, each column left-justified to its widest value and followed by two spaces
(so columns start where their header word starts, and values may hold spaces). ``qhold``/``qrls`` always
exit 0 and say on stdout which jobs they could not change. Cobalt writes the job's life to its
``.cobaltlog``: ``task completed normally with an exit code of N``, ``user delete requested with signal
SIG…``, ``maximum execution time exceeded; initiating job terminiation`` (sic).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from balsam_agent.scheduler import SchedulerError, SchedulerJobStatus, SchedulerState
from balsam_cobalt.states import COBALT_STATE_REASONS, translate_state

_JOB_ID = re.compile(r"^\d+$")
_RULE = re.compile(r"^=+\s*$")
_EXIT_LINE = re.compile(r"task completed normally with an exit code of (-?\d+|None)")
_DELETE_LINE = re.compile(r"user delete requested with signal (\S+)(?: by user (\S+))?")
_WALLTIME_LINE = re.compile(r"maximum execution time exceeded")


def parse_qsub_output(stdout: str) -> str:
    """Returns the job id ``qsub`` printed (an integer, kept as a string)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines or not _JOB_ID.match(lines[-1]):
        raise SchedulerError(f"qsub printed no job id: {stdout.strip()[:200]!r}")
    return lines[-1]


@dataclass(frozen=True)
class QstatRow:
    """One job row of ``qstat``: column name → value."""

    fields: dict[str, str]

    def get(self, name: str) -> str:
        """Returns a column's value ('' when the column is absent)."""
        return self.fields.get(name, "")


def parse_qstat_table(text: str) -> list[QstatRow]:
    """Parses ``qstat``'s table into rows keyed by header names. Empty output gives no rows."""
    lines = text.splitlines()
    meaningful = [i for i, line in enumerate(lines) if line.strip()]
    if not meaningful:
        return []
    header_index = meaningful[0]
    rule_index = header_index + 1
    if rule_index >= len(lines) or not _RULE.match(lines[rule_index]):
        raise SchedulerError(f"unrecognised qstat output (no header rule): {text.strip()[:200]!r}")
    header = lines[header_index]
    columns = [(m.group(0), m.start()) for m in re.finditer(r"\S+", header)]
    rows: list[QstatRow] = []
    for line in lines[rule_index + 1:]:
        if not line.strip():
            continue
        fields: dict[str, str] = {}
        for position, (name, start) in enumerate(columns):
            end = columns[position + 1][1] if position + 1 < len(columns) else None
            fields[name] = line[start:end].strip()
        rows.append(QstatRow(fields))
    return rows


def parse_qstat_status(text: str) -> dict[str, SchedulerJobStatus]:
    """Returns the status of every job row of a ``qstat --header JobID:…:State…`` table."""
    statuses: dict[str, SchedulerJobStatus] = {}
    for row in parse_qstat_table(text):
        job_id = row.get("JobID")
        native = row.get("State")
        if not _JOB_ID.match(job_id):
            raise SchedulerError(f"qstat row without a job id: {row.fields!r}")
        statuses[job_id] = SchedulerJobStatus(
            scheduler_id=job_id, state=translate_state(native),
            reason=COBALT_STATE_REASONS.get(native.lower(), ""), native_state=native,
        )
    return statuses


def find_job_by_name(text: str, job_name: str) -> str | None:
    """Returns the id of the job called ``job_name`` in a ``qstat`` table with a JobName column."""
    for row in parse_qstat_table(text):
        if row.get("JobName") == job_name and _JOB_ID.match(row.get("JobID")):
            return row.get("JobID")
    return None


def parse_cobaltlog(text: str, scheduler_id: str) -> SchedulerJobStatus | None:
    """Returns the final status a ``.cobaltlog`` records, or None while it records no end.

    A user delete wins over the exit line that follows it (the task then ends by the signal); a walltime
    overrun is a failure whatever exit code the killed task left.
    """
    deleted = _DELETE_LINE.search(text)
    overrun = _WALLTIME_LINE.search(text)
    exits = _EXIT_LINE.findall(text)
    exit_code: int | None = None
    if exits and exits[-1] != "None":
        exit_code = int(exits[-1])
    if deleted:
        who = f" by user {deleted.group(2)}" if deleted.group(2) else ""
        return SchedulerJobStatus(scheduler_id, SchedulerState.CANCELLED, exit_code,
                                  f"deleted{who} (qdel, {deleted.group(1)})", "deleted")
    if overrun:
        return SchedulerJobStatus(scheduler_id, SchedulerState.FAILED, exit_code,
                                  "walltime exceeded: Cobalt killed the job", "walltime")
    if not exits:
        return None
    if exit_code == 0:
        return SchedulerJobStatus(scheduler_id, SchedulerState.COMPLETED, 0, "", "exited")
    reason = "the task ended without an exit code (killed)" if exit_code is None else f"exit code {exit_code}"
    return SchedulerJobStatus(scheduler_id, SchedulerState.FAILED, exit_code, reason, "exited")


def check_hold_output(stdout: str, stderr: str, scheduler_id: str, verb: str) -> None:
    """Raises when ``qhold``/``qrls`` (which exit 0 either way) did not change the job.

    :param verb: ``hold`` or ``release``, for the message.
    """
    text = f"{stdout}\n{stderr}"
    if "Failed to match any jobs" in text or "No jobs found" in text:
        raise SchedulerError(f"cannot {verb} Cobalt job {scheduler_id}: job not found", transient=False)
    match = re.search(rf"^\s*job {re.escape(scheduler_id)} (.+)$", text, re.MULTILINE)
    if match:
        raise SchedulerError(f"cannot {verb} Cobalt job {scheduler_id}: job {match.group(1).strip()}",
                             transient=False)


def qdel_found_nothing(stdout: str) -> bool:
    """Whether ``qdel`` (which exits 0 either way) reported that it found no such job."""
    return bool(re.search(r"qdel: Job \S+ not found", stdout))
