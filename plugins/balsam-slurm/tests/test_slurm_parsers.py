"""Parsers on real Slurm 22.05 output (tests/data, each file names its source) and fuzzed input."""

from __future__ import annotations

from pathlib import Path

import pytest
from balsam_slurm.parsers import (
    latest_job_by_name,
    parse_job_ids,
    parse_sacct,
    parse_squeue,
    parse_submit,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from balsam_agent.scheduler import SchedulerError, SchedulerState

DATA = Path(__file__).parent / "data"


def sample(name: str) -> str:
    """A captured sample without its leading comment lines (which say where it comes from)."""
    return "".join(line for line in (DATA / name).read_text().splitlines(keepends=True)
                   if not line.startswith("#"))


def test_submit_output() -> None:
    assert parse_submit("1234\n") == "1234"
    assert parse_submit(sample("sbatch_parsable_cluster.txt")) == "17"


@pytest.mark.parametrize("garbage", ["", "\n", "sbatch: error: Batch job submission failed", "12a", "-5"])
def test_submit_garbage_is_an_error(garbage: str) -> None:
    with pytest.raises(SchedulerError):
        parse_submit(garbage)


def test_squeue_listing_of_held_and_running_jobs() -> None:
    statuses = parse_squeue(sample("squeue_mixed.txt"))
    assert set(statuses) == {"9", "10", "12"}
    assert statuses["10"].state is SchedulerState.HELD
    assert statuses["10"].reason == "held by the user"
    assert statuses["9"].state is SchedulerState.RUNNING
    assert statuses["9"].exit_code is None


def test_squeue_admin_hold() -> None:
    statuses = parse_squeue(sample("squeue_admin_hold.txt"))
    assert statuses["16"].state is SchedulerState.HELD
    assert statuses["16"].reason == "held by an administrator"


def test_squeue_ended_jobs_with_all_states() -> None:
    statuses = parse_squeue(sample("squeue_all_states.txt"))
    assert statuses["13"].state is SchedulerState.FAILED
    assert statuses["11"].state is SchedulerState.CANCELLED
    assert statuses["13"].exit_code is None  # squeue does not know it; sacct does


def test_sacct_finished_jobs() -> None:
    statuses = parse_sacct(sample("sacct_mixed.txt"))
    assert statuses["13"].state is SchedulerState.FAILED
    assert statuses["13"].exit_code == 3
    assert statuses["13"].reason == "exited with code 3"
    assert statuses["14"].state is SchedulerState.FAILED
    assert statuses["14"].exit_code == 128 + 9
    assert statuses["14"].reason == "killed by SIGKILL"
    assert statuses["15"].state is SchedulerState.CANCELLED
    assert statuses["15"].reason == "cancelled by uid 0"
    assert statuses["11"].native_state == "CANCELLED"
    assert statuses["12"].state is SchedulerState.RUNNING
    assert statuses["12"].exit_code is None  # not final: no exit code yet


def test_sacct_rare_final_states() -> None:
    statuses = parse_sacct(sample("sacct_manpage_states.txt"))
    assert {job: s.state for job, s in statuses.items()} == {
        "21": SchedulerState.FAILED, "22": SchedulerState.FAILED, "23": SchedulerState.FAILED,
        "24": SchedulerState.FAILED, "25": SchedulerState.FAILED, "26": SchedulerState.COMPLETED}
    assert statuses["21"].reason == "node failure"
    assert statuses["23"].reason == "out of memory"
    assert statuses["26"].exit_code == 0


def test_sacct_timeout(tmp_path: Path) -> None:
    statuses = parse_sacct(sample("sacct_timeout.txt"))
    (status,) = statuses.values()
    assert status.state is SchedulerState.FAILED
    assert status.timed_out
    assert status.reason == "walltime exceeded"


def test_sacct_job_name_containing_the_separator() -> None:
    statuses = parse_sacct("7|odd|name|FAILED|2:0|None\n")
    assert statuses["7"].exit_code == 2


def test_sacct_requeued_job_latest_row_wins() -> None:
    statuses = parse_sacct("7|a|NODE_FAIL|0:0|None\n7|a|COMPLETED|0:0|None\n")
    assert statuses["7"].state is SchedulerState.COMPLETED


@pytest.mark.parametrize("garbage", ["hello", "1|2", "x|name|FAILED|3:0|None", "5|n||0:0|None"])
def test_garbage_status_output_is_an_error(garbage: str) -> None:
    with pytest.raises(SchedulerError):
        parse_sacct(garbage)
    with pytest.raises(SchedulerError):
        parse_squeue(garbage if "|" not in garbage else "x" + garbage)


def test_empty_listings_are_empty() -> None:
    assert parse_squeue("") == {}
    assert parse_sacct("\n") == {}
    assert parse_job_ids("") == []


def test_job_ids_and_latest_by_name() -> None:
    assert parse_job_ids("12\n9\n") == ["12", "9"]
    with pytest.raises(SchedulerError):
        parse_job_ids("slurm_load_jobs error: Socket timed out\n")
    rows = "9|argo-a|COMPLETED|0:0|None\n10|argo-a|RUNNING|0:0|None\n11|argo-b|PENDING|0:0|None\n"
    assert latest_job_by_name(rows, "argo-a") == "10"
    assert latest_job_by_name(rows, "argo-c") is None


PARSERS = (parse_squeue, parse_sacct, parse_job_ids, parse_submit)
lines = st.lists(st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(["12", "CANCELLED by 0", "FAILED", "3:0", "None", "", "0:15", "R", "x", "_"]),
             max_size=7).map("|".join),
), max_size=8).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(text=lines)
def test_parsers_never_crash_on_garbage(text: str) -> None:
    for parse in PARSERS:
        try:
            parse(text)  # type: ignore[operator]
        except SchedulerError:
            pass
