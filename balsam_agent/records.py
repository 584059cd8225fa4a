"""Typed records that registration hooks return, and the site profile."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from balsam_agent.scheduler import SchedulerBackend
    from balsam_agent.transfer import TransferBackend


@dataclass(frozen=True)
class SchedulerRecord:
    """A scheduler backend offered by a plugin (``balsam_schedulers``)."""

    #: Name sites refer to (``local``, ``slurm``, ``cobalt``, ``condor``, ``pbs``).
    name: str
    #: The backend class; instantiated once per agent with the site profile.
    backend: type[SchedulerBackend]


@dataclass(frozen=True)
class TransferRecord:
    """A transfer backend offered by a plugin for one URL scheme (``balsam_transfers``)."""

    #: URL scheme without ``://`` (``file``, ``gsiftp``, ``ftp``, ``globus``).
    scheme: str
    #: The backend class; instantiated once per agent with the site profile.
    backend: type[TransferBackend]


@dataclass(frozen=True)
class ProcessHookRecord:
    """A named pre- or post-process hook a step can ask for by name (``balsam_process_hooks``).

    The callable receives the :class:`balsam_agent.scheduler.StepContext` and the step's hook
    arguments; it raises to fail the step (the message becomes the reason the user sees).
    """

    name: str
    run: Callable[..., None]


@dataclass(frozen=True)
class SiteProfile:
    """What an agent needs to know about its site: scheduler, launch style, defaults and limits.

    Plugins ship profiles for the machines they know (``balsam_sites``); the agent's configuration file
    picks one by name and may override any field.
    """

    #: Site name, also the routing key of its assignment queue.
    name: str
    #: Name of the scheduler backend (a ``SchedulerRecord.name``).
    scheduler: str
    #: How ranks are started: ``plain`` (one process), ``mpirun``, ``srun``, ``runjob``, ``cobalt-mode``
    #: (Cobalt's ``--mode cN`` starts runjob itself), ``condor``.
    launch_style: str = "plain"
    #: Seconds between scheduler status polls (the seed's Vesta used 300).
    poll_interval: float = 1.0
    #: Queue/partition to submit to (empty: the scheduler's default).
    queue: str = ""
    #: Project / account / allocation to charge (empty: none).
    project: str = ""
    #: Quality of service (Slurm) (empty: none).
    qos: str = ""
    #: Most steps active at once at this site (0: no limit).
    max_queued_steps: int = 0
    #: Most nodes one step may ask for (0: no limit).
    max_nodes: int = 0
    #: Longest walltime one step may ask for, in minutes (0: no limit).
    max_wall_minutes: int = 0
    #: Executables and pre/post-process scripts must resolve inside this directory (empty: refuse every
    #: path executable; registered hooks only).
    allowed_exec_dir: str = ""
    #: Where step working directories are created.
    work_root: str = ""
    #: Concurrent transfers at this site.
    max_concurrent_transfers: int = 4
    #: Scheduler- or site-specific settings (credentials, extra directives).
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepContext:
    """What lifecycle hooks see of one step attempt."""

    job_id: str
    step_index: int
    attempt: int
    site: SiteProfile
    #: The step's working directory.
    workdir: Any
    #: The step as submitted (``argobalsam.argo.v1.job_pb2.Step``).
    step: Any
    #: Scheduler job id once submitted.
    scheduler_id: str = ""
