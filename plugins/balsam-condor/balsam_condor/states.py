"""Translation of HTCondor's ``JobStatus`` codes into the agent's :class:`SchedulerState`.

Source: HTCondor Manual, "Job ClassAd Attributes", ``JobStatus``: "Integer which indicates the current
status of the job" — 1 Idle, 2 Running, 3 Removed, 4 Completed, 5 Held, 6 Transferring Output,
7 Suspended (``condor_q`` shows them as I, R, X, C, H, >, S). Code 0 ("Unexpanded", U) appears in
ads written by old versions. https://htcondor.readthedocs.io/en/latest/classad-attributes/job-classad-attributes.html
"""

from __future__ import annotations

import logging

from balsam_agent.scheduler import SchedulerState

log = logging.getLogger(__name__)

#: ``JobStatus`` code → the manual's name for it.
JOB_STATUS_NAMES: dict[int, str] = {
    0: "Unexpanded",
    1: "Idle",
    2: "Running",
    3: "Removed",
    4: "Completed",
    5: "Held",
    6: "Transferring Output",
    7: "Suspended",
}

#: ``JobStatus`` code → our state. Completed (4) is refined by the exit code (see ``parsers``);
#: Suspended (7) keeps its slot and resumes by itself, so it counts as running; Transferring Output
#: (6) means the program has ended but its sandbox is still coming back, so it is not final yet.
JOB_STATUS_STATES: dict[int, SchedulerState] = {
    0: SchedulerState.QUEUED,
    1: SchedulerState.QUEUED,
    2: SchedulerState.RUNNING,
    3: SchedulerState.CANCELLED,
    4: SchedulerState.COMPLETED,
    5: SchedulerState.HELD,
    6: SchedulerState.RUNNING,
    7: SchedulerState.RUNNING,
}

IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING_OUTPUT, SUSPENDED = 1, 2, 3, 4, 5, 6, 7


def translate(code: object) -> SchedulerState:
    """Maps a ``JobStatus`` value to our state; an unknown or malformed code becomes UNKNOWN (logged)."""
    if isinstance(code, int) and not isinstance(code, bool) and code in JOB_STATUS_STATES:
        return JOB_STATUS_STATES[code]
    log.warning("unknown HTCondor JobStatus %r: reported as unknown", code)
    return SchedulerState.UNKNOWN


def status_name(code: object) -> str:
    """The manual's name of a ``JobStatus`` code (the code itself when unknown)."""
    if isinstance(code, int) and not isinstance(code, bool):
        return JOB_STATUS_NAMES.get(code, str(code))
    return str(code)
