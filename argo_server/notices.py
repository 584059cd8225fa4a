"""E-mail notices: the owner hears about a job when it ends (and, if asked, at every change).

The seed mailed its users when a job finished, with the job's details. Here a notice is rendered
from the job's protobuf resource and sent from a background thread, so a slow or failing mail server
never delays job processing: sending is retried a few times with backoff, then logged and dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import smtplib
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from argobalsam.argo.v1 import job_pb2
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from .models import MailNotice
from .store import JobStore
from .watch import EventPoller, Subscription

log = logging.getLogger(__name__)

TERMINAL_JOB_STATES = frozenset({job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED,
                                 job_pb2.JOB_STATE_CANCELLED, job_pb2.JOB_STATE_REJECTED})


@dataclass(frozen=True)
class MailConfig:
    """SMTP settings from the server configuration (``mail:`` section)."""

    #: SMTP host; empty disables notices.
    host: str = ""
    port: int = 25
    #: ``none``, ``starttls`` or ``ssl`` (implicit TLS, usually port 465).
    tls: str = "none"
    username: str = ""
    password: str = ""
    #: CA bundle to verify the server with (default: the system's).
    ca_file: str = ""
    sender: str = "argo@localhost"
    #: ``terminal`` (default) or ``every`` change; a job's ``notify_every_change`` also asks for every.
    notify: str = "terminal"
    #: Owners who get a notice at every change of each of their jobs.
    every_change_owners: tuple[str, ...] = ()
    #: Attempts per message, and the first backoff in seconds (doubled each time).
    attempts: int = 3
    backoff: float = 1.0
    timeout: float = 10.0

    @property
    def enabled(self) -> bool:
        """Whether notices are sent at all."""
        return bool(self.host)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> MailConfig:
        """The ``mail:`` section of the server configuration; an unknown or ill-typed key is an error."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - set(fields))
        if unknown:
            raise ValueError(f"mail: unknown settings {unknown}; valid: {sorted(fields)}")
        values: dict[str, Any] = {}
        for key, value in settings.items():
            default = getattr(cls, key)
            try:
                values[key] = tuple(value) if isinstance(default, tuple) else type(default)(value)
            except (TypeError, ValueError):
                raise ValueError(f"mail.{key}: expected {type(default).__name__}, got {value!r}") from None
        if values.get("tls", "none") not in ("none", "starttls", "ssl"):
            raise ValueError(f"mail.tls: must be none, starttls or ssl, not {values['tls']!r}")
        if values.get("notify", "terminal") not in ("terminal", "every"):
            raise ValueError(f"mail.notify: must be terminal or every, not {values['notify']!r}")
        return cls(**values)


def _state(value: int, enum: type) -> str:
    name: str = enum.Name(value)  # type: ignore[attr-defined]
    return name.split("_STATE_", 1)[-1]


def _time(ts) -> str:  # type: ignore[no-untyped-def]
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC") if ts.seconds else "-"


def render_notice(job: job_pb2.Job, sender: str, event: job_pb2.JobEvent | None = None) -> EmailMessage:
    """Builds the notice for ``job``: outcome, each step's site, state, scheduler id, exit code, times,
    and where the outputs are."""
    state = _state(job.state, job_pb2.JobState)
    job_id = job.name.removeprefix("jobs/")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = job.email_address
    what = f"step {event.step_index} {_state(event.step_state, job_pb2.StepState)}" if (
        event is not None and event.step_index >= 0) else state
    msg["Subject"] = f"ARGO job {job_id} {what}"
    lines = [
        f"Job {job.name} ({job.group_identifier or 'no group'}) is {state}.",
        f"Owner: {job.owner}",
        f"Created: {_time(job.create_time)}   Ended: {_time(job.end_time)}",
    ]
    if job.state_reason:
        lines.append(f"Reason: {job.state_reason}")
    lines += ["", "Steps:"]
    for step in job.steps:
        program = step.executable or (step.executable_args[0] if step.executable_args else "")
        exit_code = str(step.exit_code) if step.HasField("exit_code") else "-"
        lines.append(
            f"  {step.index}. {program} on {step.target_site}: {_state(step.state, job_pb2.StepState)}"
            f" (attempt {step.attempt}, scheduler id {step.scheduler_id or '-'}, exit code {exit_code})")
        lines.append(f"     started {_time(step.start_time)}, ended {_time(step.end_time)}")
        if step.state_reason:
            phase = _state(step.failed_phase, job_pb2.StepPhase).removeprefix("STEP_PHASE_")
            lines.append(f"     {phase.lower() if step.failed_phase else 'note'}: {step.state_reason}")
    lines += ["", "Outputs:"]
    if job.data_url:
        lines.append(f"  data area: {job.data_url}")
    if job.output_url:
        lines.append(f"  output URL: {job.output_url}")
    if job.steps:
        lines.append("  files: " + ", ".join(job.steps[-1].output_files))
    msg.set_content("\n".join(lines) + "\n")
    return msg


class Mailer:
    """Sends notices from one background thread; :meth:`notify` never blocks the caller."""

    def __init__(self, config: MailConfig, max_backlog: int = 10_000) -> None:
        self.config = config
        self._queue: queue.Queue[EmailMessage | None] = queue.Queue(max_backlog)
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def wants_every_change(self, job: job_pb2.Job) -> bool:
        """Whether ``job``'s owner asked for a notice at every change (per job, per user or for all)."""
        return (self.config.notify == "every" or job.notify_every_change
                or job.owner in self.config.every_change_owners)

    def wants(self, job: job_pb2.Job, event: job_pb2.JobEvent | None) -> bool:
        """Whether this change of ``job`` deserves a notice under the configuration.

        Without an event, the job's current state decides; with one, only the job-level event that made
        the job terminal (not the late step reports that follow it) or, when asked, every event."""
        if not self.config.enabled or not job.email_address:
            return False
        if event is None:
            return job.state in TERMINAL_JOB_STATES or self.wants_every_change(job)
        if event.step_index < 0 and event.job_state in TERMINAL_JOB_STATES:
            return True
        return self.wants_every_change(job)

    def notify(self, job: job_pb2.Job, event: job_pb2.JobEvent | None = None) -> None:
        """Queues a notice for ``job`` if :meth:`wants` says so."""
        if not self.wants(job, event):
            return
        self.start()
        try:
            self._queue.put_nowait(render_notice(job, self.config.sender, event))
        except queue.Full:
            self.dropped += 1
            log.error("mail backlog full: notice for %s dropped", job.name)

    def start(self) -> None:
        """Starts the sending thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="argo-mailer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Sends what is queued (within ``timeout``) and stops the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until the backlog is empty; returns False on timeout (tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _run(self) -> None:
        while True:
            msg = self._queue.get()
            try:
                if msg is None:
                    return
                self._send_with_retries(msg)
            finally:
                self._queue.task_done()

    def _send_with_retries(self, msg: EmailMessage) -> None:
        delay = self.config.backoff
        for attempt in range(1, self.config.attempts + 1):
            try:
                self._send(msg)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("sending notice %r to %s failed (attempt %d/%d): %s", msg["Subject"], msg["To"],
                            attempt, self.config.attempts, exc)
                if attempt < self.config.attempts:
                    time.sleep(delay)
                    delay *= 2
            else:
                self.sent += 1
                return
        self.failed += 1
        log.error("notice %r to %s not sent after %d attempts", msg["Subject"], msg["To"], self.config.attempts)

    def _send(self, msg: EmailMessage) -> None:
        c = self.config
        context = ssl.create_default_context(cafile=c.ca_file or None)
        smtp: smtplib.SMTP
        if c.tls == "ssl":
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=context)
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        with smtp:
            if c.tls == "starttls":
                smtp.starttls(context=context)
            if c.username:
                smtp.login(c.username, c.password)
            smtp.send_message(msg)


class NoticeDispatcher:
    """Turns committed job events into notices, once across all server replicas.

    It follows the job_events table through the WatchJobs poller (so it sees changes made by every
    replica) and claims each notice by inserting its event id into ``mail_notices``: the replica whose
    insert succeeds sends it.
    """

    def __init__(self, store: JobStore, poller: EventPoller, mailer: Mailer) -> None:
        self.store = store
        self.poller = poller
        self.mailer = mailer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="argo-notices", daemon=True)
        self._subscription: Subscription | None = None

    def start(self) -> None:
        """Subscribes to job events and starts the dispatching thread."""
        self._subscription = self.poller.subscribe(None)
        self.mailer.start()
        self._thread.start()

    def stop(self) -> None:
        """Stops dispatching and sends what the mailer still holds."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._subscription is not None:
            self.poller.unsubscribe(self._subscription)
        self.mailer.stop()

    def _run(self) -> None:
        assert self._subscription is not None
        while not self._stop.is_set():
            events = self._subscription.get(timeout=0.5)
            if not events:
                continue
            try:
                self.dispatch(events)
            except Exception:  # a broken database or mail path must not stop the loop
                log.exception("dispatching notices failed for %d events", len(events))

    def dispatch(self, events: list[job_pb2.JobEvent]) -> None:
        """Queues the notices these events call for (each claimed once across replicas)."""
        jobs = self.store.get_jobs(sorted({e.job.removeprefix("jobs/") for e in events}))
        for event in events:
            job = jobs.get(event.job.removeprefix("jobs/"))
            if job is not None and self.mailer.wants(job, event) and self._claim(event):
                self.mailer.notify(job, event)

    def _claim(self, event: job_pb2.JobEvent) -> bool:
        try:
            with self.store.db.write() as connection:
                connection.execute(insert(MailNotice).values(
                    event_id=event.event_id, job_id=event.job.removeprefix("jobs/"),
                    claim_time=int(time.time() * 1_000_000)))
        except IntegrityError:
            return False
        return True
