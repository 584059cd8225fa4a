"""Hook implementations registering the ``slurm`` backend and its site profiles (entry point ``slurm``)."""

from __future__ import annotations

from balsam_agent import hookimpl
from balsam_agent.records import SchedulerRecord, SiteProfile
from balsam_slurm.backend import SlurmScheduler
from balsam_slurm.profiles import PROFILES


@hookimpl
def balsam_schedulers() -> list[SchedulerRecord]:
    """Offers the ``slurm`` scheduler backend."""
    return [SchedulerRecord("slurm", SlurmScheduler)]


@hookimpl
def balsam_sites() -> list[SiteProfile]:
    """Offers the ``edison``, ``perlmutter`` and ``slurm-local`` site profiles."""
    return list(PROFILES)
