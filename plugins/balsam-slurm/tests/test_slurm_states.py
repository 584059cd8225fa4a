"""The Slurm state translation table: every documented code, hold reasons, unknown codes."""

from __future__ import annotations

import logging

import pytest
from balsam_slurm.states import (
    SLURM_SHORT_CODES,
    SLURM_STATES,
    describe,
    parse_exit_code,
    translate_state,
)

from balsam_agent.scheduler import SchedulerState

# squeue(1) "JOB STATE CODES", Slurm 22.05: every long name the man page lists
DOCUMENTED = """BOOT_FAIL CANCELLED COMPLETED CONFIGURING COMPLETING DEADLINE FAILED NODE_FAIL OUT_OF_MEMORY
PENDING PREEMPTED RUNNING RESV_DEL_HOLD REQUEUE_FED REQUEUE_HOLD REQUEUED RESIZING REVOKED SIGNALING
SPECIAL_EXIT STAGE_OUT STOPPED SUSPENDED TIMEOUT""".split()


def test_every_documented_state_is_translated() -> None:
    assert sorted(SLURM_STATES) == sorted(DOCUMENTED)
    assert sorted(SLURM_SHORT_CODES.values()) == sorted(DOCUMENTED)


@pytest.mark.parametrize(("code", "expected"), [
    ("PENDING", SchedulerState.QUEUED), ("PD", SchedulerState.QUEUED),
    ("RUNNING", SchedulerState.RUNNING), ("CG", SchedulerState.RUNNING),
    ("COMPLETED", SchedulerState.COMPLETED), ("FAILED", SchedulerState.FAILED),
    ("TIMEOUT", SchedulerState.FAILED), ("NODE_FAIL", SchedulerState.FAILED),
    ("OUT_OF_MEMORY", SchedulerState.FAILED), ("CANCELLED by 1000", SchedulerState.CANCELLED),
    ("CANCELLED+", SchedulerState.CANCELLED), ("SUSPENDED", SchedulerState.HELD),
    ("REQUEUE_HOLD", SchedulerState.HELD), ("REQUEUED", SchedulerState.QUEUED),
])
def test_codes_translate(code: str, expected: SchedulerState) -> None:
    assert translate_state(code) is expected


@pytest.mark.parametrize("reason", ["JobHeldUser", "JobHeldAdmin"])
def test_pending_with_hold_reason_is_held(reason: str) -> None:
    assert translate_state("PENDING", reason) is SchedulerState.HELD
    assert describe("PENDING", reason, None, None).startswith("held by")


def test_pending_for_begin_time_is_queued_not_held() -> None:
    assert translate_state("PENDING", "BeginTime") is SchedulerState.QUEUED


def test_unknown_code_is_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert translate_state("WARP_DRIVE") is SchedulerState.UNKNOWN
        assert translate_state("") is SchedulerState.UNKNOWN
    assert "WARP_DRIVE" in caplog.text


@pytest.mark.parametrize(("field", "expected"), [
    ("3:0", (3, 0)), ("0:15", (0, 15)), ("255:0", (255, 0)),
    ("", (None, None)), ("x:y", (None, None)), ("3", (None, None)), ("-1:0", (None, None)),
])
def test_exit_code_field(field: str, expected: tuple[int | None, int | None]) -> None:
    assert parse_exit_code(field) == expected


@pytest.mark.parametrize(("code", "exit_code", "sig", "text"), [
    ("TIMEOUT", 0, 15, "walltime exceeded"),
    ("NODE_FAIL", 0, 0, "node failure"),
    ("OUT_OF_MEMORY", 0, 9, "out of memory"),
    ("CANCELLED by 1000", 0, 0, "cancelled by uid 1000"),
    ("FAILED", 3, 0, "exited with code 3"),
    ("FAILED", 0, 9, "killed by SIGKILL"),
])
def test_failure_reasons_read_well(code: str, exit_code: int, sig: int, text: str) -> None:
    assert describe(code, "None", exit_code, sig) == text
