"""Translation of PBS Professional job states into the agent's :class:`SchedulerState`.

Source: PBS Professional Reference Guide, "Job States" (``job_state`` attribute): B array job begun,
E exiting after having run, F finished (history, ``qstat -x``), H held, M moved to another server,
Q queued, R running, S suspended, T in transit, U suspended by workstation activity, W waiting for its
execution time or a stage-in, X subjob finished (expired). Finished jobs (F, X) are decided by their
``Exit_status`` in :mod:`.parsers`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

from balsam_agent.scheduler import SchedulerState

log = logging.getLogger(__name__)

#: PBS ``job_state`` → agent state for jobs still in the queue.
PBS_STATES: Mapping[str, SchedulerState] = MappingProxyType({
    "Q": SchedulerState.QUEUED,
    "W": SchedulerState.QUEUED,
    "T": SchedulerState.QUEUED,
    "M": SchedulerState.QUEUED,
    "H": SchedulerState.HELD,
    "S": SchedulerState.HELD,
    "U": SchedulerState.HELD,
    "R": SchedulerState.RUNNING,
    "E": SchedulerState.RUNNING,   # exiting: the outcome follows once it is F
    "B": SchedulerState.RUNNING,
})

#: States of ended jobs, decided by ``Exit_status``.
FINAL_STATES = frozenset({"F", "X"})

PBS_STATE_REASONS: Mapping[str, str] = MappingProxyType({
    "W": "waiting for its execution time", "T": "in transit", "M": "moved to another server",
    "H": "held", "S": "suspended", "U": "suspended (workstation activity)", "E": "exiting",
})

#: PBS ``Exit_status`` values below 0 (PBS Reference Guide, "Job Exit Status Codes").
PBS_EXIT_REASONS: Mapping[int, str] = MappingProxyType({
    -1: "job execution failed before files, no retry", -2: "job execution failed after files, no retry",
    -3: "job execution failed, will be retried", -4: "job aborted on MoM initialisation",
    -8: "could not create the job's files", -9: "could not create the job's files",
    -10: "standard output or error could not be staged", -11: "job aborted: node failure",
    -20: "job aborted by MoM", -24: "killed for exceeding its ncpus burst",
    -25: "killed for exceeding its ncpus sum", -26: "killed for exceeding its vmem",
    -27: "killed for exceeding its mem", -28: "killed for exceeding its cput",
    -29: "killed for exceeding its walltime",
})


def translate_state(native: str) -> SchedulerState:
    """Returns the agent state of a queued PBS job state; unknown codes give UNKNOWN with a warning."""
    state = PBS_STATES.get(native.strip())
    if state is None:
        log.warning("unknown PBS job state %r: reported as UNKNOWN", native)
        return SchedulerState.UNKNOWN
    return state
