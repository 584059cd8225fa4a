"""The JobStatus translation table against HTCondor's own enumeration."""

from __future__ import annotations

import logging

import htcondor2
import pytest
from balsam_condor import states

from balsam_agent.scheduler import SchedulerState


def test_table_covers_every_status_the_bindings_know():
    for status in htcondor2.JobStatus:
        assert status.value in states.JOB_STATUS_STATES
        assert states.JOB_STATUS_NAMES[status.value].replace(" ", "_").upper() == status.name


@pytest.mark.parametrize("code, state", [(1, SchedulerState.QUEUED), (2, SchedulerState.RUNNING),
                                         (3, SchedulerState.CANCELLED), (5, SchedulerState.HELD),
                                         (7, SchedulerState.RUNNING)])
def test_translation(code, state):
    assert states.translate(code) is state


@pytest.mark.parametrize("code", [8, -1, "2", None, True, 2.0])
def test_unknown_codes_warn(code, caplog):
    with caplog.at_level(logging.WARNING):
        assert states.translate(code) is SchedulerState.UNKNOWN
    assert "unknown HTCondor JobStatus" in caplog.text
