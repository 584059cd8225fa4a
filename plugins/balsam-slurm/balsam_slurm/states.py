"""Translation from Slurm's job state and reason codes to the agent's :class:`SchedulerState`.

Sources: the "JOB STATE CODES" and "JOB REASON CODES" sections of ``squeue(1)`` and the "JOB STATE
CODES" section of ``sacct(1)`` (https://slurm.schedmd.com/squeue.html, https://slurm.schedmd.com/sacct.html,
Slurm 22.05). ``squeue -o %T`` and ``sacct -o State`` print the long names; ``squeue -o %t`` prints the
compact codes, accepted here too. ``sacct`` appends the canceller (``CANCELLED by 1000``): only the first
word is the state.
"""

from __future__ import annotations

import logging
import signal

from balsam_agent.scheduler import SchedulerState

log = logging.getLogger(__name__)

#: Long Slurm state name → agent state (squeue(1)/sacct(1) "JOB STATE CODES").
SLURM_STATES: dict[str, SchedulerState] = {
    # "Job is awaiting resource allocation." A hold shows as PENDING with a JobHeld* reason (below).
    "PENDING": SchedulerState.QUEUED,
    # "Job has been allocated resources, but are waiting for them to become ready for use (e.g. booting)."
    "CONFIGURING": SchedulerState.QUEUED,
    # "Job is being requeued by a federation." / "Job was requeued."
    "REQUEUE_FED": SchedulerState.QUEUED,
    "REQUEUED": SchedulerState.QUEUED,
    # "Held job is being requeued." / "Job is being held after requested reservation was deleted."
    "REQUEUE_HOLD": SchedulerState.HELD,
    "RESV_DEL_HOLD": SchedulerState.HELD,
    # "The job requeued in a special state. This state can be set by users, typically in EpilogSlurmctld,
    # if the job has terminated with a particular exit value." The job waits held until released.
    "SPECIAL_EXIT": SchedulerState.HELD,
    # "Job has an allocation, but execution has been suspended and CPUs have been released for other jobs."
    "SUSPENDED": SchedulerState.HELD,
    # "Job has an allocation, but execution has been stopped with SIGSTOP signal."
    "STOPPED": SchedulerState.HELD,
    # "Job currently has an allocation."
    "RUNNING": SchedulerState.RUNNING,
    # "Job is in the process of completing. Some processes on some nodes may still be active." Not final
    # until every process is gone; the exit code comes from accounting afterwards.
    "COMPLETING": SchedulerState.RUNNING,
    # "Job is about to change size." / "Job is being signaled." / "Job is staging out files."
    "RESIZING": SchedulerState.RUNNING,
    "SIGNALING": SchedulerState.RUNNING,
    "STAGE_OUT": SchedulerState.RUNNING,
    # "Job has terminated all processes on all nodes with an exit code of zero."
    "COMPLETED": SchedulerState.COMPLETED,
    # "Job terminated with non-zero exit code or other failure condition."
    "FAILED": SchedulerState.FAILED,
    # "Job terminated upon reaching its time limit."
    "TIMEOUT": SchedulerState.FAILED,
    # "Job terminated due to failure of one or more allocated nodes."
    "NODE_FAIL": SchedulerState.FAILED,
    # "Job terminated due to launch failure, typically due to a hardware failure."
    "BOOT_FAIL": SchedulerState.FAILED,
    # "Job terminated on deadline."
    "DEADLINE": SchedulerState.FAILED,
    # "Job experienced out of memory error."
    "OUT_OF_MEMORY": SchedulerState.FAILED,
    # "Job terminated due to preemption." (a requeued job shows REQUEUED/PENDING instead)
    "PREEMPTED": SchedulerState.FAILED,
    # "Job was explicitly cancelled by the user or system administrator."
    "CANCELLED": SchedulerState.CANCELLED,
    # "Sibling was removed from cluster due to other cluster starting the job." (federations): this copy
    # will never run.
    "REVOKED": SchedulerState.CANCELLED,
}

#: Compact codes of ``squeue -o %t`` → long names (squeue(1) "JOB STATE CODES").
SLURM_SHORT_CODES: dict[str, str] = {
    "BF": "BOOT_FAIL", "CA": "CANCELLED", "CD": "COMPLETED", "CF": "CONFIGURING", "CG": "COMPLETING",
    "DL": "DEADLINE", "F": "FAILED", "NF": "NODE_FAIL", "OOM": "OUT_OF_MEMORY", "PD": "PENDING",
    "PR": "PREEMPTED", "R": "RUNNING", "RD": "RESV_DEL_HOLD", "RF": "REQUEUE_FED", "RH": "REQUEUE_HOLD",
    "RQ": "REQUEUED", "RS": "RESIZING", "RV": "REVOKED", "SI": "SIGNALING", "SE": "SPECIAL_EXIT",
    "SO": "STAGE_OUT", "ST": "STOPPED", "S": "SUSPENDED", "TO": "TIMEOUT",
}

#: Pending reasons that mean the job is held (squeue(1) "JOB REASON CODES"): shown as HELD.
HOLD_REASONS: dict[str, str] = {
    "JobHeldUser": "held by the user",
    "JobHeldAdmin": "held by an administrator",
}

#: Readable text for the final states that are failures (what the user sees on the step).
FAILURE_REASONS: dict[str, str] = {
    "TIMEOUT": "walltime exceeded",
    "NODE_FAIL": "node failure",
    "BOOT_FAIL": "node boot failure",
    "DEADLINE": "deadline reached before the job could finish",
    "OUT_OF_MEMORY": "out of memory",
    "PREEMPTED": "preempted",
}

#: Readable text for common pending reasons (squeue(1) "JOB REASON CODES"); others are shown verbatim.
PENDING_REASONS: dict[str, str] = {
    "BeginTime": "waiting for its begin time",
    "Priority": "waiting for higher-priority jobs",
    "Resources": "waiting for resources",
    "Dependency": "waiting for a dependency",
    "DependencyNeverSatisfied": "dependency can never be satisfied",
    "PartitionDown": "partition is down",
    "PartitionTimeLimit": "walltime exceeds the partition's limit",
    "ReqNodeNotAvail": "requested nodes are not available",
    "QOSMaxJobsPerUserLimit": "QOS limit on jobs per user reached",
}


def normalize_state(code: str) -> str:
    """Returns the long state name of a squeue/sacct state field (``CANCELLED by 0`` → ``CANCELLED``)."""
    words = code.split()
    first = words[0].rstrip("+").upper() if words else ""
    return SLURM_SHORT_CODES.get(first, first)


def translate_state(code: str, reason: str = "") -> SchedulerState:
    """Maps a Slurm state (and, for pending jobs, its reason) to the agent's state.

    Unknown codes become ``UNKNOWN`` with a logged warning: the agent keeps polling.
    """
    name = normalize_state(code)
    state = SLURM_STATES.get(name)
    if state is None:
        log.warning("unknown Slurm job state %r: reported as UNKNOWN", code)
        return SchedulerState.UNKNOWN
    if state is SchedulerState.QUEUED and reason in HOLD_REASONS:
        return SchedulerState.HELD
    return state


def parse_exit_code(field: str) -> tuple[int | None, int | None]:
    """Splits sacct's ``ExitCode`` (``exit:signal``) into (exit code, signal); unparsable → (None, None)."""
    head, sep, tail = field.strip().partition(":")
    if not sep or not head.isdigit() or not tail.isdigit():
        return None, None
    return int(head), int(tail)


def signal_name(number: int) -> str:
    """``15`` → ``SIGTERM`` (or ``signal 99`` for a number this system does not name)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe(code: str, reason: str, exit_code: int | None, sig: int | None) -> str:
    """The reason shown to the user for a job in this state."""
    name = normalize_state(code)
    words = code.split()
    if name == "CANCELLED":
        # sacct prints "CANCELLED by <uid>"
        return f"cancelled by uid {words[2]}" if len(words) >= 3 and words[1] == "by" else "cancelled"
    if name in FAILURE_REASONS:
        return FAILURE_REASONS[name]
    if name == "FAILED":
        if sig:
            return f"killed by {signal_name(sig)}"
        if exit_code:
            return f"exited with code {exit_code}"
        return reason if reason and reason != "None" else "failed"
    if reason in HOLD_REASONS:
        return HOLD_REASONS[reason]
    if reason in PENDING_REASONS:
        return PENDING_REASONS[reason]
    if name in ("SUSPENDED", "STOPPED"):
        return name.lower()
    return "" if reason in ("", "None") else reason
