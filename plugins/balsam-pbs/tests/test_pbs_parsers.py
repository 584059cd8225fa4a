"""PBS parsers on real output samples (tests/data, sources cited there), plus fuzzing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from balsam_pbs import parsers
from balsam_pbs.states import PBS_STATES, translate_state
from hypothesis import given, settings
from hypothesis import strategies as st

from balsam_agent.scheduler import SchedulerError, SchedulerState

DATA = Path(__file__).parent / "data"


def test_qsub_output_keeps_the_server_suffix() -> None:
    assert parsers.parse_qsub_output("1234.polaris-pbs-01\n") == "1234.polaris-pbs-01"
    with pytest.raises(SchedulerError):
        parsers.parse_qsub_output("qsub: Unknown queue\n")


def test_finished_job_from_the_history_completed() -> None:
    statuses = parsers.parse_qstat_json((DATA / "qstat_x_finished.json").read_text())
    assert statuses["40.pbs"].state is SchedulerState.COMPLETED and statuses["40.pbs"].exit_code == 0


def test_running_and_held_jobs() -> None:
    statuses = parsers.parse_qstat_json((DATA / "qstat_running_queued.json").read_text())
    running = statuses["1234.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"]
    held = statuses["1235.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"]
    assert running.state is SchedulerState.RUNNING
    assert held.state is SchedulerState.HELD and "user" in held.reason


@pytest.mark.parametrize("exit_status, state, words", [
    (3, SchedulerState.FAILED, "exit code 3"),
    (-29, SchedulerState.FAILED, "walltime"),
    (271, SchedulerState.FAILED, "signal 15"),
    (None, SchedulerState.CANCELLED, "deleted"),
])
def test_exit_status_of_finished_jobs(exit_status: int | None, state: SchedulerState, words: str) -> None:
    document = json.loads((DATA / "qstat_x_finished.json").read_text())
    job = document["Jobs"]["40.pbs"]
    job.pop("comment")
    if exit_status is None:
        job.pop("Exit_status")
    else:
        job["Exit_status"] = exit_status
    status = parsers.parse_qstat_json(json.dumps(document))["40.pbs"]
    assert status.state is state and words in status.reason


def test_unknown_ids_on_stderr_are_recognised() -> None:
    stderr = (DATA / "qstat_unknown.stderr").read_text()
    assert parsers.unknown_ids(stderr) == {"9999", "1230"}
    assert parsers.only_unknown_job_errors(stderr)
    assert not parsers.only_unknown_job_errors(stderr + "qstat: cannot connect to server pbs (errno=111)\n")


def test_unknown_state_is_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert translate_state("Z") is SchedulerState.UNKNOWN
    assert "'Z'" in caplog.text
    assert all(translate_state(code) is state for code, state in PBS_STATES.items())


def test_invalid_json_raises_scheduler_error() -> None:
    with pytest.raises(SchedulerError, match="invalid JSON"):
        parsers.parse_qstat_json('{"Jobs": {')


_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=12,
).map(json.dumps)
_jobs = st.dictionaries(st.text(max_size=8), st.dictionaries(
    st.sampled_from(["job_state", "Exit_status", "comment", "Hold_Types"]),
    st.one_of(st.text(max_size=3), st.integers(), st.none()), max_size=4), max_size=3).map(
    lambda jobs: json.dumps({"Jobs": jobs}))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), _json_like, _jobs))
def test_parsers_never_raise_anything_but_scheduler_error(text: str) -> None:
    for parse in (parsers.parse_qsub_output, parsers.parse_qstat_json, parsers.unknown_ids,
                  parsers.only_unknown_job_errors, parsers.parse_qselect_output):
        try:
            parse(text)
        except SchedulerError:
            pass
