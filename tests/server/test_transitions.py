"""Every (from, to) pair of job and step states is allowed or refused on purpose."""

from __future__ import annotations

import itertools

import pytest
from argobalsam.argo.v1 import job_pb2

from argo_server.transitions import (
    TransitionRefused,
    check_job_transition,
    check_step_transition,
    job_transition_allowed,
    step_transition_allowed,
)

# The expected tables, written out by hand from the state machine comments of job.proto.
EXPECTED_JOB = {
    "PENDING": {"RUNNING", "REJECTED", "FAILED", "HELD", "CANCELLED"},
    "RUNNING": {"SUCCEEDED", "FAILED", "REJECTED", "HELD", "CANCELLED"},
    "HELD": {"PENDING", "RUNNING", "CANCELLED"},
    "SUCCEEDED": set(),
    "FAILED": {"PENDING"},
    "CANCELLED": {"PENDING"},
    "REJECTED": {"PENDING"},
    "UNSPECIFIED": set(),
}

_FAIL_HOLD_CANCEL = {"FAILED", "HELD", "CANCELLED"}
EXPECTED_STEP = {
    "WAITING": {"DISPATCHED", "HELD", "CANCELLED"},
    "DISPATCHED": {"ACCEPTED", "STAGING_IN", "PREPROCESSING", "SUBMITTED", "QUEUED", "RUNNING",
                   "POSTPROCESSING", "STAGING_OUT", "SUCCEEDED", "REJECTED"} | _FAIL_HOLD_CANCEL,
    "ACCEPTED": {"STAGING_IN", "PREPROCESSING", "SUBMITTED", "QUEUED", "RUNNING", "POSTPROCESSING",
                 "STAGING_OUT", "SUCCEEDED", "REJECTED"} | _FAIL_HOLD_CANCEL,
    "STAGING_IN": {"PREPROCESSING", "SUBMITTED", "QUEUED", "RUNNING", "POSTPROCESSING", "STAGING_OUT",
                   "SUCCEEDED"} | _FAIL_HOLD_CANCEL,
    "PREPROCESSING": {"SUBMITTED", "QUEUED", "RUNNING", "POSTPROCESSING", "STAGING_OUT",
                      "SUCCEEDED"} | _FAIL_HOLD_CANCEL,
    "SUBMITTED": {"QUEUED", "RUNNING", "POSTPROCESSING", "STAGING_OUT", "SUCCEEDED"} | _FAIL_HOLD_CANCEL,
    "QUEUED": {"RUNNING", "POSTPROCESSING", "STAGING_OUT", "SUCCEEDED"} | _FAIL_HOLD_CANCEL,
    "RUNNING": {"QUEUED", "POSTPROCESSING", "STAGING_OUT", "SUCCEEDED"} | _FAIL_HOLD_CANCEL,
    "POSTPROCESSING": {"STAGING_OUT", "SUCCEEDED"} | _FAIL_HOLD_CANCEL,
    "STAGING_OUT": {"SUCCEEDED"} | _FAIL_HOLD_CANCEL,
    "SUCCEEDED": set(),
    "HELD": {"WAITING", "DISPATCHED", "ACCEPTED", "STAGING_IN", "PREPROCESSING", "SUBMITTED", "QUEUED",
             "RUNNING", "POSTPROCESSING", "STAGING_OUT", "CANCELLED"},
    "FAILED": {"WAITING"},
    "CANCELLED": {"WAITING"},
    "REJECTED": {"WAITING"},
    "UNSPECIFIED": set(),
}

JOB_STATES = [name.removeprefix("JOB_STATE_") for name in job_pb2.JobState.keys()]
STEP_STATES = [name.removeprefix("STEP_STATE_") for name in job_pb2.StepState.keys()]


def test_expected_tables_cover_every_state() -> None:
    assert set(EXPECTED_JOB) == set(JOB_STATES)
    assert set(EXPECTED_STEP) == set(STEP_STATES)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JOB_STATES, JOB_STATES)))
def test_job_pair(current: str, target: str) -> None:
    current_value = job_pb2.JobState.Value(f"JOB_STATE_{current}")
    target_value = job_pb2.JobState.Value(f"JOB_STATE_{target}")
    expected = target in EXPECTED_JOB[current]
    assert job_transition_allowed(current_value, target_value) is expected
    if expected:
        check_job_transition(current_value, target_value)
    else:
        with pytest.raises(TransitionRefused):
            check_job_transition(current_value, target_value)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(STEP_STATES, STEP_STATES)))
def test_step_pair(current: str, target: str) -> None:
    current_value = job_pb2.StepState.Value(f"STEP_STATE_{current}")
    target_value = job_pb2.StepState.Value(f"STEP_STATE_{target}")
    expected = target in EXPECTED_STEP[current]
    assert step_transition_allowed(current_value, target_value) is expected
    if expected:
        check_step_transition(current_value, target_value)
    else:
        with pytest.raises(TransitionRefused):
            check_step_transition(current_value, target_value)
