"""The agent: an engine thread that owns the state, worker pools for blocking phases, a poller, and the
two AMQP connections.

Threads and why:

- **engine** (one): takes events from one inbox (assignments, finished work, poll results), applies
  them to the in-memory attempts and the database in *one transaction per batch*, then acks the
  batch's assignments, wakes the publisher and hands new work to the pools. One writer keeps the
  state consistent without locks; batching keeps the per-step cost small.
- **workers** (a pool for hooks and scheduler commands, a pool of ``max_concurrent_transfers`` for
  transfers): a slow transfer, hook or command occupies one thread, never the engine.
- **poller** (one): one ``SchedulerBackend.poll(ids)`` call per cycle for every attempt waiting at the
  scheduler, woken early by the backend's ``state_changed`` callback; when the backend names the jobs
  that changed, the early poll asks about those only.
- **consumer** / **publisher**: :mod:`balsam_agent.amqp`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from argobalsam.argo.v1 import job_pb2, site_pb2
from argobalsam.balsam.v1 import assignment_pb2, status_pb2
from google.protobuf import message as protobuf_message

from balsam_agent import __version__
from balsam_agent.amqp import AssignmentConsumer, StatusPublisher
from balsam_agent.amqp_connect import configure_links
from balsam_agent.config import AgentConfig, resolve_site
from balsam_agent.lifecycle import (
    FAILED_PHASE,
    PhaseFailed,
    PhaseRunner,
    StepRun,
    effective_wall_minutes,
    next_phase,
    program_argv,
    url_scheme,
)
from balsam_agent.plugin_manager import Plugins, get_plugin_manager
from balsam_agent.records import SiteProfile
from balsam_agent.safety import (
    Rejected,
    check_limits,
    check_names,
    resolve_hook,
    safe_component,
)
from balsam_agent.scheduler import SchedulerBackend, SchedulerError, SchedulerJobStatus, SchedulerState
from balsam_agent.state import OutboxReader, StateStore
from balsam_agent.tracing import StepTracing, adopt_headers
from balsam_agent.transfer import TransferBackend, TransferError, check_url

log = logging.getLogger(__name__)

S = job_pb2  # StepState / StepPhase constants
#: Poll cycles a submitted job may be missing from the scheduler before the step fails.
MAX_POLL_MISSES = 30
#: Seconds between purges of ended attempts (see ``AgentConfig.retention_days``).
PURGE_INTERVAL = 3600.0
_STOP = object()
_BATCH_TYPE = assignment_pb2.AssignmentBatch.DESCRIPTOR.full_name


def _well_formed(envelope: assignment_pb2.AssignmentEnvelope) -> bool:
    return bool(envelope.step_id) and envelope.WhichOneof("action") is not None and envelope.attempt >= 1


#: Phases that may be an attempt's first work: the first one this process runs makes the working directory.
_PHASES_BEFORE_RUN = frozenset({"stage_in", "preprocess", "submit"})


@dataclasses.dataclass
class _Delivery:
    body: bytes
    tag: int
    generation: int
    received: float
    #: AMQP headers (the W3C trace context of the server's publish).
    headers: Any = None
    #: AMQP type: an AssignmentBatch holds several envelopes; anything else is read as one envelope.
    message_type: Any = None


@dataclasses.dataclass
class _WorkDone:
    run: StepRun
    kind: str
    result: Any = None
    error: str | None = None


@dataclasses.dataclass
class _PollDone:
    statuses: dict[str, SchedulerJobStatus]
    polled: list[str]
    #: ``time.time()`` when the poll started (the start of a ``balsam.poll`` span).
    started: float = 0.0


class Agent:
    """One site's agent, embeddable: ``Agent(config).start()``, ``wait_idle()``, ``stop()``."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        pm = get_plugin_manager(load_entry_points=config.load_entry_points, extra_plugins=config.extra_plugins)
        self.plugins = Plugins(pm)
        self.site: SiteProfile = resolve_site(config, self.plugins.sites)
        configure_links(config)  # TLS settings that cannot work fail here, before anything starts
        scheduler_class = self.plugins.scheduler(self.site.scheduler)
        self.scheduler: SchedulerBackend = scheduler_class(self.site)
        self._transfer_backends: dict[str, TransferBackend] = {}
        self._transfer_lock = threading.Lock()
        self.phases = PhaseRunner(self.site, self.plugins, self.scheduler, self._transfer)
        self._plugin_infos = [site_pb2.PluginInfo(name=d.name, version=d.version, hooks=list(d.hooks))
                              for d in self.plugins.describe()]
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._runs: dict[str, StepRun] = {}
        self._poll_ids: dict[str, StepRun] = {}
        #: Scheduler ids the backend reported changed since the last poll (``_poll_everything``: it asked
        #: for a poll of all of them).
        self._changed_ids: set[str] = set()
        self._poll_everything = False
        self._poll_lock = threading.Lock()
        self._poll_wake = threading.Event()
        self._poll_consumed = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._pending_events = 0
        self._next_purge = 0.0
        #: Number of ``poll`` calls made (one per cycle), for tests and benchmarks.
        self.poll_calls = 0
        self._store: StateStore | None = None
        self._outbox: OutboxReader | None = None
        self._consumer: AssignmentConsumer | None = None
        self._publisher: StatusPublisher | None = None
        self._threads: list[threading.Thread] = []
        self._workers = concurrent.futures.ThreadPoolExecutor(config.workers, thread_name_prefix="balsam-work")
        self._transfer_pool = concurrent.futures.ThreadPoolExecutor(
            max(1, self.site.max_concurrent_transfers), thread_name_prefix="balsam-transfer")
        self._started = False
        self._hostname = socket.gethostname()
        self.tracing = StepTracing(self.site.name)

    # --- public API ---

    def start(self) -> None:
        """Opens the database, resumes unfinished attempts, connects to the broker and starts."""
        if self._started:
            return
        self._started = True
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        Path(self.site.work_root).mkdir(parents=True, exist_ok=True)
        self._store = StateStore(self.config.database_path, self.config.sqlite_synchronous)
        self._outbox = OutboxReader(self.config.database_path, self.config.sqlite_synchronous)
        self.scheduler.state_changed = self._state_changed
        self._publisher = StatusPublisher(
            self.config.amqp_url, self.config.amqp_prefix, self.site.name,
            read_batch=self._outbox.unsent, mark_sent=self._outbox.mark_sent, heartbeat=self.heartbeat,
            heartbeat_interval=self.config.heartbeat_interval, linger=self.config.report_linger)
        self._consumer = AssignmentConsumer(self.config.amqp_url, self.config.amqp_prefix, self.site.name,
                                            self.config.prefetch, self._on_delivery)
        configure_links(self.config, self._consumer, self._publisher)
        self._recover()
        for target, name in ((self._engine, "balsam-engine"), (self._poller, "balsam-poller")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._publisher.start()
        self._consumer.start()
        log.info("agent for site %s started (scheduler %s, %d attempts resumed)", self.site.name,
                 self.site.scheduler, len(self._runs))

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Waits until both broker connections are up (the assignment queue is declared)."""
        assert self._consumer is not None and self._publisher is not None
        return self._consumer.connected.wait(timeout) and self._publisher.connected.wait(timeout)

    @property
    def broker_refusal(self) -> str | None:
        """Why the broker refused this agent for good (login, permissions, certificate), or None."""
        links = (self._consumer, self._publisher)
        return next((link.refusal for link in links if link is not None and link.refusal), None)

    def active_steps(self) -> int:
        """Attempts not yet terminal."""
        return len(self._runs)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Waits until no attempt is active, no event is pending and every update was confirmed."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._runs or self._pending_events:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.1))
        conn = sqlite3.connect(self.config.database_path, timeout=30)
        try:
            while conn.execute("SELECT COUNT(*) FROM outbox WHERE sent IS NULL").fetchone()[0]:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
        finally:
            conn.close()
        return True

    def stop(self) -> None:
        """Stops consuming, finishes the current batch, flushes the outbox and closes everything.

        Processes of the local scheduler and jobs at batch schedulers keep running: a restarted agent
        re-attaches to them.
        """
        if not self._started:
            return
        self._stopping.set()
        if self._consumer is not None:
            self._consumer.stop()
        self._inbox.put(_STOP)
        self._poll_wake.set()
        self._poll_consumed.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._transfer_pool.shutdown(wait=False, cancel_futures=True)
        if self._publisher is not None:
            self._publisher.stop()
        self.scheduler.close()
        for backend in self._transfer_backends.values():
            backend.close()
        if self._store is not None:
            self._store.close()
        if self._outbox is not None:
            self._outbox.close()
        self.tracing.close()
        self._started = False

    def heartbeat(self, stopping: bool = False) -> status_pb2.AgentReport:
        """The heartbeat report: version, host, plugins, capacity and load."""
        report = status_pb2.AgentReport(site=self.site.name)
        beat = report.heartbeat
        beat.agent_version = __version__
        beat.hostname = self._hostname
        beat.scheduler = self.site.scheduler
        beat.plugins.extend(self._plugin_infos)
        beat.capacity.max_queued_steps = self.site.max_queued_steps
        beat.capacity.max_nodes = self.site.max_nodes
        beat.capacity.max_wall_minutes = self.site.max_wall_minutes
        beat.capacity.active_steps = len(self._runs)
        beat.time.GetCurrentTime()
        beat.stopping = stopping
        return report

    # --- helpers used by threads ---

    def _transfer(self, scheme: str) -> TransferBackend:
        with self._transfer_lock:
            backend = self._transfer_backends.get(scheme)
            if backend is None:
                backend = self.plugins.transfer(scheme)(self.site)
                self._transfer_backends[scheme] = backend
            return backend

    def _on_delivery(self, body: bytes, tag: int, generation: int, headers: Any = None,
                     message_type: Any = None) -> None:
        with self._idle:
            self._pending_events += 1
        self._inbox.put(_Delivery(body, tag, generation, time.monotonic(), headers, message_type))

    def _post(self, event: Any) -> None:
        with self._idle:
            self._pending_events += 1
        self._inbox.put(event)

    # --- recovery ---

    def _recover(self) -> None:
        assert self._store is not None
        runs = [StepRun.from_row(row) for row in self._store.active_steps()]
        self._batch_begin()
        self._store.begin()
        for run in sorted(runs, key=lambda r: r.attempt):
            previous = self._runs.get(run.step_id)
            if previous is not None:
                self._finish(previous, S.STEP_STATE_CANCELLED, f"superseded by attempt {run.attempt}")
            self._runs[run.step_id] = run
            if run.cancel_requested:
                self._cancel(run, "cancelled")
            elif run.phase == "run":
                self._watch(run)
            else:
                self._advance(run)
        self._purge_if_due()
        self._batch_end()

    # --- engine ---

    def _engine(self) -> None:
        while True:
            event = self._inbox.get()
            batch = [event]
            while len(batch) < 2000:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            batch = [item for item in batch if item is not _STOP]
            if batch:
                self._run_batch(batch)
            if stop:
                return

    def _batch_begin(self) -> None:
        self._dirty: dict[int, StepRun] = {}
        self._updates: list[bytes] = []
        self._acks: list[tuple[int, int, bool]] = []
        self._work: list[tuple[StepRun, str, Callable[[], Any], bool]] = []

    def _batch_end(self) -> None:
        assert self._store is not None
        now = time.time()
        for run in self._dirty.values():
            run.updated = now
            self._store.save_step(run.to_row())
        if self._updates:
            self._store.add_outbox(self._updates)
        self._store.commit()
        # Only now, with the batch durable, may the broker forget the assignments.
        if self._consumer is not None:
            # Acks are cumulative (multiple=True): one ack for each run of accepted deliveries.
            pending: tuple[int, int] | None = None
            for tag, generation, ok in self._acks:
                if ok:
                    if pending is not None and pending[1] != generation:
                        self._consumer.ack(*pending)
                    pending = (tag, generation)
                    continue
                if pending is not None:
                    self._consumer.ack(*pending)
                    pending = None
                self._consumer.reject(tag, generation)
            if pending is not None:
                self._consumer.ack(*pending)
        if self._updates and self._publisher is not None:
            self._publisher.wake()
        for run, kind, fn, is_transfer in self._work:
            pool = self._transfer_pool if is_transfer else self._workers
            try:
                pool.submit(self._do_work, run, kind, fn)
            except RuntimeError:
                pass  # shutting down: the attempt resumes from its recorded phase at the next start

    def _run_batch(self, batch: list[Any]) -> None:
        assert self._store is not None
        self._batch_begin()
        self._store.begin()
        try:
            for event in batch:
                try:
                    if isinstance(event, _Delivery):
                        self._on_envelope(event)
                    elif isinstance(event, _WorkDone):
                        self._on_work_done(event)
                    elif isinstance(event, _PollDone):
                        self._on_poll(event)
                except Exception:
                    log.exception("agent engine failed on %r", type(event).__name__)
            self._purge_if_due()
            self._batch_end()
        except Exception:
            log.exception("agent engine could not commit a batch; it is retried from the broker and the database")
            self._store.rollback()
        finally:
            with self._idle:
                self._pending_events -= len(batch)
                self._idle.notify_all()

    def _purge_if_due(self) -> None:
        """Deletes ended attempts older than ``retention_days``, at most once per purge interval."""
        assert self._store is not None
        now = time.monotonic()
        if now < self._next_purge:
            return
        retention = self.config.retention_days * 86400.0
        self._next_purge = now + min(PURGE_INTERVAL, max(retention / 2, 1.0))
        deleted = self._store.purge_ended(retention)
        if deleted:
            log.info("deleted %d attempts that ended more than %g days ago", deleted, self.config.retention_days)

    def _do_work(self, run: StepRun, kind: str, fn: Callable[[], Any]) -> None:
        try:
            if kind in _PHASES_BEFORE_RUN and not run.workdir_ready:
                self._prepare_workdir(run)
                run.workdir_ready = True
            with self.tracing.work(run, kind):
                result = fn()
        except PhaseFailed as exc:
            self._post(_WorkDone(run, kind, error=str(exc)))
        except SchedulerError as exc:
            self._post(_WorkDone(run, kind, error=str(exc)))
        except Exception as exc:
            log.exception("phase %s of %s failed unexpectedly", kind, run.step_id)
            self._post(_WorkDone(run, kind, error=f"{type(exc).__name__}: {exc}"))
        else:
            self._post(_WorkDone(run, kind, result=result))

    def _start_work(self, run: StepRun, kind: str, fn: Callable[[], Any], *, transfer: bool = False) -> None:
        run.busy = True
        self._work.append((run, kind, fn, transfer))

    def _touch(self, run: StepRun) -> None:
        self._dirty[id(run)] = run

    def _report(self, run: StepRun, state: int, *, reason: str = "", failed_phase: int = 0,
                exit_code: int | None = None) -> None:
        """Records a status update of the attempt in the outbox (same transaction as its state)."""
        run.sequence += 1
        run.state = state
        update = status_pb2.StatusUpdate(step_id=run.step_id, attempt=run.attempt, sequence=run.sequence,
                                         state=state, failed_phase=failed_phase, reason=reason,  # type: ignore[arg-type]
                                         scheduler_id=run.scheduler_id)
        if exit_code is not None:
            update.exit_code = exit_code
        update.time.GetCurrentTime()
        self.tracing.report(run, update)  # its span's context goes with the update
        self._updates.append(update.SerializeToString())
        self._touch(run)

    def _finish(self, run: StepRun, state: int, reason: str = "", *, failed_phase: int = 0,
                exit_code: int | None = None) -> None:
        self._report(run, state, reason=reason, failed_phase=failed_phase, exit_code=exit_code)
        self.tracing.finish(run, state, reason)
        run.terminal = True
        self._unwatch(run)
        if self._runs.get(run.step_id) is run:
            del self._runs[run.step_id]

    def _fail(self, run: StepRun, phase: str, reason: str, *, exit_code: int | None = None,
              timed_out: bool = False) -> None:
        self._finish(run, S.STEP_STATE_FAILED, reason, failed_phase=FAILED_PHASE.get(phase, 0),
                     exit_code=exit_code)
        context = self.phases.context(run)

        def observe() -> None:
            if timed_out:
                self.plugins.step_timeout(context)
            self.plugins.step_error(context, phase, reason)

        try:
            self._workers.submit(observe)
        except RuntimeError:
            pass

    # --- envelopes ---

    def _on_envelope(self, delivery: _Delivery) -> None:
        """One message: an envelope, or an AssignmentBatch whose envelopes are taken in order."""
        batch = delivery.message_type == _BATCH_TYPE
        try:
            if batch:
                envelopes = list(assignment_pb2.AssignmentBatch.FromString(delivery.body).envelopes)
            else:
                envelopes = [assignment_pb2.AssignmentEnvelope.FromString(delivery.body)]
        except protobuf_message.DecodeError:
            log.warning("dead-lettering a malformed assignment%s (%d bytes)", " batch" * batch, len(delivery.body))
            self._acks.append((delivery.tag, delivery.generation, False))
            return
        if not batch and not _well_formed(envelopes[0]):
            log.warning("dead-lettering an assignment without step, attempt or action: %s", envelopes[0].step_id)
            self._acks.append((delivery.tag, delivery.generation, False))
            return
        self._acks.append((delivery.tag, delivery.generation, True))
        for envelope in envelopes:
            if batch and not _well_formed(envelope):  # (a lone envelope was checked above)
                # The batch's other envelopes are good: they are taken, and this one is only logged.
                log.warning("ignoring an assignment without step, attempt or action in a batch: %s",
                            envelope.step_id)
                continue
            self._take_envelope(envelope, delivery.headers if not batch else None)

    def _take_envelope(self, envelope: assignment_pb2.AssignmentEnvelope, headers: Any) -> None:
        assert self._store is not None
        action = envelope.WhichOneof("action")
        if self._store.seen_envelope(envelope.step_id, envelope.attempt, envelope.sequence):
            log.info("ignoring duplicate envelope %s a%d #%d", envelope.step_id, envelope.attempt, envelope.sequence)
            return
        current = self._runs.get(envelope.step_id)
        latest = current.attempt if current is not None else self._store.latest_attempt(envelope.step_id)
        if envelope.attempt < latest:
            log.info("ignoring stale envelope %s a%d (current attempt %d)", envelope.step_id, envelope.attempt, latest)
            return
        if action == "assign":
            if envelope.attempt == latest:
                log.info("ignoring repeated assignment of %s a%d", envelope.step_id, envelope.attempt)
                return
            if current is not None:
                self._cancel(current, f"superseded by attempt {envelope.attempt}")
            adopt_headers(envelope, headers)
            self._accept(envelope)
            return
        if current is None or current.attempt != envelope.attempt:
            log.info("ignoring %s for %s a%d: not active here", action, envelope.step_id, envelope.attempt)
            return
        if action == "cancel":
            self._cancel(current, envelope.cancel.reason or "cancelled")
        elif action == "hold":
            self._hold(current, envelope.hold.reason)
        elif action == "release":
            self._release(current)

    def _check(self, envelope: assignment_pb2.AssignmentEnvelope) -> None:
        """The agent's checks of an assignment; raises Rejected with the reason."""
        assign = envelope.assign
        step = assign.step
        if envelope.site != self.site.name:
            raise Rejected(f"assignment for site {envelope.site!r} reached the agent of site {self.site.name!r}")
        safe_component(assign.job_id, "job id")
        check_limits(self.site, nodes=max(1, step.nodes), wall_minutes=effective_wall_minutes(step, self.site),
                     active_steps=len(self._runs))
        program_argv(step, self.site)
        for name, what in ((step.preprocess, "pre-process script"), (step.postprocess, "post-process script")):
            if name:
                resolve_hook(name, self.site, self.plugins.process_hooks, what)
        check_names(step.input_files, "input file")
        check_names(step.output_files, "output file")
        check_names((item.name for item in assign.inputs), "input file")
        check_names((item.name for item in assign.outputs), "output file")
        urls = [item.source_url for item in assign.inputs]
        urls += [url for item in assign.outputs for url in item.destination_urls]
        for url in urls:
            try:
                check_url(url, "transfer")
            except TransferError as exc:
                raise Rejected(str(exc)) from None
            scheme = url_scheme(url)
            if scheme not in self.plugins.transfers:
                valid = ", ".join(sorted(self.plugins.transfers))
                raise Rejected(f"no transfer backend for {url!r} (scheme {scheme!r}); this site has: {valid}")

    def _accept(self, envelope: assignment_pb2.AssignmentEnvelope) -> None:
        assign = envelope.assign
        step_index = assign.step.index
        job_id = assign.job_id
        now = time.time()
        run = StepRun(step_id=envelope.step_id, attempt=envelope.attempt, job_id=job_id, step_index=step_index,
                      envelope=envelope, workdir=Path(), created=now, updated=now)
        try:
            self._check(envelope)
        except Rejected as exc:
            run.phase = "done"
            self._finish(run, S.STEP_STATE_REJECTED, str(exc))
            log.info("rejected %s a%d: %s", run.step_id, run.attempt, exc)
            return
        run.workdir = Path(self.site.work_root) / job_id / str(step_index) / str(envelope.attempt)
        self._runs[run.step_id] = run
        self._report(run, S.STEP_STATE_ACCEPTED)
        self._advance(run)

    # --- the pipeline ---

    def _needs(self, run: StepRun, phase: str) -> bool:
        hook = self.plugins.pm.hook
        if phase == "stage_in":
            return bool(run.assign.inputs)
        if phase == "preprocess":
            return bool(run.step.preprocess) or bool(hook.balsam_preprocess.get_hookimpls())
        if phase == "postprocess":
            return bool(run.step.postprocess) or bool(hook.balsam_postprocess.get_hookimpls())
        if phase == "stage_out":
            return bool(run.assign.outputs)
        return True

    def _advance(self, run: StepRun) -> None:
        """Moves an attempt forward until it waits for work, the scheduler, a release or nothing."""
        phases = self.phases
        while not (run.terminal or run.busy or run.held or run.cancel_requested):
            phase = run.phase
            if phase == "accepted":
                # The working directory is made by the worker of the first phase (_do_work), not here:
                # mkdir waits for the file system's journal, and this thread serves every step.
                run.phase = "stage_in"
                self._touch(run)
                continue
            if phase in ("stage_in", "preprocess", "postprocess", "stage_out"):
                if not self._needs(run, phase):
                    run.phase = next_phase(phase)
                    self._touch(run)
                    continue
                state = {"stage_in": S.STEP_STATE_STAGING_IN, "preprocess": S.STEP_STATE_PREPROCESSING,
                         "postprocess": S.STEP_STATE_POSTPROCESSING, "stage_out": S.STEP_STATE_STAGING_OUT}[phase]
                if run.state != state:
                    self._report(run, state)
                work: Callable[[StepRun], None] = getattr(phases, phase)
                self._start_work(run, phase, lambda w=work, r=run: w(r),  # type: ignore[misc]
                                 transfer=phase in ("stage_in", "stage_out"))
                return
            if phase == "submit":
                # The phase "submit" is committed before the worker calls the scheduler: after a crash
                # the attempt is re-adopted by name instead of submitted twice.
                self._touch(run)
                self._start_work(run, "submit", lambda r=run: phases.submit(r))  # type: ignore[misc]
                return
            if phase == "run":
                self._watch(run)
                return
            if phase == "done":
                self._finish(run, S.STEP_STATE_SUCCEEDED, exit_code=run.exit_code)
                return
            raise ValueError(f"unknown phase {phase!r}")

    @staticmethod
    def _prepare_workdir(run: StepRun) -> None:
        # A fresh directory per attempt: leftovers of an earlier agent's crash are removed (a recovered
        # attempt keeps what its earlier phases made).
        if run.workdir.exists() and not run.recovering:
            shutil.rmtree(run.workdir, ignore_errors=True)
        run.workdir.mkdir(parents=True, exist_ok=True)

    def _on_work_done(self, done: _WorkDone) -> None:
        run = done.run
        run.busy = False
        if run.terminal:
            return
        kind = done.kind
        if done.error is not None:
            if kind == "cancel":
                log.warning("cancel of %s at the scheduler failed: %s", run.step_id, done.error)
                self._finish(run, S.STEP_STATE_CANCELLED, f"{done.error}")
            elif kind in ("hold", "release"):
                log.warning("%s of %s at the scheduler failed: %s", kind, run.step_id, done.error)
                if kind == "hold":
                    self._report(run, S.STEP_STATE_HELD, reason=f"hold at the scheduler failed: {done.error}")
                else:
                    self._report(run, run.resume_state)
            elif run.cancel_requested:
                self._finish(run, S.STEP_STATE_CANCELLED, "cancelled")
            else:
                self._fail(run, kind, done.error)
            return
        if kind == "submit":
            run.scheduler_id = str(done.result)
            run.phase = "run"
            run.recovering = False
            self._report(run, S.STEP_STATE_SUBMITTED)
            if run.cancel_requested:
                self._cancel(run, "cancelled")
            elif run.held:
                self._start_work(run, "hold", lambda: self.scheduler.hold(run.scheduler_id))
            else:
                self._watch(run)
            return
        if kind == "cancel":
            self._finish(run, S.STEP_STATE_CANCELLED, "cancelled")
            return
        if kind == "hold":
            self._report(run, S.STEP_STATE_HELD)
            return
        if kind == "release":
            self._report(run, run.resume_state or S.STEP_STATE_RUNNING)
            self._advance(run)
            return
        if run.cancel_requested:
            self._finish(run, S.STEP_STATE_CANCELLED, "cancelled")
            return
        run.phase = next_phase(kind)
        run.recovering = False
        self._touch(run)
        self._advance(run)

    # --- cancel / hold / release ---

    def _cancel(self, run: StepRun, reason: str) -> None:
        run.cancel_requested = True
        run.cancelled.set()
        self._touch(run)
        if run.busy:
            return  # the work in flight ends first; its completion sees cancel_requested
        if run.phase == "run" and run.scheduler_id:
            self._unwatch(run)
            self._start_work(run, "cancel", lambda: self.scheduler.cancel(run.scheduler_id))
        else:
            self._finish(run, S.STEP_STATE_CANCELLED, reason)

    def _hold(self, run: StepRun, reason: str) -> None:
        if run.held:
            return
        run.held = True
        run.resume_state = run.state
        self._touch(run)
        if run.phase == "run" and run.scheduler_id and not run.busy:
            self._start_work(run, "hold", lambda: self.scheduler.hold(run.scheduler_id))
        else:
            self._report(run, S.STEP_STATE_HELD, reason=reason)

    def _release(self, run: StepRun) -> None:
        if not run.held:
            return
        run.held = False
        self._touch(run)
        if run.phase == "run" and run.scheduler_id and not run.busy:
            self._start_work(run, "release", lambda: self.scheduler.release(run.scheduler_id))
        else:
            self._report(run, run.resume_state or S.STEP_STATE_ACCEPTED)
            self._advance(run)

    # --- polling ---

    def _watch(self, run: StepRun) -> None:
        with self._poll_lock:
            self._poll_ids[run.scheduler_id] = run
            changed = run.scheduler_id in self._changed_ids
        if changed:  # its change arrived before the engine watched it (a step that ended at once)
            self._poll_wake.set()

    def _state_changed(self, ids: Any = None) -> None:
        """The backend's callback (see ``SchedulerBackend.state_changed``)."""
        with self._poll_lock:
            if ids is None:
                self._poll_everything = True
            else:
                self._changed_ids.update(ids)
        self._poll_wake.set()

    def _unwatch(self, run: StepRun) -> None:
        if run.scheduler_id:
            with self._poll_lock:
                if self._poll_ids.get(run.scheduler_id) is run:
                    del self._poll_ids[run.scheduler_id]

    def _poll_targets(self, cycle_due: bool) -> list[str]:
        """The ids to poll now: all watched ones once per cycle (or when the backend asks), else the
        watched ones the backend named as changed (the others stay pending until watched)."""
        with self._poll_lock:
            if cycle_due or self._poll_everything:
                self._poll_everything = False
                self._changed_ids.clear()
                return list(self._poll_ids)
            ids = [i for i in self._changed_ids if i in self._poll_ids]
            self._changed_ids.difference_update(ids)
            if len(self._changed_ids) > 10_000:
                self._changed_ids.clear()  # ids of attempts that ended otherwise: the next cycle covers all
            return ids

    def _poller(self) -> None:
        delay = 0.0
        next_cycle = 0.0
        while not self._stopping.is_set():
            self._poll_wake.wait(timeout=max(delay, min(self.site.poll_interval,
                                                        max(0.0, next_cycle - time.monotonic()))))
            self._poll_wake.clear()
            if self._stopping.is_set():
                return
            now = time.monotonic()
            cycle_due = now >= next_cycle
            ids = self._poll_targets(cycle_due)
            if cycle_due:
                next_cycle = now + max(delay, self.site.poll_interval)
            if not ids:
                continue
            started = time.time()
            try:
                statuses = self.scheduler.poll(ids)
                delay = 0.0
            except Exception as exc:
                # Reported in the log, retried with backoff; never raised out of the loop.
                delay = min(60.0, max(1.0, delay * 2))
                log.warning("status poll of %d jobs failed (%s); retrying in %.0fs", len(ids), exc, delay)
                continue
            self.poll_calls += 1
            self._poll_consumed.clear()
            self._post(_PollDone(statuses, ids, started))
            # One poll result in flight at a time: the engine applies it before the next poll.
            self._poll_consumed.wait(timeout=5)

    def _on_poll(self, poll: _PollDone) -> None:
        try:
            for scheduler_id in poll.polled:
                with self._poll_lock:
                    run = self._poll_ids.get(scheduler_id)
                if run is None or run.terminal or run.busy or run.phase != "run":
                    continue
                status = poll.statuses.get(scheduler_id)
                if status is None:
                    run.misses += 1
                    if run.misses >= MAX_POLL_MISSES:
                        self._fail(run, "run", f"scheduler job {scheduler_id} vanished from the scheduler")
                    continue
                run.misses = 0
                before = (run.state, run.phase, run.terminal)
                self._apply_status(run, status)
                if (run.state, run.phase, run.terminal) != before:
                    self.tracing.poll_changed(run, before[0], status.native_state, poll.started)
        finally:
            self._poll_consumed.set()

    def _apply_status(self, run: StepRun, status: SchedulerJobStatus) -> None:
        state = status.state
        if state is SchedulerState.QUEUED or state is SchedulerState.RUNNING:
            wanted = S.STEP_STATE_QUEUED if state is SchedulerState.QUEUED else S.STEP_STATE_RUNNING
            if not run.held and run.state != wanted:
                self._report(run, wanted, reason=status.reason)
        elif state is SchedulerState.HELD:
            if not run.held and run.state != S.STEP_STATE_HELD:
                run.resume_state = run.state
                self._report(run, S.STEP_STATE_HELD, reason=status.reason or "held at the scheduler")
        elif state is SchedulerState.COMPLETED:
            self._unwatch(run)
            run.exit_code = status.exit_code
            run.phase = "postprocess"
            self._touch(run)
            self._advance(run)
        elif state is SchedulerState.FAILED:
            self._unwatch(run)
            reason = status.reason or (f"program exited with code {status.exit_code}"
                                       if status.exit_code is not None else "the scheduler job failed")
            self._fail(run, "run", reason, exit_code=status.exit_code, timed_out=status.timed_out)
        elif state is SchedulerState.CANCELLED:
            self._unwatch(run)
            self._finish(run, S.STEP_STATE_CANCELLED, status.reason or "cancelled at the scheduler")
        else:
            log.warning("scheduler job %s of %s in unknown state %r", run.scheduler_id, run.step_id,
                        status.native_state)
