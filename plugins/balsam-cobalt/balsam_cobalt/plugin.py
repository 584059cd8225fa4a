"""Registers the Cobalt backend and the mira/vesta/tukey site profiles with the ``balsam`` project."""

from __future__ import annotations

from collections.abc import Iterable

from balsam_agent import hookimpl
from balsam_agent.records import SchedulerRecord, SiteProfile
from balsam_cobalt.backend import CobaltScheduler
from balsam_cobalt.profiles import PROFILES


@hookimpl
def balsam_schedulers() -> Iterable[SchedulerRecord]:
    """Offers the ``cobalt`` scheduler backend."""
    return [SchedulerRecord("cobalt", CobaltScheduler)]


@hookimpl
def balsam_sites() -> Iterable[SiteProfile]:
    """Offers the profiles of Mira, Vesta and Tukey."""
    return list(PROFILES)
