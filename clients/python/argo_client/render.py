"""Text and JSON renderings of jobs, events and sites for the ``argo`` CLI."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import timezone

from argobalsam.argo.v1 import job_pb2, site_pb2
from google.protobuf import json_format, message, timestamp_pb2

#: How far along a step is, for progress bars: position in the step state machine, 0 to 1.
_STEP_ORDER = [
    job_pb2.STEP_STATE_WAITING, job_pb2.STEP_STATE_DISPATCHED, job_pb2.STEP_STATE_ACCEPTED,
    job_pb2.STEP_STATE_STAGING_IN, job_pb2.STEP_STATE_PREPROCESSING, job_pb2.STEP_STATE_SUBMITTED,
    job_pb2.STEP_STATE_QUEUED, job_pb2.STEP_STATE_RUNNING, job_pb2.STEP_STATE_POSTPROCESSING,
    job_pb2.STEP_STATE_STAGING_OUT, job_pb2.STEP_STATE_SUCCEEDED,
]


def to_json(value: message.Message | dict[str, object]) -> str:
    """Protobuf JSON of a message (proto field names, enums by name); dicts may hold messages."""
    return json.dumps(to_jsonable(value), indent=2, sort_keys=False)


def to_jsonable(value: object) -> object:
    """Converts messages (also inside dicts and lists) to their protobuf JSON values."""
    if isinstance(value, message.Message):
        # Fields at their default are printed too, so scripts can rely on every key being present.
        return json_format.MessageToDict(value, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return value


def job_state_name(state: int) -> str:
    """``RUNNING`` for ``JOB_STATE_RUNNING``."""
    return job_pb2.JobState.Name(state).removeprefix("JOB_STATE_")  # type: ignore[arg-type]


def step_state_name(state: int) -> str:
    """``STAGING_IN`` for ``STEP_STATE_STAGING_IN``."""
    return job_pb2.StepState.Name(state).removeprefix("STEP_STATE_")  # type: ignore[arg-type]


def phase_name(phase: int) -> str:
    """``STAGE_IN`` for ``STEP_PHASE_STAGE_IN``."""
    return job_pb2.StepPhase.Name(phase).removeprefix("STEP_PHASE_")  # type: ignore[arg-type]


def timestamp_text(stamp: timestamp_pb2.Timestamp, *, missing: str = "-") -> str:
    """Local time of a timestamp, or ``missing`` when it is unset."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return missing
    return stamp.ToDatetime(tzinfo=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    rows = [list(row) for row in rows]
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [list(headers), *rows]]
    return "\n".join(lines)


def step_progress(step: job_pb2.Step) -> float:
    """How far a step is along its lifecycle, 0 to 1 (a failed step counts where it stopped: 0)."""
    if step.state in _STEP_ORDER:
        return _STEP_ORDER.index(step.state) / (len(_STEP_ORDER) - 1)
    return 0.0


def job_progress(job: job_pb2.Job) -> float:
    """How far a job is, 0 to 1: the mean progress of its steps."""
    if job.state == job_pb2.JOB_STATE_SUCCEEDED:
        return 1.0
    if not job.steps:
        return 0.0
    return sum(step_progress(step) for step in job.steps) / len(job.steps)


def current_step(job: job_pb2.Job) -> job_pb2.Step | None:
    """The step that is (or was last) active."""
    if not job.steps:
        return None
    return job.steps[min(max(job.current_step, 0), len(job.steps) - 1)]


def job_id(name: str) -> str:
    """The id part of ``jobs/{id}``."""
    return name.removeprefix("jobs/")


def jobs_table(jobs: Iterable[job_pb2.Job]) -> str:
    """One line per job: id, state, owner, group, current step and site, creation time."""
    rows = []
    for job in jobs:
        step = current_step(job)
        where = f"{job.current_step + 1}/{len(job.steps)} {step.target_site} {step_state_name(step.state)}" \
            if step is not None else "-"
        rows.append([job_id(job.name), job_state_name(job.state), job.owner or "-", job.group_identifier or "-",
                     where, timestamp_text(job.create_time)])
    return table(["JOB", "STATE", "OWNER", "GROUP", "STEP", "CREATED"], rows)


def job_detail(job: job_pb2.Job, events: Sequence[job_pb2.JobEvent]) -> str:
    """What ``argo show`` prints: the job, each step with its state and timings, then the history."""
    lines = [f"{job.name}  {job_state_name(job.state)}" + (f"  ({job.state_reason})" if job.state_reason else "")]
    for label, value in (("owner", job.owner), ("e-mail", job.email_address), ("group", job.group_identifier),
                         ("input", job.input_url), ("output", job.output_url), ("data", job.data_url)):
        if value:
            lines.append(f"  {label + ':':8} {value}")
    lines.append(f"  {'created:':8} {timestamp_text(job.create_time)}   updated: {timestamp_text(job.update_time)}"
                 f"   ended: {timestamp_text(job.end_time)}")
    lines.append("")
    rows = []
    notes: list[str] = []
    for index, step in enumerate(job.steps):
        rows.append([
            str(index), step.target_site or "-", step_state_name(step.state), str(step.attempt or "-"),
            step.scheduler_id or "-", str(step.exit_code) if step.HasField("exit_code") else "-",
            timestamp_text(step.dispatch_time), timestamp_text(step.start_time), timestamp_text(step.end_time),
        ])
        if step.state == job_pb2.STEP_STATE_FAILED:
            notes.append(f"  step {index} failed in {phase_name(step.failed_phase)}: {step.state_reason or '-'}")
        elif step.state_reason:
            notes.append(f"  step {index} {step_state_name(step.state).lower()}: {step.state_reason}")
    lines.append(table(["STEP", "SITE", "STATE", "ATTEMPT", "SCHEDULER ID", "EXIT", "DISPATCHED", "STARTED",
                        "ENDED"], rows))
    lines.extend(notes)
    lines.append("")
    lines.append("History:")
    lines.append(events_table(events) if events else "  (no events)")
    return "\n".join(lines)


def events_table(events: Iterable[job_pb2.JobEvent]) -> str:
    """One line per event: time, step, its state change, the job's state and the reason."""
    rows = []
    for event in events:
        if event.step_index >= 0:
            change = f"{step_state_name(event.previous_step_state)} -> {step_state_name(event.step_state)}"
            step = str(event.step_index)
        else:
            change, step = "-", "job"
        detail = [event.reason] if event.reason else []
        if event.scheduler_id:
            detail.append(f"scheduler id {event.scheduler_id}")
        if event.HasField("exit_code"):
            detail.append(f"exit {event.exit_code}")
        if event.failed_phase:
            detail.append(f"phase {phase_name(event.failed_phase)}")
        rows.append([timestamp_text(event.time), step, event.site or "-", change, job_state_name(event.job_state),
                     "; ".join(detail)])
    return table(["TIME", "STEP", "SITE", "STEP STATE", "JOB STATE", "DETAIL"], rows)


def sites_table(sites: Iterable[site_pb2.Site]) -> str:
    """One line per site: liveness, last heartbeat, agent version, scheduler, plugins, active steps."""
    rows = []
    for site in sites:
        plugins = ", ".join(f"{p.name} {p.version}".strip() for p in site.plugins) or "-"
        rows.append([site.name.removeprefix("sites/"), "online" if site.online else "offline",
                     timestamp_text(site.last_heartbeat_time, missing="never"), site.agent_version or "-",
                     site.scheduler or "-", str(site.capacity.active_steps), site.hostname or "-", plugins])
    return table(["SITE", "STATUS", "LAST HEARTBEAT", "VERSION", "SCHEDULER", "ACTIVE", "HOST", "PLUGINS"], rows)
