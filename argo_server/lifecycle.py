"""State changes of jobs and steps inside one database transaction.

A :class:`Change` loads a job and its steps (locked for update), applies transitions through the table
in :mod:`argo_server.transitions`, and buffers the job events and outbox envelopes they cause; they are
written by :meth:`Change.flush` in the same transaction as the state itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from argobalsam.argo.v1 import job_pb2
from argobalsam.balsam.v1 import assignment_pb2
from sqlalchemy import Table

from . import data_plan, metrics, statements, tracing
from .ids import step_id
from .models import Job, JobEvent, JobSite, Step
from .outbox import current_trace_context, make_envelope, outbox_row, outbox_table
from .statements import DriverTx
from .transitions import (
    STEP_ACTIVE,
    J,
    S,
    check_job_transition,
    check_step_transition,
)

log = logging.getLogger(__name__)

jobs_table = cast(Table, Job.__table__)
steps_table = cast(Table, Step.__table__)
events_table = cast(Table, JobEvent.__table__)
job_sites_table = cast(Table, JobSite.__table__)

Record = dict[str, Any]


@dataclass
class Buffer:
    """Rows to insert at the end of the transaction (few statements, many rows)."""

    now: int
    events: list[Record] = field(default_factory=list)
    outbox: list[Record] = field(default_factory=list)
    trace_context: dict[str, str] = field(default_factory=current_trace_context)
    #: Changes whose row updates are written at :meth:`flush`.
    changes: list[Change] = field(default_factory=list)

    def flush(self, tx: DriverTx) -> None:
        """Writes the changes' row updates, then inserts the buffered events and outbox rows."""
        rows: dict[str, list[tuple[str, int, Record]]] = {"jobs": [], "job_sites": [], "steps": []}
        for change in self.changes:
            change.collect(rows)
        for table, updates in rows.items():
            if updates:
                statements.update_rows(tx, table, updates)
        self.changes.clear()
        tx.insert(events_table, self.events)
        metrics.count_events(self.events)
        self.events.clear()
        tx.insert(outbox_table, self.outbox)
        self.outbox.clear()


def event_record(job: Record, now: int, step: Record | None = None, previous: int = 0,
                 reason: str = "") -> Record:
    """A job_events row for the job's (and optionally a step's) current state."""
    record: Record = {"job_id": job["id"], "time": now, "job_state": job["state"], "step_index": -1,
                      "previous_step_state": 0, "step_state": 0, "attempt": 0, "site": "",
                      "scheduler_id": "", "exit_code": None, "failed_phase": 0, "reason": reason}
    if step is not None:
        record.update(step_index=step["index"], previous_step_state=previous, step_state=step["state"],
                      attempt=step["attempt"], site=step["target_site"], scheduler_id=step["scheduler_id"] or "",
                      exit_code=step["exit_code"], failed_phase=step["failed_phase"])
    return record


class Change:
    """One job (with its steps) being changed in the current transaction."""

    def __init__(self, tx: DriverTx | None, buffer: Buffer, job: Record, steps: list[Record],
                 specs: list[job_pb2.Step] | None = None, job_spec: job_pb2.Job | None = None) -> None:
        self.tx = tx
        self.buffer = buffer
        self.job = job
        self.steps = steps
        self._specs = specs
        self._job_spec = job_spec
        # Row updates, merged per row until the buffer is flushed: a report that moves a step through
        # several states in one batch costs one UPDATE per row, not one per transition.
        self._job_values: Record = {}
        self._job_sites_values: Record = {}
        self._step_values: dict[int, Record] = {}
        if tx is not None:  # None: a job being inserted, whose rows its creator writes
            buffer.changes.append(self)

    @classmethod
    def load(cls, tx: DriverTx, buffer: Buffer, job_id: str, lock: bool = True) -> Change | None:
        """Loads a job and its steps, locking the job row (the lock orders concurrent changers)."""
        row, steps = statements.load_job(tx, job_id, lock)
        if row is None:
            return None
        return cls(tx, buffer, row, steps)

    @classmethod
    def load_many(cls, tx: DriverTx, buffer: Buffer, job_ids: list[str]) -> dict[str, Change | None]:
        """:meth:`load` for many jobs with two statements, locking them in id order."""
        found = statements.load_jobs(tx, job_ids, lock=True)
        return {job_id: cls(tx, buffer, *found[job_id]) if job_id in found else None for job_id in job_ids}

    # -- job ------------------------------------------------------------------------------------

    def set_job_state(self, target: int, reason: str = "") -> None:
        """Moves the job to ``target`` (raises TransitionRefused when the table forbids it)."""
        check_job_transition(self.job["state"], target, f"job {self.job['id']}")
        now = self.buffer.now
        self.job.update(state=target, state_reason=reason, update_time=now)
        values: Record = {"state": target, "state_reason": reason, "update_time": now,
                          "current_step": self.job["current_step"]}
        terminal = target in (J.JOB_STATE_SUCCEEDED, J.JOB_STATE_FAILED, J.JOB_STATE_CANCELLED,
                              J.JOB_STATE_REJECTED)
        values["end_time"] = now if terminal else None
        self.job["end_time"] = values["end_time"]
        self._job_values.update(values)
        self._job_sites_values["state"] = target
        self.buffer.events.append(event_record(self.job, now, reason=reason))

    # -- steps ----------------------------------------------------------------------------------

    def specs(self) -> list[job_pb2.Step]:
        """The submitted steps (parsed once)."""
        if self._specs is None:
            self._specs = [job_pb2.Step.FromString(step["spec"]) for step in self.steps]
        return self._specs

    def job_spec(self) -> job_pb2.Job:
        """The submitted job (parsed once); read only: it may be the creator's request."""
        if self._job_spec is None:
            self._job_spec = job_pb2.Job.FromString(self.job["spec"])
        return self._job_spec

    def set_step_state(self, step: Record, target: int, reason: str = "", **details: Any) -> None:
        """Moves ``step`` to ``target`` (raises TransitionRefused when the table forbids it).

        ``details`` may set failed_phase, scheduler_id, exit_code, attempt, report_sequence."""
        previous = step["state"]
        check_step_transition(previous, target, f"step {step_id(self.job['id'], step['index'])}")
        now = self.buffer.now
        values: Record = {"state": target, "state_reason": reason, "update_time": now, **details}
        if target == S.STEP_STATE_DISPATCHED:
            values.update(dispatch_time=now, start_time=None, end_time=None, failed_phase=0, exit_code=None,
                          scheduler_id="")
        elif target == S.STEP_STATE_RUNNING and step["start_time"] is None:
            values["start_time"] = now
        elif target in (S.STEP_STATE_SUCCEEDED, S.STEP_STATE_FAILED, S.STEP_STATE_CANCELLED,
                        S.STEP_STATE_REJECTED):
            values["end_time"] = now
        if target != S.STEP_STATE_FAILED and "failed_phase" not in values:
            values["failed_phase"] = 0
        step.update(values)
        self._write_step(step, values)
        self.buffer.events.append(event_record(self.job, now, step, previous, reason))

    def _write_step(self, step: Record, values: Record) -> None:
        self._step_values.setdefault(step["index"], {}).update(values)

    def collect(self, rows: dict[str, list[tuple[str, int, Record]]]) -> None:
        """Hands the merged row updates to :meth:`Buffer.flush` (which writes them) and forgets them."""
        job_id = self.job["id"]
        if self._job_values:
            rows["jobs"].append((job_id, -1, self._job_values))
        if self._job_sites_values:
            rows["job_sites"].append((job_id, -1, self._job_sites_values))
        rows["steps"].extend((job_id, index, values) for index, values in sorted(self._step_values.items()))
        self._job_values, self._job_sites_values, self._step_values = {}, {}, {}

    def update_step_details(self, step: Record, **details: Any) -> None:
        """Records facts that are not a state change (scheduler id, exit code, report sequence)."""
        step.update(details)
        self._write_step(step, details)

    def _envelope(self, step: Record) -> assignment_pb2.AssignmentEnvelope:
        step["envelope_sequence"] += 1
        self._write_step(step, {"envelope_sequence": step["envelope_sequence"]})
        return make_envelope(step_id(self.job["id"], step["index"]), step["attempt"], step["envelope_sequence"],
                             step["target_site"], self.buffer.now,
                             tracing.job_carrier(self.job, self.buffer.trace_context))

    def send(self, step: Record, action: str, reason: str = "") -> None:
        """Writes a cancel/hold/release envelope for ``step`` to the outbox."""
        envelope = self._envelope(step)
        if action == "cancel":
            envelope.cancel.reason = reason
        elif action == "hold":
            envelope.hold.reason = reason
        elif action == "release":
            envelope.release.SetInParent()
        else:
            raise ValueError(action)
        self.buffer.outbox.append(outbox_row(envelope, self.buffer.now))

    def dispatch(self, index: int) -> None:
        """Starts a new attempt of step ``index``: DISPATCHED, with an Assign in the outbox."""
        step = self.steps[index]
        self.job["current_step"] = index
        self._job_values.update(current_step=index, update_time=self.buffer.now)
        self.set_step_state(step, S.STEP_STATE_DISPATCHED, attempt=step["attempt"] + 1, report_sequence=0)
        self.buffer.outbox.append(outbox_row(self.assign_envelope(index), self.buffer.now))

    def assign_envelope(self, index: int) -> assignment_pb2.AssignmentEnvelope:
        """The Assign envelope of step ``index`` in its current attempt."""
        envelope = self._envelope(self.steps[index])
        self.fill_assign(index, envelope.assign)
        return envelope

    def fill_assign(self, index: int, assign: assignment_pb2.Assign) -> None:
        """Writes into ``assign`` (an envelope's, empty) what step ``index`` is to run, with where its
        files come from and go to (in place: a copy of the whole Assign cost more than building it)."""
        step = self.steps[index]
        specs = self.specs()
        spec = assign.step
        spec.CopyFrom(specs[index])
        spec.name = f"jobs/{self.job['id']}/steps/{index}"
        spec.index = index
        spec.attempt = step["attempt"]
        spec.state = step["state"]
        job_spec = self.job_spec()
        # A step without its own hooks uses the job's (the seed's job-level preprocess/postprocess).
        if not spec.preprocess and job_spec.preprocess:
            spec.preprocess = job_spec.preprocess
            spec.preprocess_args[:] = job_spec.preprocess_args
        if not spec.postprocess and job_spec.postprocess:
            spec.postprocess = job_spec.postprocess
            spec.postprocess_args[:] = job_spec.postprocess_args
        assign.job_id = self.job["id"]
        assign.owner = self.job["owner"]
        assign.step_count = len(self.steps)
        data_plan.add_step_inputs(assign.inputs, specs, index, self.job["data_url"], job_spec.input_url)
        data_plan.add_step_outputs(assign.outputs, specs, index, self.job["data_url"], job_spec.output_url)

    # -- progression ----------------------------------------------------------------------------

    def progress(self, step: Record) -> None:
        """Moves the job on after ``step`` changed: the next step, or the job's end."""
        job_state = self.job["state"]
        if job_state not in (J.JOB_STATE_PENDING, J.JOB_STATE_RUNNING):
            return  # held, cancelled or finished: nothing is dispatched and the job keeps its state
        state = step["state"]
        index = step["index"]
        label = f"step {index}"
        if state in STEP_ACTIVE and state != S.STEP_STATE_DISPATCHED and job_state == J.JOB_STATE_PENDING:
            self.set_job_state(J.JOB_STATE_RUNNING, f"{label} accepted by {step['target_site']}")
        elif state == S.STEP_STATE_SUCCEEDED:
            if job_state == J.JOB_STATE_PENDING:
                self.set_job_state(J.JOB_STATE_RUNNING, f"{label} accepted by {step['target_site']}")
            if index + 1 < len(self.steps):
                self.dispatch(index + 1)
            else:
                self.set_job_state(J.JOB_STATE_SUCCEEDED, "every step succeeded")
        elif state == S.STEP_STATE_FAILED:
            phase = job_pb2.StepPhase.Name(step["failed_phase"])
            self.set_job_state(J.JOB_STATE_FAILED, f"{label} failed ({phase}): {step['state_reason']}")
        elif state == S.STEP_STATE_REJECTED:
            self.set_job_state(J.JOB_STATE_REJECTED, f"{label} rejected by {step['target_site']}: "
                                                     f"{step['state_reason']}")
        elif state == S.STEP_STATE_CANCELLED:
            self.set_job_state(J.JOB_STATE_CANCELLED, f"{label} cancelled at {step['target_site']}")

    # -- verbs ----------------------------------------------------------------------------------

    def cancel(self, reason: str) -> None:
        """CancelJob: the job is CANCELLED now; waiting steps too, dispatched ones get a Cancel."""
        self.set_job_state(J.JOB_STATE_CANCELLED, reason or "cancelled")
        for step in self.steps:
            if step["state"] == S.STEP_STATE_WAITING:
                self.set_step_state(step, S.STEP_STATE_CANCELLED, reason or "cancelled")
            elif step["state"] in STEP_ACTIVE or step["state"] == S.STEP_STATE_HELD:
                self.send(step, "cancel", reason)

    def hold(self, reason: str) -> None:
        """HoldJob: the job is HELD; its active step gets a Hold, nothing more is dispatched."""
        self.set_job_state(J.JOB_STATE_HELD, reason or "held")
        for step in self.steps:
            if step["state"] in STEP_ACTIVE:
                self.send(step, "hold", reason)

    def release(self) -> None:
        """ReleaseJob: back to PENDING/RUNNING; held steps get a Release, or the job moves on from
        where it stopped (dispatch of a waiting step, or what happened while it was held)."""
        accepted = any(step["state"] not in (S.STEP_STATE_WAITING, S.STEP_STATE_DISPATCHED)
                       for step in self.steps)
        self.set_job_state(J.JOB_STATE_RUNNING if accepted else J.JOB_STATE_PENDING, "released")
        at_site = [step for step in self.steps if step["state"] in STEP_ACTIVE or step["state"] == S.STEP_STATE_HELD]
        for step in at_site:
            self.send(step, "release")
        if at_site:
            return
        current = self.steps[self.job["current_step"]]
        if current["state"] == S.STEP_STATE_WAITING:
            self.dispatch(current["index"])
        else:
            self.progress(current)

    def retry(self) -> None:
        """RetryJob: the first step that did not succeed starts a new attempt; the job is PENDING."""
        first = next((step for step in self.steps if step["state"] != S.STEP_STATE_SUCCEEDED), None)
        if first is None:
            check_job_transition(self.job["state"], J.JOB_STATE_PENDING, "every step succeeded")
            return
        if first["state"] in STEP_ACTIVE or first["state"] == S.STEP_STATE_HELD:
            # Its site has not confirmed the cancel yet: a new attempt now could run twice.
            check_step_transition(first["state"], S.STEP_STATE_WAITING,
                                  "the site has not reported the step finished yet")
        self.set_job_state(J.JOB_STATE_PENDING, "retried")
        for step in self.steps[first["index"]:]:
            if step["state"] in (S.STEP_STATE_FAILED, S.STEP_STATE_CANCELLED, S.STEP_STATE_REJECTED):
                self.set_step_state(step, S.STEP_STATE_WAITING, "retried")
        self.dispatch(first["index"])


def new_job_records(job_id: str, job: job_pb2.Job, spec: bytes, step_specs: Sequence[bytes], now: int,
                    data_url: str, request_id: str | None, digest: str | None) -> tuple[Record, list[Record]]:
    """The jobs row and steps rows of a new job (every step WAITING, attempt 0)."""
    job_row: Record = {"id": job_id, "owner": job.owner, "group_identifier": job.group_identifier,
                       "email_address": job.email_address, "spec": spec, "step_count": len(job.steps),
                       "state": J.JOB_STATE_PENDING, "state_reason": "created", "current_step": 0,
                       "create_time": now, "update_time": now, "end_time": None, "data_url": data_url,
                       "request_id": request_id, "request_digest": digest}
    steps = [{"job_id": job_id, "index": index, "target_site": step.target_site, "spec": step_specs[index],
              "state": S.STEP_STATE_WAITING, "state_reason": "", "failed_phase": 0, "attempt": 0,
              "report_sequence": 0, "envelope_sequence": 0, "scheduler_id": "", "exit_code": None,
              "dispatch_time": None, "start_time": None, "end_time": None, "update_time": now}
             for index, step in enumerate(job.steps)]
    return job_row, steps
