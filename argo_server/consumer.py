"""The status consumer: applies agents' reports from ``<prefix>.status``.

Messages are taken in batches (up to the prefetch count) and applied in one database transaction; they
are acked only after the commit. A malformed body, or a report about a job the server does not know,
is dead-lettered (``basic_nack(requeue=False)`` → ``<prefix>.dead``) and the consumer goes on. Status
updates are idempotent by (step id, attempt, sequence): duplicates, reordered and stale updates change
nothing. Heartbeats update the sites table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pika
from argobalsam.balsam.v1 import status_pb2
from google.protobuf.message import DecodeError
from pika.adapters.blocking_connection import BlockingChannel

from . import topology
from .amqp_connect import AmqpTls, connection_parameters
from .ids import parse_step_id
from .sites import record_heartbeat
from .statements import DriverTx
from .store import JobStore, ReportResult

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass
class ConsumerStats:
    """Counters of what the consumer did (read by tests, benchmarks and logs)."""

    messages: int = 0
    updates_applied: int = 0
    duplicates: int = 0
    stale: int = 0
    refused: int = 0
    heartbeats: int = 0
    dead_lettered: int = 0


class StatusConsumer:
    """Consumes AgentReports; :meth:`loop` runs under a :class:`~argo_server.supervisor.Supervised`."""

    def __init__(self, store: JobStore, amqp_url: str, prefix: str, prefetch: int = 200,
                 on_outbox: Callable[[], None] | None = None) -> None:
        self.store = store
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.prefetch = prefetch
        self.stats = ConsumerStats()
        self.connection: pika.BlockingConnection | None = None
        #: Called after a batch that wrote envelopes to the outbox (wakes the relay).
        self._on_outbox = on_outbox or (lambda: None)
        #: TLS settings of ``amqps://`` URLs (set by the server from its ``amqp_tls_*`` settings).
        self.tls: AmqpTls | None = None
        #: Bodies larger than this are dead-lettered without being parsed.
        self.max_body_bytes = DEFAULT_MAX_BODY_BYTES

    def loop(self, stop: threading.Event) -> None:
        """Connects, declares the topology and consumes until ``stop`` is set (raises on failure)."""
        # Named, so that an operator (or a test) can find it in `rabbitmqctl list_connections`.
        parameters = connection_parameters(self.amqp_url, f"argo-server status consumer {self.prefix}", self.tls)
        connection = pika.BlockingConnection(parameters)
        self.connection = connection
        try:
            channel = connection.channel()
            topology.declare_status(channel, self.prefix)
            # Declared at start, not at the first assignment, so that agents whose broker permissions
            # forbid declaring exchanges (declare_exchanges: false) can bind their queue at once.
            channel.exchange_declare(topology.assign_exchange(self.prefix), "direct", durable=True)
            channel.basic_qos(prefetch_count=self.prefetch)
            pending: list[tuple[int, bytes, str]] = []
            queue = topology.status_name(self.prefix)
            for method, _properties, body in channel.consume(queue, inactivity_timeout=0.2):
                if method is not None:
                    pending.append((method.delivery_tag, body, method.routing_key or ""))
                    if len(pending) < self.prefetch and channel.get_waiting_message_count() > 0:
                        continue
                if pending:
                    self.handle_batch(channel, pending)
                    pending = []
                if stop.is_set():
                    break
            channel.cancel()
        finally:
            self.connection = None
            if connection.is_open:
                connection.close()

    def handle_batch(self, channel: BlockingChannel,
                     deliveries: Sequence[tuple[int, bytes] | tuple[int, bytes, str]]) -> None:
        """Applies a batch of deliveries in one transaction, then acks (or dead-letters) each.

        A delivery may carry its routing key (``status.<site>`` / ``heartbeat.<site>``): the broker lets
        each agent publish only under its own site's keys, so a report whose ``site`` differs from its
        key, or an update for a step of another site, is dead-lettered (an agent cannot speak for
        another site)."""
        reports: list[tuple[int, status_pb2.AgentReport]] = []
        for tag, body, *key in deliveries:
            if len(body) > self.max_body_bytes:
                log.warning("dead-lettering an oversized status message (%d bytes > %d)", len(body),
                            self.max_body_bytes)
                self.stats.dead_lettered += 1
                channel.basic_nack(tag, requeue=False)
                continue
            try:
                report = status_pb2.AgentReport.FromString(body)
            except DecodeError:
                report = None
            if report is None or not report.site or report.WhichOneof("report") is None:
                log.warning("dead-lettering malformed status message (%d bytes)", len(body))
                self.stats.dead_lettered += 1
                channel.basic_nack(tag, requeue=False)
                continue
            key_site = key[0].partition(".")[2] if key and key[0] else ""
            if key_site and key_site != report.site:
                log.warning("dead-lettering a report of site %r published under routing key %r",
                            report.site[:128], key[0][:200])
                self.stats.dead_lettered += 1
                channel.basic_nack(tag, requeue=False)
                continue
            reports.append((tag, report))
        if not reports:
            return
        db = self.store.db
        bad_tags, result, heartbeats = db.run_raw(lambda cursor: self._apply(DriverTx.of(cursor, db), reports))
        self.stats.messages += len(reports)
        self.stats.updates_applied += result.applied
        self.stats.duplicates += result.duplicates
        self.stats.stale += result.stale
        self.stats.refused += result.refused
        self.stats.heartbeats += heartbeats
        if not bad_tags:
            # Every earlier delivery of this channel is settled already: one cumulative ack.
            channel.basic_ack(max(tag for tag, _report in reports), multiple=True)
        for tag, _report in reports if bad_tags else ():
            if tag in bad_tags:
                self.stats.dead_lettered += 1
                channel.basic_nack(tag, requeue=False)
            else:
                channel.basic_ack(tag)
        if result.enveloped:
            self._on_outbox()

    def _apply(self, tx: DriverTx, reports: list[tuple[int, status_pb2.AgentReport]]
               ) -> tuple[set[int], ReportResult, int]:
        result = ReportResult()
        heartbeats = 0
        updates: list[status_pb2.StatusUpdate] = []
        owners: list[int] = []
        sites: list[str] = []
        for tag, report in reports:
            if report.HasField("heartbeat"):
                record_heartbeat(tx, report.site, report.heartbeat)
                heartbeats += 1
            else:
                updates.extend(report.status.updates)
                owners.extend(tag for _ in report.status.updates)
                sites.extend(report.site for _ in report.status.updates)
        # Lock the jobs in one order, so that two replicas applying overlapping batches cannot deadlock.
        job_ids = sorted({parsed[0] for update in updates if (parsed := parse_step_id(update.step_id))})
        unknown = self.store.apply_updates(tx, updates, result, lock_order=job_ids, sites=sites)
        for position in sorted(unknown):
            log.warning("dead-lettering status for unknown step %r (or one of another site than %r)",
                        updates[position].step_id, sites[position][:128])
        return {owners[position] for position in unknown}, result, heartbeats
