"""Pluggy registration of the HTCondor family (entry point ``balsam: condor``)."""

from __future__ import annotations

from balsam_agent import hookimpl
from balsam_agent.records import SchedulerRecord, SiteProfile
from balsam_condor.backend import CondorScheduler
from balsam_condor.profiles import PROFILES


@hookimpl
def balsam_schedulers() -> list[SchedulerRecord]:
    """Offers the ``condor`` scheduler backend."""
    return [SchedulerRecord(CondorScheduler.name, CondorScheduler)]


@hookimpl
def balsam_sites() -> list[SiteProfile]:
    """Offers the ``argo_cluster`` site profile."""
    return list(PROFILES)
