"""Database rows to API messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from argobalsam.argo.v1 import job_pb2

from .ids import job_name, to_timestamp

Row = Mapping[Any, Any]

# Output-only fields of a submitted step, cleared before the spec is stored.
STEP_OUTPUT_FIELDS = ("name", "index", "state", "state_reason", "failed_phase", "attempt", "scheduler_id",
                      "exit_code", "dispatch_time", "start_time", "end_time", "update_time")
JOB_OUTPUT_FIELDS = ("name", "steps", "state", "state_reason", "current_step", "create_time", "update_time",
                     "end_time", "data_url")


def step_spec(step: job_pb2.Step) -> bytes:
    """The stored form of a submitted step: its input fields only."""
    copy = job_pb2.Step()
    copy.CopyFrom(step)
    for field in STEP_OUTPUT_FIELDS:
        copy.ClearField(field)
    return copy.SerializeToString(deterministic=True)


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
    for field in ("dispatch_time", "start_time", "end_time", "update_time"):
        stamp = to_timestamp(row[field])
        if stamp is not None:
            getattr(step, field).CopyFrom(stamp)
    return step


def job_message(row: Row, steps: Sequence[Row]) -> job_pb2.Job:
    """The API Job of a ``jobs`` row and its ``steps`` rows (in index order)."""
    job = job_pb2.Job.FromString(row["spec"])
    job.name = job_name(row["id"])
    job.state = row["state"]
    job.state_reason = row["state_reason"] or ""
    job.current_step = row["current_step"]
    job.data_url = row["data_url"]
    for field in ("create_time", "update_time", "end_time"):
        stamp = to_timestamp(row[field])
        if stamp is not None:
            getattr(job, field).CopyFrom(stamp)
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
    stamp = to_timestamp(row["time"])
    if stamp is not None:
        event.time.CopyFrom(stamp)
    if row["exit_code"] is not None:
        event.exit_code = row["exit_code"]
    return event
