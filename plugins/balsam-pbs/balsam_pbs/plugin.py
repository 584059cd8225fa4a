"""Registers the PBS backend and the polaris/aurora site profiles with the ``balsam`` project."""

from __future__ import annotations

from collections.abc import Iterable

from balsam_agent import hookimpl
from balsam_agent.records import SchedulerRecord, SiteProfile
from balsam_pbs.backend import PbsScheduler
from balsam_pbs.profiles import PROFILES


@hookimpl
def balsam_schedulers() -> Iterable[SchedulerRecord]:
    """Offers the ``pbs`` scheduler backend."""
    return [SchedulerRecord("pbs", PbsScheduler)]


@hookimpl
def balsam_sites() -> Iterable[SiteProfile]:
    """Offers the profiles of Polaris and Aurora."""
    return list(PROFILES)
