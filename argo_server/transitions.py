"""The one transition table of job and step states.

Every code path that changes a state asks :func:`job_transition_allowed` or
:func:`step_transition_allowed` (or the raising :func:`check_job_transition`). The tables below are the
authority; the state-machine comment at the top of ``proto/argobalsam/argo/v1/job.proto`` describes them.
"""

from __future__ import annotations

from argobalsam.argo.v1 import job_pb2

# The module's own constants (JOB_STATE_*, STEP_STATE_*): a module attribute is a dict lookup, while the
# enum wrappers (job_pb2.JobState.X) answer through __getattr__ at ~1 us a time on hot paths.
J = job_pb2
S = job_pb2

JOB_TERMINAL = frozenset({J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED,
                          J.JOB_STATE_REJECTED})

#: Allowed job transitions: from-state -> the states it may go to.
JOB_TRANSITIONS: dict[int, frozenset[int]] = {
    J.JOB_STATE_PENDING: frozenset({J.JOB_STATE_RUNNING, J.JOB_STATE_REJECTED, J.JOB_STATE_FAILED,
                                    J.JOB_STATE_HELD, J.JOB_STATE_CANCELLED}),
    J.JOB_STATE_RUNNING: frozenset({J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED, J.JOB_STATE_REJECTED,
                                    J.JOB_STATE_HELD, J.JOB_STATE_CANCELLED}),
    J.JOB_STATE_HELD: frozenset({J.JOB_STATE_PENDING, J.JOB_STATE_RUNNING, J.JOB_STATE_CANCELLED}),
    J.JOB_STATE_SUCCEEDED: frozenset(),
    J.JOB_STATE_FAILED: frozenset({J.JOB_STATE_PENDING}),
    J.JOB_STATE_CANCELLED: frozenset({J.JOB_STATE_PENDING}),
    J.JOB_STATE_REJECTED: frozenset({J.JOB_STATE_PENDING}),
}

#: The forward order of a step's life; the agent may skip forward along it.
STEP_FORWARD: tuple[int, ...] = (
    S.STEP_STATE_DISPATCHED, S.STEP_STATE_ACCEPTED, S.STEP_STATE_STAGING_IN, S.STEP_STATE_PREPROCESSING,
    S.STEP_STATE_SUBMITTED, S.STEP_STATE_QUEUED, S.STEP_STATE_RUNNING, S.STEP_STATE_POSTPROCESSING,
    S.STEP_STATE_STAGING_OUT, S.STEP_STATE_SUCCEEDED,
)
#: States in which a step is at (or on its way to) its site.
STEP_ACTIVE = frozenset(STEP_FORWARD[:-1])
STEP_TERMINAL = frozenset({S.STEP_STATE_SUCCEEDED, S.STEP_STATE_FAILED, S.STEP_STATE_CANCELLED,
                           S.STEP_STATE_REJECTED})


def _step_table() -> dict[int, frozenset[int]]:
    table: dict[int, set[int]] = {
        S.STEP_STATE_WAITING: {S.STEP_STATE_DISPATCHED, S.STEP_STATE_HELD, S.STEP_STATE_CANCELLED},
        # Released: back to waiting, or to the state it was held in (any active state).
        S.STEP_STATE_HELD: {S.STEP_STATE_WAITING, S.STEP_STATE_CANCELLED, *STEP_ACTIVE},
        S.STEP_STATE_SUCCEEDED: set(),
        # Retry: a new attempt starts waiting.
        S.STEP_STATE_FAILED: {S.STEP_STATE_WAITING},
        S.STEP_STATE_CANCELLED: {S.STEP_STATE_WAITING},
        S.STEP_STATE_REJECTED: {S.STEP_STATE_WAITING},
    }
    for position, state in enumerate(STEP_FORWARD[:-1]):
        allowed = set(STEP_FORWARD[position + 1:])
        allowed |= {S.STEP_STATE_FAILED, S.STEP_STATE_HELD, S.STEP_STATE_CANCELLED}
        if state in (S.STEP_STATE_DISPATCHED, S.STEP_STATE_ACCEPTED):
            allowed.add(S.STEP_STATE_REJECTED)
        if state == S.STEP_STATE_RUNNING:
            allowed.add(S.STEP_STATE_QUEUED)  # the scheduler requeued the job
        table[state] = allowed
    return {state: frozenset(targets) for state, targets in table.items()}


#: Allowed step transitions: from-state -> the states it may go to.
STEP_TRANSITIONS: dict[int, frozenset[int]] = _step_table()


def job_transition_allowed(current: int, target: int) -> bool:
    """Whether a job may go from ``current`` to ``target``."""
    return target in JOB_TRANSITIONS.get(current, frozenset())


def step_transition_allowed(current: int, target: int) -> bool:
    """Whether a step may go from ``current`` to ``target``."""
    return target in STEP_TRANSITIONS.get(current, frozenset())


class TransitionRefused(Exception):
    """A state change the table does not allow (gRPC FAILED_PRECONDITION for verbs)."""

    def __init__(self, kind: str, current: int, target: int, detail: str = "") -> None:
        enum = job_pb2.JobState if kind == "job" else job_pb2.StepState
        self.kind = kind
        self.current = current
        self.target = target
        message = f"{kind} cannot go from {enum.Name(current)} to {enum.Name(target)}"  # type: ignore[arg-type]
        super().__init__(f"{message}: {detail}" if detail else message)


def check_job_transition(current: int, target: int, detail: str = "") -> None:
    """Raises :class:`TransitionRefused` unless a job may go from ``current`` to ``target``."""
    if not job_transition_allowed(current, target):
        raise TransitionRefused("job", current, target, detail)


def check_step_transition(current: int, target: int, detail: str = "") -> None:
    """Raises :class:`TransitionRefused` unless a step may go from ``current`` to ``target``."""
    if not step_transition_allowed(current, target):
        raise TransitionRefused("step", current, target, detail)
