"""Typed records that registration hooks return, and the site profile."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field
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


def option_default(option: Field[Any]) -> Any:
    """The default of a dataclass field of an options class (its factory's product if it has one)."""
    if option.default is not MISSING:
        return option.default
    if option.default_factory is not MISSING:
        return option.default_factory()
    return None


def coerce_option(key: str, value: Any, default: Any) -> Any:
    """Checks one site option value against the type of its default (for plugins' typed options).

    Tuples take lists of strings, mappings take string-to-string mappings, and bools, ints, floats and
    strings take values of their own type (an int is accepted for a float).

    :raises TypeError: naming the key and the expected type.
    """
    if isinstance(default, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
                isinstance(v, str) for v in value):
            raise TypeError(f"{key!r} must be a list of strings")
        return tuple(value)
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise TypeError(f"{key!r} must be a mapping of strings to strings")
        return dict(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{key!r} must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{key!r} must be an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{key!r} must be a number")
        return float(value)
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string")
    return value
