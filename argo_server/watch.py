"""The WatchJobs poller: one query of job_events for all watchers of this server.

Watching works across replicas because it reads the shared job_events table, not in-process
notifications. Event ids come from a sequence; on PostgreSQL and MySQL a transaction that took a smaller
id may commit after one that took a larger id, so ids skipped by a poll are looked for again for a few
seconds (``GAP_WAIT``) before they are given up as rolled back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from argobalsam.argo.v1 import job_pb2

from .store import JobStore

log = logging.getLogger(__name__)

GAP_WAIT = 5.0
MAX_GAPS = 10_000


class Subscription:
    """One watcher's queue of event batches."""

    def __init__(self, job_id: str | None) -> None:
        self.job_id = job_id
        self._queue: queue.Queue[list[job_pb2.JobEvent]] = queue.Queue(maxsize=10_000)

    def put(self, events: list[job_pb2.JobEvent]) -> None:
        """Adds a batch; a watcher too slow to keep up loses batches rather than the server's memory."""
        try:
            self._queue.put_nowait(events)
        except queue.Full:
            log.warning("watcher of %s is too slow; dropped %d events", self.job_id or "all jobs", len(events))

    def get(self, timeout: float) -> list[job_pb2.JobEvent] | None:
        """The next batch, or None after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


class EventPoller:
    """Polls job_events while anyone watches and hands new events to every subscription."""

    def __init__(self, store: JobStore, interval: float = 0.1) -> None:
        self.store = store
        self.interval = interval
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_id: int | None = None
        self._gaps: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, name="watch-poller", daemon=True)

    @property
    def stopped(self) -> bool:
        """Whether the poller was stopped (open watches end)."""
        return self._stop.is_set()

    def start(self) -> None:
        """Starts the polling thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stops the polling thread."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def subscribe(self, job_id: str | None) -> Subscription:
        """A new subscription; it receives every event committed from now on."""
        subscription = Subscription(job_id)
        with self._lock:
            if self._last_id is None:
                self._last_id = self.store.last_event_id()
                self._gaps.clear()
            self._subscriptions.add(subscription)
        self._wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Ends a subscription."""
        with self._lock:
            self._subscriptions.discard(subscription)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                active = bool(self._subscriptions)
                if not active:
                    self._last_id = None
            if not active:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self.poll_once()
            except Exception:
                log.exception("polling job events failed; retrying")
                self._stop.wait(1.0)
            self._stop.wait(self.interval)

    def poll_once(self) -> None:
        """Reads new events (and late ones that filled gaps) and distributes them."""
        with self._lock:
            last = self._last_id
            gaps = list(self._gaps)
        if last is None:
            return
        events = self.store.events_after(last, limit=1000)
        if gaps and self.store.db.dialect != "sqlite":
            events = self.store.events_in(gaps) + events
        if not events:
            self._expire_gaps()
            return
        now = time.monotonic()
        with self._lock:
            highest = last
            for event in sorted(events, key=lambda e: e.event_id):
                self._gaps.pop(event.event_id, None)
                if event.event_id > highest:
                    for missing in range(highest + 1, event.event_id):
                        if len(self._gaps) < MAX_GAPS:
                            self._gaps[missing] = now
                    highest = event.event_id
            self._last_id = highest
            subscriptions = list(self._subscriptions)
        self._expire_gaps()
        ordered = sorted(events, key=lambda e: e.event_id)
        for subscription in subscriptions:
            subscription.put(ordered)

    def _expire_gaps(self) -> None:
        deadline = time.monotonic() - GAP_WAIT
        with self._lock:
            for event_id in [e for e, seen in self._gaps.items() if seen < deadline]:
                del self._gaps[event_id]
