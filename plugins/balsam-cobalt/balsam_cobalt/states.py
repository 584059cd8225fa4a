"""Translation of Cobalt job states into the agent's :class:`SchedulerState`.

Source: Cobalt's queue manager (``cqm``, ``src/lib/Components/cqm.py`` of the Cobalt sources) and the
ALCF "Cobalt Job Control" user guide. ``qstat`` shows a job's user-visible ``State``: ``queued`` while it
waits, ``user_hold``/``admin_hold``/``dep_hold``/``maxrun_hold`` (``hold`` in older releases) while
held, ``dep_fail`` when a job it depends on failed (it stays queued until deleted), ``starting`` while
prologue scripts run and the block boots, ``running``, ``killing`` after ``qdel`` or a walltime overrun,
``exiting`` while epilogue scripts run, ``preempted``. A job that ended is *removed* from the queue: Cobalt
has no accounting command, so its outcome comes from the job's ``.cobaltlog`` (see :mod:`.parsers`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

from balsam_agent.scheduler import SchedulerState

log = logging.getLogger(__name__)

#: Cobalt ``State`` column → agent state. Final outcomes never appear here (ended jobs vanish).
COBALT_STATES: Mapping[str, SchedulerState] = MappingProxyType({
    "queued": SchedulerState.QUEUED,
    "preempted": SchedulerState.QUEUED,     # back in the queue, will run again
    "starting": SchedulerState.QUEUED,      # prologue and block boot: the program has not started yet
    "running": SchedulerState.RUNNING,
    "killing": SchedulerState.RUNNING,      # still ending; the outcome is read once it leaves the queue
    "exiting": SchedulerState.RUNNING,      # program ended, epilogue running; outcome follows
    "hold": SchedulerState.HELD,
    "user_hold": SchedulerState.HELD,
    "admin_hold": SchedulerState.HELD,
    "dep_hold": SchedulerState.HELD,
    "maxrun_hold": SchedulerState.HELD,
    "dep_fail": SchedulerState.HELD,        # never runs until deleted: shown as held with the reason
})

#: Readable reasons for the states that need one.
COBALT_STATE_REASONS: Mapping[str, str] = MappingProxyType({
    "hold": "held",
    "user_hold": "held by the user (qhold)",
    "admin_hold": "held by an administrator",
    "dep_hold": "waiting for the jobs it depends on",
    "maxrun_hold": "held: the queue's limit of running jobs per user is reached",
    "dep_fail": "a job it depends on failed; it will not run",
    "starting": "booting its block",
    "killing": "being killed",
    "exiting": "exiting",
    "preempted": "preempted; waiting to run again",
})


def translate_state(native: str) -> SchedulerState:
    """Returns the agent state for a Cobalt ``State`` value; unknown values give UNKNOWN with a warning."""
    state = COBALT_STATES.get(native.strip().lower())
    if state is None:
        log.warning("unknown Cobalt job state %r: reported as UNKNOWN", native)
        return SchedulerState.UNKNOWN
    return state
