"""Parsers on real HTCondor output (tests/data, sources named in each file) and fuzzed input."""

from __future__ import annotations

import json
import logging

import pytest
from balsam_condor import parsers
from hypothesis import given, settings
from hypothesis import strategies as st

from balsam_agent.scheduler import SchedulerError, SchedulerState


def test_submit_output_gives_the_cluster(condor_sample):
    assert parsers.parse_submit_output(condor_sample("condor_submit_output.txt")) == "8"


def test_submit_dag_output_gives_the_dagman_cluster(condor_sample):
    assert parsers.parse_submit_output(condor_sample("condor_submit_dag_output.txt")) == "30072"


@pytest.mark.parametrize("text", ["", "Submitting job(s).\n", "ERROR: Executable file x does not exist",
                                  "1 job(s) submitted to cluster .", "<html>502</html>"])
def test_submit_output_without_a_cluster_is_an_error(text):
    with pytest.raises(SchedulerError):
        parsers.parse_submit_output(text)


def test_real_condor_q_json_running_job(condor_sample):
    ads = parsers.parse_job_ads(condor_sample("condor_q_json_running_job.txt"))
    statuses = parsers.summarize(ads)
    assert list(statuses) == ["3472942"]
    status = statuses["3472942"]
    assert status.state is SchedulerState.RUNNING
    assert status.native_state == "Running"
    # The ad's expressions arrive as "/Expr(...)/" strings and must not confuse the parser.
    assert ads[0]["OnExitHold"].startswith("/Expr(")


def test_classad_json_layout_held_and_removed(condor_sample):
    statuses = parsers.summarize(parsers.parse_job_ads(condor_sample("classad_json_two_ads.txt")))
    assert statuses["1"].state is SchedulerState.HELD
    assert statuses["2"].state is SchedulerState.CANCELLED


def test_history_final_states(condor_sample):
    statuses = parsers.summarize(parsers.parse_job_ads(
        condor_sample("condor_history_json_removed_by_policy.txt")))
    assert statuses["41"].state is SchedulerState.FAILED
    assert "walltime exceeded" in statuses["41"].reason
    assert statuses["42"].state is SchedulerState.CANCELLED
    assert statuses["42"].reason == "via condor_rm (by user argo)"
    assert (statuses["43"].state, statuses["43"].exit_code) == (SchedulerState.COMPLETED, 0)
    assert statuses["44"].state is SchedulerState.FAILED
    assert statuses["44"].reason == "killed by signal 9"


def test_held_job_reports_its_hold_reason():
    ad = {"ClusterId": 7, "ProcId": 0, "JobStatus": 5,
          "HoldReason": "Error from slot1@node: Failed to execute '/bin/nope'"}
    status = parsers.summarize([ad])["7"]
    assert status.state is SchedulerState.HELD
    assert status.reason == ad["HoldReason"]


def test_non_zero_exit_code_fails_with_the_code():
    status = parsers.summarize([{"ClusterId": 5, "ProcId": 0, "JobStatus": 4, "ExitCode": 3,
                                 "ExitBySignal": False}])["5"]
    assert (status.state, status.exit_code) == (SchedulerState.FAILED, 3)


def test_cluster_is_active_while_any_process_is():
    ads = [{"ClusterId": 9, "ProcId": 0, "JobStatus": 4, "ExitCode": 0},
           {"ClusterId": 9, "ProcId": 1, "JobStatus": 2}]
    assert parsers.summarize(ads)["9"].state is SchedulerState.RUNNING
    ads[1].update(JobStatus=4, ExitCode=1)
    assert parsers.summarize(ads)["9"].state is SchedulerState.FAILED


def test_unknown_job_status_is_unknown_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        status = parsers.summarize([{"ClusterId": 3, "ProcId": 0, "JobStatus": 42}])["3"]
    assert status.state is SchedulerState.UNKNOWN
    assert "42" in caplog.text


def test_no_output_means_no_job():
    assert parsers.parse_job_ads("") == []
    assert parsers.parse_job_ads("\n") == []


@pytest.mark.parametrize("text", ["{", "{}", "[1, 2]", "null", "<html>", '"x"'])
def test_garbage_json_is_a_scheduler_error(text):
    with pytest.raises(SchedulerError):
        parsers.parse_job_ads(text)


def test_ads_without_cluster_are_skipped():
    assert parsers.summarize([{"JobStatus": 2}, {"ClusterId": "x", "JobStatus": 2}]) == {}


@pytest.mark.parametrize("text, unknown", [
    ("Couldn't find/remove all jobs in cluster 999", True),
    ("Couldn't find/hold all jobs in cluster 3", True),
    ("All jobs in cluster 3 have been marked for removal", False),
    ("-- Failed to fetch ads from: <127.0.0.1:9618> : host\nCEDAR:6001:Failed to connect", False),
])
def test_unknown_job_messages(text, unknown):
    assert parsers.is_unknown_job_message(text) is unknown


# --- fuzzing: only SchedulerError may escape, and every call returns ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["ClusterId", "ProcId", "JobStatus", "ExitCode", "ExitBySignal", "ExitSignal",
                         "HoldReason", "RemoveReason", "x"]), children, max_size=6),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_text_parsers(text):
    for parse in (parsers.parse_submit_output, parsers.parse_job_ads):
        try:
            parse(text)
        except SchedulerError:
            pass
    parsers.is_unknown_job_message(text)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fuzz_json_structures(value):
    try:
        ads = parsers.parse_job_ads(json.dumps(value))
    except SchedulerError:
        return
    for status in parsers.summarize(ads).values():
        assert isinstance(status.state, SchedulerState)
