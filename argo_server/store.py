"""The server's operations on its database: each public method is one transaction."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from argobalsam.argo.v1 import argo_service_pb2, job_pb2
from argobalsam.balsam.v1 import status_pb2
from sqlalchemy import Table, select

from . import errors, metrics, statements, tracing
from .convert import event_message, job_message, job_spec, submitted_step
from .data_plan import job_data_url
from .db import Database
from .group_commit import GroupCommitter
from .ids import job_id_floor, new_job_id, now_micros, step_id
from .lifecycle import (
    Buffer,
    Change,
    Record,
    event_record,
    events_table,
    job_sites_table,
    jobs_table,
    new_job_records,
    steps_table,
)
from .outbox import make_envelope, outbox_row, outbox_table
from .statements import DriverTx
from .transitions import S, TransitionRefused

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
_TOKEN_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_PAGE_SIZE = 1000
DEFAULT_EVENTS_PAGE = 100


def encode_token(value: str) -> str:
    """An opaque page token holding the last key of a page."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The key inside a page token (raises ApiError INVALID_ARGUMENT for a malformed token)."""
    try:
        value = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.invalid_request([("page_token", "malformed page token")]) from None
    if not _TOKEN_KEY.match(value):
        raise errors.invalid_request([("page_token", "malformed page token")])
    return value


def request_digest(request: argo_service_pb2.CreateJobRequest) -> str:
    """Digest of what a request asks for, to tell a retry from a reused request_id."""
    return hashlib.sha256(request.job.SerializeToString(deterministic=True)).hexdigest()


@dataclass
class PreparedJob:
    """The rows of one new job, ready to insert, and the job as returned to its creator."""

    job_row: Record
    step_rows: list[Record]
    site_rows: list[Record]
    buffer: Buffer
    message: job_pb2.Job


@dataclass
class ReportResult:
    """What applying a batch of status updates did."""

    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    refused: int = 0
    unknown: int = 0
    #: Envelopes written to the outbox (next steps dispatched, cancels): the relay has work.
    enveloped: int = 0


class JobStore:
    """Jobs, steps and events in the database, changed only through the transition table."""

    def __init__(self, db: Database, data_root: str, on_outbox: Callable[[], None] | None = None) -> None:
        self.db = db
        self.data_root = data_root.rstrip("/")
        self._on_outbox = on_outbox or (lambda: None)
        self.refused_transitions = 0
        self._lock = threading.Lock()
        self._group: GroupCommitter[PreparedJob, job_pb2.Job] = GroupCommitter(self._insert_group)

    # -- create ---------------------------------------------------------------------------------

    def create_jobs(self, requests: Sequence[argo_service_pb2.CreateJobRequest]) -> list[job_pb2.Job]:
        """Creates the jobs of ``requests`` in one transaction (validated beforehand), each with its first
        step dispatched; a request_id seen before returns the job created the first time."""
        created: list[PreparedJob] = []

        def work(cursor: Any) -> list[job_pb2.Job]:
            created.clear()
            return self._create(DriverTx.of(cursor, self.db), requests, created)

        try:
            jobs = self.db.run_raw(work)
        except self.db.driver.IntegrityError:
            # A concurrent request with the same request_id won the insert: the retry reads its job.
            jobs = self.db.run_raw(work)
        metrics.count_events([event for p in created for event in p.buffer.events])
        self._on_outbox()
        return jobs

    def create_job(self, request: argo_service_pb2.CreateJobRequest) -> job_pb2.Job:
        """Creates one job, committed together with concurrent callers' jobs (group commit).

        The rows are built here, in the caller's thread; the committer only inserts them. A request_id
        used before makes the optimistic insert fail on the unique index, and the request then takes the
        path that looks the id up."""
        prepared = self._prepare(request, now_micros())
        try:
            return self._group.call(prepared)
        except self.db.driver.IntegrityError:
            return self.create_jobs([request])[0]

    def _insert_group(self, group: Sequence[PreparedJob]) -> list[job_pb2.Job]:
        """Inserts a group's rows in one transaction on the driver's connection (:meth:`Database.run_raw`:
        the group commit is the server's hottest write, and SQLAlchemy's per-transaction machinery cost
        more than its INSERTs)."""
        self.db.run_raw(lambda cursor: self._insert(DriverTx.of(cursor, self.db), group))
        metrics.count_events([event for p in group for event in p.buffer.events])
        self._on_outbox()
        return [prepared.message for prepared in group]

    @staticmethod
    def _rows(prepared: Sequence[PreparedJob]) -> list[tuple[Table, list[Record]]]:
        """The rows of new jobs per table, in insertion order (jobs before the rows that refer to them)."""
        return [(jobs_table, [p.job_row for p in prepared]),
                (steps_table, [step for p in prepared for step in p.step_rows]),
                (job_sites_table, [site for p in prepared for site in p.site_rows]),
                (events_table, [event for p in prepared for event in p.buffer.events]),
                (outbox_table, [row for p in prepared for row in p.buffer.outbox])]

    def _prepare(self, request: argo_service_pb2.CreateJobRequest, now: int) -> PreparedJob:
        """Every row of a new job (first step dispatched) and the job as the caller will see it."""
        job = request.job
        job_id = new_job_id(now)
        digest = request_digest(request) if request.request_id else None
        submitted = [submitted_step(step) for step in job.steps]
        job_row, steps = new_job_records(job_id, job, job_spec(job),
                                         [step.SerializeToString(deterministic=True) for step in submitted], now,
                                         job_data_url(self.data_root, job_id), request.request_id or None, digest)
        buffer = Buffer(now)
        job_row["trace_context"] = tracing.encode_context(buffer.trace_context) or None
        self._dispatch_new(buffer, job_row, steps, submitted, job)
        sites = [{"job_id": job_id, "site": site, "state": job_row["state"]}
                 for site in sorted({step.target_site for step in job.steps})]
        return PreparedJob(job_row, steps, sites, buffer, job_message(job_row, steps))

    @classmethod
    def _insert(cls, tx: DriverTx, prepared: Sequence[PreparedJob]) -> None:
        if prepared:
            for table, rows in cls._rows(prepared):
                tx.insert(table, rows)

    def _create(self, tx: DriverTx, requests: Sequence[argo_service_pb2.CreateJobRequest],
                created: list[PreparedJob]) -> list[job_pb2.Job]:
        """Creates the jobs of ``requests`` not created before (appended to ``created``) and returns
        every request's job."""
        now = now_micros()
        existing = statements.jobs_by_request_id(
            tx, sorted({request.request_id for request in requests if request.request_id}))
        new: dict[str, PreparedJob] = {}
        result_ids: list[str] = []
        for request in requests:
            if request.request_id and request.request_id in existing:
                job_id, first_digest = existing[request.request_id]
                if first_digest != request_digest(request):
                    raise errors.request_id_reused(request.request_id)
                result_ids.append(job_id)
                continue
            prepared = self._prepare(request, now)
            job_id = prepared.job_row["id"]
            if request.request_id:
                existing[request.request_id] = (job_id, prepared.job_row["request_digest"])
            new[job_id] = prepared
            result_ids.append(job_id)
        created.extend(new.values())
        self._insert(tx, created)
        missing = [job_id for job_id in result_ids if job_id not in new]
        loaded = self._jobs(tx, missing) if missing else {}
        return [new[job_id].message if job_id in new else loaded[job_id] for job_id in result_ids]

    def _dispatch_new(self, buffer: Buffer, job: Record, steps: list[Record], specs: list[job_pb2.Step],
                      submitted: job_pb2.Job) -> None:
        """Dispatches step 0 of a job being inserted (its rows are written after, in one statement each)."""
        now = buffer.now
        first = steps[0]
        buffer.events.append(event_record(job, now, reason="created"))
        first.update(state=S.STEP_STATE_DISPATCHED, attempt=1, envelope_sequence=1, dispatch_time=now)
        buffer.events.append(event_record(job, now, first, S.STEP_STATE_WAITING))
        # No connection: the rows are inserted by the caller, the change only builds the Assign.
        change = Change(None, buffer, job, steps, specs, submitted)
        envelope = make_envelope(step_id(job["id"], 0), 1, 1, first["target_site"], now, buffer.trace_context)
        change.fill_assign(0, envelope.assign)
        buffer.outbox.append(outbox_row(envelope, now))

    # -- read -----------------------------------------------------------------------------------

    @staticmethod
    def _jobs(tx: DriverTx, job_ids: Sequence[str]) -> dict[str, job_pb2.Job]:
        """The jobs of ``job_ids`` that exist, by id, read on the driver's cursor (a GetJob through
        SQLAlchemy cost 0.60 ms of CPU against 69 µs: see :mod:`argo_server.statements`)."""
        if not job_ids:
            return {}
        found = statements.load_jobs(tx, list(job_ids), lock=False)
        return {job_id: job_message(row, steps) for job_id, (row, steps) in found.items()}

    def get_job(self, job_id: str) -> job_pb2.Job | None:
        """One job with its steps, or None."""
        return self.get_jobs([job_id]).get(job_id)

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, job_pb2.Job]:
        """Several jobs by id (missing ones are left out)."""
        return self.db.read_raw(lambda cursor: self._jobs(DriverTx.of(cursor, self.db), job_ids))

    def list_jobs(self, request: argo_service_pb2.ListJobsRequest) -> tuple[list[job_pb2.Job], str]:
        """A page of jobs, newest first, and the next page token (keyset pagination on the job id,
        which is time-ordered)."""
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = decode_token(request.page_token) if request.page_token else None
        states = list(request.states)
        if request.site:
            key = job_sites_table.c.job_id
            query = select(key).where(job_sites_table.c.site == request.site)
            if states:
                query = query.where(job_sites_table.c.state.in_(states))
            if request.owner or request.group_identifier or request.HasField("create_time_after") \
                    or request.HasField("create_time_before"):
                query = query.join(jobs_table, jobs_table.c.id == key)
        else:
            key = jobs_table.c.id
            query = select(key)
            if states:
                query = query.where(jobs_table.c.state.in_(states))
        if request.owner:
            query = query.where(jobs_table.c.owner == request.owner)
        if request.group_identifier:
            query = query.where(jobs_table.c.group_identifier == request.group_identifier)
        if request.HasField("create_time_after"):
            micros = request.create_time_after.ToMicroseconds()
            query = query.where(key >= job_id_floor(micros), jobs_table.c.create_time >= micros)
        if request.HasField("create_time_before"):
            micros = request.create_time_before.ToMicroseconds()
            query = query.where(key < job_id_floor(micros + 1000), jobs_table.c.create_time < micros)
        if after is not None:
            query = query.where(key < after)
        query = query.order_by(key.desc()).limit(size + 1)
        with self.db.read() as connection:
            ids = list(connection.execute(query).scalars())
            more = len(ids) > size
            ids = ids[:size]
            # the page's jobs in the same read transaction, on its driver cursor
            jobs = self._jobs(DriverTx(connection.connection.cursor(), connection.dialect), ids)
        token = encode_token(ids[-1]) if more else ""
        return [jobs[job_id] for job_id in ids if job_id in jobs], token

    def list_events(self, job_id: str, page_size: int, page_token: str) -> tuple[list[job_pb2.JobEvent], str]:
        """A page of one job's events, oldest first."""
        size = min(page_size or DEFAULT_EVENTS_PAGE, MAX_PAGE_SIZE)
        after = decode_token(page_token) if page_token else None
        if after is not None and not after.isdigit():
            raise errors.invalid_request([("page_token", "malformed page token")])
        query = select(events_table).where(events_table.c.job_id == job_id)
        if after is not None:
            query = query.where(events_table.c.event_id > int(after))
        query = query.order_by(events_table.c.event_id).limit(size + 1)
        with self.db.read() as connection:
            if after is None and connection.execute(select(jobs_table.c.id).where(jobs_table.c.id == job_id)) \
                    .first() is None:
                raise errors.not_found("job", f"jobs/{job_id}")
            rows = connection.execute(query).mappings().all()
        more = len(rows) > size
        rows = rows[:size]
        token = encode_token(str(rows[-1]["event_id"])) if more else ""
        return [event_message(row) for row in rows], token

    def events_after(self, event_id: int, limit: int = 1000) -> list[job_pb2.JobEvent]:
        """Events of every job after ``event_id`` (the WatchJobs poller's query)."""
        query = select(events_table).where(events_table.c.event_id > event_id) \
            .order_by(events_table.c.event_id).limit(limit)
        with self.db.read() as connection:
            return [event_message(row) for row in connection.execute(query).mappings()]

    def events_in(self, event_ids: Sequence[int]) -> list[job_pb2.JobEvent]:
        """The events with these ids that exist (committed late or never)."""
        query = select(events_table).where(events_table.c.event_id.in_(list(event_ids)[:1000]))
        with self.db.read() as connection:
            return [event_message(row) for row in connection.execute(query).mappings()]

    def last_event_id(self) -> int:
        """The highest event id so far (0 when there is none)."""
        from sqlalchemy import func
        with self.db.read() as connection:
            return int(connection.execute(select(func.max(events_table.c.event_id))).scalar() or 0)

    # -- verbs ----------------------------------------------------------------------------------

    def change_job(self, job_id: str, verb: str, reason: str = "") -> job_pb2.Job:
        """Applies a lifecycle verb (cancel, hold, release, retry) in one transaction."""

        def work(cursor: Any) -> job_pb2.Job:
            tx = DriverTx.of(cursor, self.db)
            buffer = Buffer(now_micros())
            change = Change.load(tx, buffer, job_id)
            if change is None:
                raise errors.not_found("job", f"jobs/{job_id}")
            try:
                if verb == "cancel":
                    change.cancel(reason)
                elif verb == "hold":
                    change.hold(reason)
                elif verb == "release":
                    change.release()
                elif verb == "retry":
                    change.retry()
                else:
                    raise ValueError(verb)
            except TransitionRefused as refused:
                state = job_pb2.JobState.Name(change.job["state"])
                raise errors.invalid_transition(f"cannot {verb} job {job_id} in state {state}: {refused}",
                                                f"jobs/{job_id}", state) from None
            buffer.flush(tx)
            return job_message(change.job, change.steps)

        job = self.db.run_raw(work)
        self._on_outbox()
        return job

    # -- status reports -------------------------------------------------------------------------

    def apply_updates(self, tx: DriverTx, updates: Sequence[status_pb2.StatusUpdate],
                      result: ReportResult, lock_order: Sequence[str] = (),
                      sites: Sequence[str] | None = None) -> set[int]:
        """Applies status updates in order inside the caller's transaction, each at most once.

        Returns the positions of updates for unknown jobs or malformed step ids, and, when ``sites``
        names the reporting site of each update, of updates for steps that target another site (their
        messages are dead-lettered by the caller). Jobs in ``lock_order`` are loaded and locked
        first, in id order, with two statements."""
        from .ids import parse_step_id
        buffer = Buffer(now_micros())
        changes: dict[str, Change | None] = Change.load_many(tx, buffer, list(lock_order))
        unknown: set[int] = set()
        outcomes: Counter[str] = Counter()
        for position, status in enumerate(updates):
            parsed = parse_step_id(status.step_id)
            if parsed is None:
                unknown.add(position)
                continue
            job_id, index = parsed
            if job_id not in changes:
                changes[job_id] = Change.load(tx, buffer, job_id)
            change = changes[job_id]
            if change is None or index >= len(change.steps):
                unknown.add(position)
                continue
            step = change.steps[index]
            if sites is not None and step["target_site"] != sites[position]:
                unknown.add(position)
                continue
            outcomes[tracing.observe_update(functools.partial(self._apply_one, change, step, status, result),
                                            change.job, step, status, result)] += 1
        result.unknown += len(unknown)
        result.enveloped += len(buffer.outbox)
        metrics.record_ingestion(outcomes, [update.time.ToMicroseconds() / 1e6 if update.HasField("time") else 0.0
                                            for position, update in enumerate(updates) if position not in unknown])
        buffer.flush(tx)
        return unknown

    def _apply_one(self, change: Change, step: Record, status: status_pb2.StatusUpdate, result: ReportResult) -> None:
        if status.attempt < step["attempt"]:
            result.stale += 1
            return
        if status.attempt > step["attempt"] or status.sequence <= step["report_sequence"]:
            # A future attempt cannot exist yet; an old sequence was applied (or overtaken) before.
            result.duplicates += 1
            return
        details: Record = {"report_sequence": status.sequence}
        if status.scheduler_id:
            details["scheduler_id"] = status.scheduler_id
        if status.HasField("exit_code"):
            details["exit_code"] = status.exit_code
        target = status.state
        if target == step["state"]:
            change.update_step_details(step, **details)
            result.applied += 1
            return
        try:
            if target == S.STEP_STATE_FAILED:
                details["failed_phase"] = status.failed_phase
            change.set_step_state(step, target, status.reason, **details)
        except TransitionRefused as refused:
            with self._lock:
                self.refused_transitions += 1
            result.refused += 1
            log.warning("refused status update %s attempt %d seq %d: %s", status.step_id, status.attempt,
                        status.sequence, refused)
            change.update_step_details(step, report_sequence=status.sequence)
            return
        result.applied += 1
        try:
            change.progress(step)
        except TransitionRefused as refused:
            with self._lock:
                self.refused_transitions += 1
            log.warning("job %s not moved on after %s: %s", change.job["id"], status.step_id, refused)

