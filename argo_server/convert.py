"""Database rows to API messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from argobalsam.argo.v1 import job_pb2

from .ids import job_name, set_timestamp

Row = Mapping[Any, Any]

# Output-only fields of a submitted step, cleared before the spec is stored.
STEP_OUTPUT_FIELDS = ("name", "index", "state", "state_reason", "failed_phase", "attempt", "scheduler_id",
                      "exit_code", "dispatch_time", "start_time", "end_time", "update_time")
JOB_OUTPUT_FIELDS = ("name", "steps", "state", "state_reason", "current_step", "create_time", "update_time",
                     "end_time", "data_url")


def submitted_step(step: job_pb2.Step) -> job_pb2.Step:
    """A copy of a submitted step with its input fields only (what a caller set in output fields is
    not theirs to set)."""
    copy = job_pb2.Step()
    copy.CopyFrom(step)
    for field in STEP_OUTPUT_FIELDS:
        copy.ClearField(field)
    return copy


def job_spec(job: job_pb2.Job) -> bytes:
    """The stored form of a submitted job: its input fields, without the steps."""
    copy = job_pb2.Job()
    copy.CopyFrom(job)
    for field in JOB_OUTPUT_FIELDS:
        copy.ClearField(field)
    return copy.SerializeToString(deterministic=True)


def step_message(job_id: str, row: Row) -> job_pb2.Step:
    """The API Step of a ``steps`` row."""
    step = job_pb2.Step.FromString(row["spec"])
    step.name = f"{job_name(job_id)}/steps/{row['index']}"
    step.index = row["index"]
    step.state = row["state"]
    step.state_reason = row["state_reason"] or ""
    step.failed_phase = row["failed_phase"]
    step.attempt = row["attempt"]
    step.scheduler_id = row["scheduler_id"] or ""
    if row["exit_code"] is not None:
        step.exit_code = row["exit_code"]
    set_timestamp(step.dispatch_time, row["dispatch_time"])
    set_timestamp(step.start_time, row["start_time"])
    set_timestamp(step.end_time, row["end_time"])
    set_timestamp(step.update_time, row["update_time"])
    return step


def job_message(row: Row, steps: Sequence[Row]) -> job_pb2.Job:
    """The API Job of a ``jobs`` row and its ``steps`` rows (in index order)."""
    job = job_pb2.Job.FromString(row["spec"])
    job.name = job_name(row["id"])
    job.state = row["state"]
    job.state_reason = row["state_reason"] or ""
    job.current_step = row["current_step"]
    job.data_url = row["data_url"]
    set_timestamp(job.create_time, row["create_time"])
    set_timestamp(job.update_time, row["update_time"])
    set_timestamp(job.end_time, row["end_time"])
    job.steps.extend(step_message(row["id"], step) for step in steps)
    return job


def event_message(row: Row) -> job_pb2.JobEvent:
    """The API JobEvent of a ``job_events`` row."""
    event = job_pb2.JobEvent(
        name=f"{job_name(row['job_id'])}/events/{row['event_id']}", job=job_name(row["job_id"]),
        event_id=row["event_id"], job_state=row["job_state"], step_index=row["step_index"],
        previous_step_state=row["previous_step_state"], step_state=row["step_state"], attempt=row["attempt"],
        site=row["site"] or "", scheduler_id=row["scheduler_id"] or "", failed_phase=row["failed_phase"],
        reason=row["reason"] or "")
    set_timestamp(event.time, row["time"])
    if row["exit_code"] is not None:
        event.exit_code = row["exit_code"]
    return event
