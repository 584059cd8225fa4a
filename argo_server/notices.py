"""E-mail notices: the owner hears about a job when it ends (and, if asked, at every change).

The seed mailed its users when a job finished, with the job's details. Here a notice is rendered
from the job's protobuf resource and sent from a background thread, so a slow or failing mail server
never delays job processing: sending is retried a few times with backoff, then logged and dropped.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

from argobalsam.argo.v1 import job_pb2

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
    #: Attempts per message, and the first backoff in seconds (doubled each time).
    attempts: int = 3
    backoff: float = 1.0
    timeout: float = 10.0

    @property
    def enabled(self) -> bool:
        """Whether notices are sent at all."""
        return bool(self.host)


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
        event is not None and job.state not in TERMINAL_JOB_STATES and event.step_index >= 0) else state
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

    def wants(self, job: job_pb2.Job, event: job_pb2.JobEvent | None) -> bool:
        """Whether this change of ``job`` deserves a notice under the configuration."""
        if not self.config.enabled or not job.email_address:
            return False
        if job.state in TERMINAL_JOB_STATES and (event is None or event.step_index < 0
                                                 or event.job_state in TERMINAL_JOB_STATES):
            return True
        return self.config.notify == "every" or job.notify_every_change

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
