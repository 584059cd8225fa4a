"""Cobalt parsers on real output samples (tests/data, sources cited there), plus fuzzing."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from balsam_cobalt import parsers
from balsam_cobalt.states import COBALT_STATES, translate_state
from hypothesis import given, settings
from hypothesis import strategies as st

from balsam_agent.scheduler import SchedulerError, SchedulerState

sys.path.insert(0, str(Path(__file__).parent))
from cobalt_samples import sample  # noqa: E402


def test_qsub_output_is_the_job_id_kept_as_a_string() -> None:
    assert parsers.parse_qsub_output("603816\n") == "603816"


@pytest.mark.parametrize("text", ["", "\n", "qsub: error: no such option", "12ab"])
def test_qsub_output_without_an_id_raises(text: str) -> None:
    with pytest.raises(SchedulerError):
        parsers.parse_qsub_output(text)


def test_default_qstat_table_gives_every_job_and_state() -> None:
    statuses = parsers.parse_qstat_status(sample("qstat_default.txt"))
    assert {k: v.native_state for k, v in statuses.items()} == {
        "284752": "starting", "603816": "running", "603817": "queued",
        "603818": "user_hold", "603819": "dep_hold", "603820": "exiting",
    }
    assert statuses["603816"].state is SchedulerState.RUNNING
    assert statuses["603817"].state is SchedulerState.QUEUED
    assert statuses["603818"].state is SchedulerState.HELD
    assert "user" in statuses["603818"].reason
    assert statuses["603819"].state is SchedulerState.HELD
    assert statuses["603820"].state is SchedulerState.RUNNING


def test_custom_header_table_is_cut_at_header_positions_so_values_may_hold_spaces() -> None:
    rows = parsers.parse_qstat_table(sample("qstat_header.txt"))
    assert [r.get("JobName") for r in rows] == ["argo-j1-0-a1", "argo-j2-1-a1", "N/A", "my job"]
    assert rows[2].get("Queue") == "prod-short"
    assert parsers.find_job_by_name(sample("qstat_header.txt"), "argo-j2-1-a1") == "16928"
    assert parsers.find_job_by_name(sample("qstat_header.txt"), "argo-j9-0-a1") is None
    statuses = parsers.parse_qstat_status(sample("qstat_header.txt"))
    assert statuses["16929"].state is SchedulerState.HELD
    assert statuses["16930"].state is SchedulerState.RUNNING


def test_empty_qstat_output_has_no_jobs() -> None:
    assert parsers.parse_qstat_status("") == {}


def test_qstat_output_without_header_rule_raises() -> None:
    with pytest.raises(SchedulerError, match="unrecognised qstat output"):
        parsers.parse_qstat_status("component error: Failed to connect to queue-manager\n")


def test_unknown_state_is_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert translate_state("teleporting") is SchedulerState.UNKNOWN
    assert "teleporting" in caplog.text
    assert all(translate_state(code) is state for code, state in COBALT_STATES.items())


def test_cobaltlog_of_a_successful_job() -> None:
    status = parsers.parse_cobaltlog(sample("cobaltlog_completed.txt"), "603816")
    assert status is not None and status.state is SchedulerState.COMPLETED and status.exit_code == 0


def test_cobaltlog_of_a_failed_job_keeps_its_exit_code() -> None:
    status = parsers.parse_cobaltlog(sample("cobaltlog_failed.txt"), "16927")
    assert status is not None and status.state is SchedulerState.FAILED and status.exit_code == 134
    assert "134" in status.reason


def test_cobaltlog_of_a_deleted_job_is_cancelled() -> None:
    status = parsers.parse_cobaltlog(sample("cobaltlog_deleted.txt"), "1")
    assert status is not None and status.state is SchedulerState.CANCELLED
    assert "user" in status.reason


def test_cobaltlog_of_a_walltime_overrun_fails_with_the_reason() -> None:
    status = parsers.parse_cobaltlog(sample("cobaltlog_walltime.txt"), "1")
    assert status is not None and status.state is SchedulerState.FAILED
    assert status.exit_code is None and "walltime" in status.reason


def test_cobaltlog_of_a_job_still_running_records_no_end() -> None:
    running = sample("cobaltlog_completed.txt").splitlines()[:2]
    assert parsers.parse_cobaltlog("\n".join(running), "603816") is None


def test_qhold_output_names_the_refused_jobs() -> None:
    text = sample("qhold_mixed.txt")
    parsers.check_hold_output(text, "", "603817", "hold")
    with pytest.raises(SchedulerError, match="already active"):
        parsers.check_hold_output(text, "", "603816", "hold")
    with pytest.raises(SchedulerError, match="not found"):
        parsers.check_hold_output(text, "", "1", "hold")
    with pytest.raises(SchedulerError, match="not found"):
        parsers.check_hold_output("", "   No jobs found.\nFailed to match any jobs\n", "7", "release")


def test_qdel_output_tells_whether_it_found_the_job() -> None:
    assert not parsers.qdel_found_nothing(sample("qdel_deleted.txt"))
    assert parsers.qdel_found_nothing(sample("qdel_notfound.txt"))


_texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=400)
_tables = st.lists(st.sampled_from(["JobID  State  ", "=====", "12  queued", "x", "", "  ", "==", "7 running"]),
                   max_size=8).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_texts, _tables))
def test_parsers_never_raise_anything_but_scheduler_error(text: str) -> None:
    for parse in (parsers.parse_qsub_output, parsers.parse_qstat_status,
                  lambda t: parsers.find_job_by_name(t, "argo"),
                  lambda t: parsers.parse_cobaltlog(t, "1"),
                  lambda t: parsers.check_hold_output(t, t, "1", "hold"),
                  parsers.qdel_found_nothing):
        try:
            parse(text)
        except SchedulerError:
            pass
