"""Metrics of the server (OpenTelemetry metrics API; the SDK and the Prometheus reader are set up by
:mod:`argo_server.telemetry`).

| instrument | kind | attributes | Prometheus name |
| --- | --- | --- | --- |
| ``argo.jobs`` | observable gauge | ``state`` | ``argo_jobs`` |
| ``argo.steps`` | observable gauge | ``state`` | ``argo_steps`` |
| ``argo.transitions`` | observable counter | ``kind`` (job, step), ``from``, ``to`` | ``argo_transitions_total`` |
| ``argo.outbox.backlog`` | observable gauge | | ``argo_outbox_backlog`` |
| ``argo.outbox.age`` | observable gauge, s | | ``argo_outbox_age_seconds`` |
| ``argo.status.lag`` | histogram, s | | ``argo_status_lag_seconds`` |
| ``argo.status.updates`` | observable counter | ``outcome`` (applied, duplicate, stale, refused, ignored) | ``argo_status_updates_total`` |

The two counters are tallied in plain dictionaries on the hot paths and handed to the SDK when a reader
collects (an SDK ``add`` costs tens of microseconds; a dictionary increment does not). The gauges are
read from the database when a reader collects (a scrape of ``/metrics``): one grouped count per table,
from every database registered with :func:`register_database`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from argobalsam.argo.v1 import job_pb2
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from sqlalchemy import Table, func, select

log = logging.getLogger(__name__)

meter = metrics.get_meter("argo_server")


class Tally:
    """A monotonic count per attribute set, read by an observable counter's callback."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[tuple[str, str], ...]] = Counter()
        self._lock = threading.Lock()

    def add(self, counts: Mapping[tuple[tuple[str, str], ...], int]) -> None:
        """Adds counts keyed by attribute pairs, e.g. ``{(("outcome", "applied"),): 3}``."""
        with self._lock:
            self._counts.update(counts)

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        """The totals so far, one observation per attribute set."""
        with self._lock:
            totals = list(self._counts.items())
        return [Observation(count, dict(key)) for key, count in totals]


transition_tally = Tally()
status_update_tally = Tally()
meter.create_observable_counter("argo.transitions", [transition_tally.observe], unit="{transition}",
                                description="State transitions applied to jobs and steps")
status_lag = meter.create_histogram("argo.status.lag", unit="s",
                                    description="Time from an agent's status update to its ingestion")
meter.create_observable_counter("argo.status.updates", [status_update_tally.observe], unit="{update}",
                                description="Status updates ingested, by outcome")

_databases: list[Any] = []
_lock = threading.Lock()


def register_database(db: Any) -> None:
    """Adds a server's database to the ones the gauges read (a :class:`argo_server.db.Database`)."""
    with _lock:
        _databases.append(db)


def unregister_database(db: Any) -> None:
    """Removes a database (the server stopped)."""
    with _lock:
        if db in _databases:
            _databases.remove(db)


def _state_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def _grouped(table_name: str, enum: Any, prefix: str) -> Iterable[Observation]:
    from .lifecycle import jobs_table, steps_table

    table: Table = jobs_table if table_name == "jobs" else steps_table
    counts: dict[str, int] = {}
    with _lock:
        databases = list(_databases)
    for db in databases:
        try:
            with db.read() as connection:
                for state, count in connection.execute(
                        select(table.c.state, func.count()).group_by(table.c.state)):
                    name = _state_name(enum, state, prefix)
                    counts[name] = counts.get(name, 0) + int(count)
        except Exception as error:  # noqa: BLE001 - a scrape must not fail on a database hiccup
            log.warning("metrics: cannot count %s: %s", table_name, error)
    return [Observation(count, {"state": state}) for state, count in sorted(counts.items())]


def _jobs(options: CallbackOptions) -> Iterable[Observation]:
    return _grouped("jobs", job_pb2.JobState, "JOB_STATE_")


def _steps(options: CallbackOptions) -> Iterable[Observation]:
    return _grouped("steps", job_pb2.StepState, "STEP_STATE_")


def _outbox() -> tuple[int, float]:
    from .outbox import outbox_table

    backlog, oldest = 0, None
    with _lock:
        databases = list(_databases)
    for db in databases:
        try:
            with db.read() as connection:
                count, first = connection.execute(
                    select(func.count(), func.min(outbox_table.c.create_time))).one()
        except Exception as error:  # noqa: BLE001
            log.warning("metrics: cannot read the outbox: %s", error)
            continue
        backlog += int(count)
        if first is not None:
            oldest = first if oldest is None else min(oldest, first)
    age = max(0.0, time.time() - oldest / 1e6) if oldest is not None else 0.0
    return backlog, age


def _outbox_backlog(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(_outbox()[0])]


def _outbox_age(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(_outbox()[1])]


meter.create_observable_gauge("argo.jobs", [_jobs], unit="{job}", description="Jobs by state")
meter.create_observable_gauge("argo.steps", [_steps], unit="{step}", description="Steps by state")
meter.create_observable_gauge("argo.outbox.backlog", [_outbox_backlog], unit="{message}",
                              description="Envelopes written but not yet published")
meter.create_observable_gauge("argo.outbox.age", [_outbox_age], unit="s",
                              description="Age of the oldest unpublished envelope (0 when none)")


def count_events(events: Sequence[dict[str, Any]]) -> None:
    """Counts the transitions recorded by a transaction's job events (rows of ``job_events``).

    Counted per distinct (kind, from, to) first: a 1000-job batch updates a handful of totals."""
    tally: Counter[tuple[bool, int, int]] = Counter()
    for event in events:
        if event["step_index"] < 0:
            tally[True, 0, event["job_state"]] += 1
        else:
            tally[False, event["previous_step_state"], event["step_state"]] += 1
    counts: Counter[tuple[tuple[str, str], ...]] = Counter()
    for (is_job, before, after), count in tally.items():
        if is_job:
            key = (("kind", "job"), ("from", ""), ("to", _state_name(job_pb2.JobState, after, "JOB_STATE_")))
        else:
            key = (("kind", "step"), ("from", _state_name(job_pb2.StepState, before, "STEP_STATE_")),
                   ("to", _state_name(job_pb2.StepState, after, "STEP_STATE_")))
        counts[key] += count
    transition_tally.add(counts)


def record_ingestion(outcomes: Mapping[str, int], update_times_s: Sequence[float]) -> None:
    """Counts ingested status updates by outcome and records the lag of each from its agent-side time
    (``update_times_s``, seconds since the epoch; 0 when unknown)."""
    status_update_tally.add({(("outcome", outcome),): count for outcome, count in outcomes.items()})
    now = time.time()
    for update_time in update_times_s:
        if update_time > 0:
            status_lag.record(max(0.0, now - update_time))


def prometheus_text() -> tuple[bytes, str] | None:
    """The Prometheus exposition of every metric (body, content type), or None when
    ``prometheus_client`` is not installed (the ``otel`` extra)."""
    try:
        from prometheus_client import REGISTRY, generate_latest
        from prometheus_client.exposition import CONTENT_TYPE_LATEST
    except ImportError:
        return None
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
