"""The scheduler backend API: what a scheduler plugin implements.

The agent owns the polling loop. Once per poll cycle it calls :meth:`SchedulerBackend.poll` with the
ids of *all* its active scheduler jobs; a backend answers with one status command (plus an accounting
command only for jobs that vanished from the queue listing). Command-line schedulers subclass
:class:`BatchScheduler` and supply small pure functions (argv builders and output parsers) that are
tested on real output captured from the scheduler's documentation.
"""

from __future__ import annotations

import enum
import logging
import os
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from balsam_agent import metrics
from balsam_agent.records import SiteProfile

log = logging.getLogger(__name__)

T = TypeVar("T")


class SchedulerState(enum.Enum):
    """State of a scheduler job, in the agent's words (every backend translates into these)."""

    #: Waiting in the scheduler's queue.
    QUEUED = "queued"
    #: Held in the queue (by a user, an admin or the system); the reason says why.
    HELD = "held"
    #: Running.
    RUNNING = "running"
    #: Ended with exit code 0.
    COMPLETED = "completed"
    #: Ended with a non-zero exit code, a signal, a node failure or a walltime overrun.
    FAILED = "failed"
    #: Removed by ``cancel`` (or an admin).
    CANCELLED = "cancelled"
    #: A code the backend does not know; the agent keeps polling and logs a warning.
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Whether the scheduler job has ended."""
        return self in (SchedulerState.COMPLETED, SchedulerState.FAILED, SchedulerState.CANCELLED)


@dataclass(frozen=True)
class SchedulerJobStatus:
    """One scheduler job's status as parsed from the scheduler's output."""

    scheduler_id: str
    state: SchedulerState
    #: Exit code of the program once ended, when the scheduler reports it.
    exit_code: int | None = None
    #: Readable reason (failure reason, hold reason, the scheduler's message).
    reason: str = ""
    #: The scheduler's own state code, kept for messages and debugging.
    native_state: str = ""
    #: True when the job was killed for exceeding its walltime (the agent calls
    #: ``balsam_step_timeout`` and reports "walltime of N min exceeded").
    timed_out: bool = False


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a backend needs to submit one step attempt, already checked by the agent.

    ``argv`` is the program and its arguments as a list (the executable resolved inside the site's
    allowed directory); backends must pass it as argv and never join it into a shell string (a
    generated batch script quotes every word with :func:`shlex.quote`).
    """

    #: Scheduler job name, unique per step attempt (``argo-<job>-<step>-a<attempt>``): used to
    #: re-adopt a job submitted just before an agent crash.
    job_name: str
    argv: tuple[str, ...]
    #: The step's working directory (exists, holds the staged inputs).
    workdir: Path
    nodes: int
    processes_per_node: int
    wall_minutes: int
    scheduler_args: tuple[str, ...] = ()
    #: Extra environment for the program (ARGO_JOB_ID, ARGO_STEP, ARGO_NUM_EVTS, ...).
    env: Mapping[str, str] = field(default_factory=dict)
    #: Where the program's stdout and stderr go (inside ``workdir``).
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    #: HTCondor only: the user's submit description / DAGMan file (inside ``workdir``).
    condor_job_file: str = ""
    condor_dagman_file: str = ""

    @property
    def ranks(self) -> int:
        """Total MPI ranks: nodes × processes per node."""
        return max(1, self.nodes) * max(1, self.processes_per_node)


class SchedulerError(Exception):
    """A scheduler command failed; ``transient`` errors are retried with backoff by the agent."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class SchedulerBackend(ABC):
    """Base class of every scheduler backend. One instance per agent, shared by all steps.

    Methods are called from the agent's worker threads; implementations must be thread-safe.
    """

    #: Name the backend registers under.
    name: str = ""

    #: Set by the agent: a backend that learns of a state change between polls (a local process
    #: ended) may call it so the agent polls at once instead of waiting for the next cycle. Optional.
    #: ``state_changed()`` asks for a poll of every active job; ``state_changed(ids)`` names the jobs
    #: that changed, and the agent polls just those (cheap when thousands are active).
    state_changed: Callable[..., None] | None = None

    def __init__(self, site: SiteProfile) -> None:
        self.site = site

    @abstractmethod
    def submit(self, spec: LaunchSpec) -> str:
        """Submits one step attempt and returns the scheduler's job id (a string)."""

    @abstractmethod
    def poll(self, scheduler_ids: Sequence[str]) -> dict[str, SchedulerJobStatus]:
        """Returns the status of every given job with one status command.

        A job missing from the queue listing is confirmed through accounting before it is reported
        ended; a job that is nowhere is left out of the result (the agent retries and, after a while,
        fails the step with a clear reason).
        """

    @abstractmethod
    def cancel(self, scheduler_id: str) -> None:
        """Removes a queued or running job."""

    def hold(self, scheduler_id: str) -> None:
        """Holds a queued job. Backends that cannot hold raise :class:`SchedulerError`."""
        raise SchedulerError(f"scheduler {self.name!r} cannot hold jobs", transient=False)

    def release(self, scheduler_id: str) -> None:
        """Releases a held job."""
        raise SchedulerError(f"scheduler {self.name!r} cannot release jobs", transient=False)

    def find_by_name(self, job_name: str) -> str | None:
        """Returns the id of a job with this name still known to the scheduler, or None.

        Used after an agent crash that happened between the submit command and recording its id.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional for backends
        """Releases resources at agent shutdown."""


@dataclass(frozen=True)
class CommandResult:
    """Output of one scheduler command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class BatchScheduler(SchedulerBackend):
    """Base for command-line schedulers (Cobalt, Slurm, PBS, HTCondor): runs commands, retries.

    Subclasses implement the pure pieces (``*_argv`` builders and ``parse_*`` functions) and
    :meth:`SchedulerBackend.submit` / :meth:`SchedulerBackend.poll` from them. :meth:`run` executes one
    argv with a timeout, retrying transient failures (non-zero exit, timeout) with exponential backoff.
    """

    #: Seconds a scheduler command may take.
    command_timeout: float = 60.0
    #: Attempts for one command before the error is raised to the agent.
    command_attempts: int = 3
    #: First backoff in seconds; doubled after each failure.
    command_backoff: float = 0.5

    def retry(self, action: Callable[[], T]) -> T:
        """Runs ``action`` (e.g. a command and the parsing of its output) up to ``command_attempts`` times,
        with doubling backoff, while it raises a transient :class:`SchedulerError`."""
        delay = self.command_backoff
        attempt = 1
        while True:
            try:
                return action()
            except SchedulerError as exc:
                if not exc.transient or attempt >= self.command_attempts:
                    raise
                log.warning("%s: scheduler action failed (attempt %d/%d): %s", self.name, attempt,
                            self.command_attempts, exc)
            time.sleep(delay)
            delay *= 2
            attempt += 1

    @metrics.timed_command
    def run(self, argv: Sequence[str], *, input: str | None = None, cwd: Path | None = None,
            check: bool = True, attempts: int | None = None) -> CommandResult:
        """Runs a scheduler command (argv, never a shell) with timeout and retries."""
        tries = attempts or self.command_attempts
        delay = self.command_backoff
        last = ""
        for attempt in range(1, tries + 1):
            try:
                proc = subprocess.run(
                    list(argv), input=input, cwd=cwd, capture_output=True, text=True,
                    timeout=self.command_timeout, env=os.environ.copy(),
                )
            except FileNotFoundError as exc:
                raise SchedulerError(f"{argv[0]}: command not found", transient=False) from exc
            except subprocess.TimeoutExpired:
                last = f"{argv[0]} timed out after {self.command_timeout:.0f}s"
            else:
                result = CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
                if proc.returncode == 0 or not check:
                    return result
                last = f"{argv[0]} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[:500]}"
            log.warning("scheduler command failed (attempt %d/%d): %s", attempt, tries, last)
            if attempt < tries:
                metrics.command_retried(self.site.name, argv)
                time.sleep(delay)
                delay *= 2
        raise SchedulerError(last)
