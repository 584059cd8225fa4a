"""The outbox relay: publishes unsent envelopes to RabbitMQ and then deletes their rows.

Delivery is confirmed per batch with AMQP transactions: ``tx.select`` once, then for every batch the
messages are published and ``tx.commit`` returns only when the broker has taken responsibility for all
of them (for quorum queues: replicated and written). That gives what publisher confirms give at one
round trip per batch instead of one per message (pika's BlockingChannel waits for each confirm).
The rows are deleted only after ``tx.commit`` succeeded, so a crash anywhere loses nothing and at worst
publishes a batch twice (receivers drop duplicates by (step id, attempt, sequence)).

Within a batch the relay sends one message per site: the envelope itself when the site has one, else an
``AssignmentBatch`` of the site's envelopes in outbox order. Framing and routing a message costs the
relay and the broker far more than its bytes, so a bulk submission costs them one message per site per
batch instead of one per job; a lone CreateJob still travels as a single envelope. Under a stream of
CreateJob calls each group commit would wake the relay for a pass of its own, a few envelopes each, so a
pass that published starts the next one no sooner than ``gather`` seconds (``relay_gather``) after its
own start: rows committed meanwhile go together. At 8 saturating CreateJob callers, 2 ms took a message
from 2.6 to 4-7 envelopes and the relay's and broker's CPU from 220-270 to 95-200 µs per job
(BENCHMARKS.md); a job that arrives when no pass ran in the last ``gather`` seconds (any paced load) is
sent at once.

With several replicas on PostgreSQL or MySQL, each relay locks the rows it sends with
``SELECT ... FOR UPDATE SKIP LOCKED`` and keeps the lock until they are deleted, so replicas share the
work without sending the same rows; SQLite has a single writer, and its relay reads without a lock.

A relay in its own process on SQLite (``sent_fd`` set) writes nothing to the database: two processes
writing one SQLite file wait for each other in SQLite's busy handler, which sleeps 1, 2, 5, 10, ... ms
(measured at 150 CreateJob/s: the relay process waited up to 107 ms for the write lock, and the server's
writers up to 20 ms). It reads the rows after the last one it sent (ids grow in commit order there),
publishes them and reports that id on ``sent_fd``; the server deletes the rows up to it under its own
write lock. A relay that restarts starts from the first row left, so a batch sent just before may go
twice, as after any crash.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time

import pika
from argobalsam.balsam.v1 import assignment_pb2
from pika.adapters.blocking_connection import BlockingChannel

from . import topology, tracing
from .amqp_connect import AmqpTls, connection_parameters
from .config import ServerConfig
from .db import Database
from .outbox import ENVELOPE_TYPE, PendingMessage, claim_batch, mark_sent, rows_after

log = logging.getLogger(__name__)

BATCH = 500
#: AMQP ``type`` of a message holding several envelopes of one site.
BATCH_TYPE = assignment_pb2.AssignmentBatch.DESCRIPTOR.full_name
#: Largest AssignmentBatch body: far below RabbitMQ's message size limit (``max_message_size``, 128 MiB
#: by default) however large the envelopes, since a message the broker refuses would stop the relay on
#: the same rows forever. An envelope larger than this travels alone, as it would without batching.
MAX_MESSAGE_BYTES = 1 << 20


def message_groups(messages: list[PendingMessage], max_bytes: int) -> list[list[PendingMessage]]:
    """``messages`` (of one site, in order) cut into runs that go as one message each: a run of
    envelopes whose bodies add up to at most ``max_bytes``, or a message alone (one too large to share,
    or one that is not an envelope)."""
    groups: list[list[PendingMessage]] = []
    current: list[PendingMessage] = []
    size = 0
    for message in messages:
        fits = message.message_type == ENVELOPE_TYPE and len(message.body) <= max_bytes
        if current and (not fits or size + len(message.body) > max_bytes):
            groups.append(current)
            current, size = [], 0
        if not fits:
            groups.append([message])
            continue
        current.append(message)
        size += len(message.body)
    if current:
        groups.append(current)
    return groups


class OutboxRelay:
    """Moves outbox rows to the broker; :meth:`loop` runs under a :class:`~argo_server.supervisor.Supervised`."""

    def __init__(self, db: Database, amqp_url: str, prefix: str, poll_interval: float = 0.5,
                 gather: float = 0.0) -> None:
        self.db = db
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.poll_interval = poll_interval
        #: Shortest time from the start of a pass that published to the start of the next pass.
        self.gather = gather
        self.published = 0
        self.connection: pika.BlockingConnection | None = None
        #: TLS settings of ``amqps://`` URLs (set by the server from its ``amqp_tls_*`` settings).
        self.tls: AmqpTls | None = None
        #: A descriptor whose bytes also wake the relay (in a relay process: the server's pipe).
        self.wake_fd: int | None = None
        #: In a relay process on SQLite: where the id of the last row sent goes (a line per batch), for
        #: the server to delete the rows; the relay then never writes to the database.
        self.sent_fd: int | None = None
        self._last_sent = 0
        self._unreported = False
        # Wake-ups are bytes on a pipe the loop waits on with select(), together with wake_fd: a relay
        # process is woken by the server's write with no thread in between.
        self._wake_lock = threading.Lock()
        self._wake_write = -1

    @classmethod
    def from_config(cls, db: Database, config: ServerConfig) -> OutboxRelay:
        """The relay of a server with these settings (in the server process or in a relay process)."""
        relay = cls(db, config.amqp_url, config.amqp_prefix, config.relay_poll_interval, config.relay_gather)
        relay.tls = AmqpTls.from_config(config)
        return relay

    def notify(self) -> None:
        """Wakes the relay: new rows were committed (no-op between two runs of the loop, which reads the
        outbox when it starts)."""
        with self._wake_lock:
            if self._wake_write >= 0:
                try:
                    os.write(self._wake_write, b"w")
                except BlockingIOError:
                    pass  # the pipe is full: wake-ups are pending already

    def loop(self, stop: threading.Event) -> None:
        """Connects, then publishes batches until ``stop`` is set (raises on any failure)."""
        # Named, so that an operator (or a test) can find it in `rabbitmqctl list_connections`.
        parameters = connection_parameters(self.amqp_url, f"argo-server outbox relay {self.prefix}", self.tls)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        with self._wake_lock:
            self._wake_write = wake_write
        connection: pika.BlockingConnection | None = None
        try:
            connection = pika.BlockingConnection(parameters)
            self.connection = connection
            channel = connection.channel()
            channel.tx_select()
            declared: set[str] = set()
            while not stop.is_set():
                started = time.monotonic()
                sent = self.relay_once(channel, declared)
                if sent < BATCH:
                    if sent:  # let the rows of the next commits gather (see the module's docstring)
                        time.sleep(max(0.0, started + self.gather - time.monotonic()))
                    self._wait(wake_read, self.poll_interval)
                    connection.process_data_events(0)  # heartbeats and broker-side closes
        finally:
            with self._wake_lock:
                self._wake_write = -1
                os.close(wake_write)
            os.close(wake_read)
            self.connection = None
            if connection is not None and connection.is_open:
                connection.close()

    def _wait(self, wake_read: int, timeout: float) -> None:
        """Waits until a wake-up (this process's or, in a relay process, the server's) or ``timeout``."""
        fds = [wake_read] if self.wake_fd is None else [wake_read, self.wake_fd]
        ready, _, _ = select.select(fds, [], [], timeout)
        for fd in ready:
            try:
                if not os.read(fd, 65536) and fd == self.wake_fd:  # every pending wake-up at once
                    self.wake_fd = None  # the server closed its end: it is stopping this process
            except BlockingIOError:
                pass

    def relay_once(self, channel: BlockingChannel, declared: set[str]) -> int:
        """Publishes one batch; returns how many rows it sent."""
        if self.sent_fd is not None:
            last_sent = self._last_sent
            batch = self.db.read_raw(lambda cursor: rows_after(cursor, last_sent, BATCH))
            if batch:
                self._publish(channel, declared, batch)
                self._last_sent, self._unreported = batch[-1].id, True
            self._report_sent()
        elif self.db.supports_skip_locked:
            with self.db.write() as connection:
                batch = claim_batch(connection, BATCH, skip_locked=True)
                if batch:
                    self._publish(channel, declared, batch)
                    mark_sent(connection, [message.id for message in batch])
        else:
            with self.db.read() as connection:
                batch = claim_batch(connection, BATCH, skip_locked=False)
            if batch:
                self._publish(channel, declared, batch)
                with self.db.write() as connection:
                    mark_sent(connection, [message.id for message in batch])
        self.published += len(batch)
        return len(batch)

    def _report_sent(self) -> None:
        """Tells the server (``sent_fd``) the id of the last row sent; when its pipe is full (it reads
        later) the next batch or wake-up tries again, with a newer id that covers this one."""
        if not self._unreported or self.sent_fd is None:
            return
        try:
            os.write(self.sent_fd, b"%d\n" % self._last_sent)
        except BlockingIOError:
            return
        self._unreported = False

    def _publish(self, channel: BlockingChannel, declared: set[str], batch: list[PendingMessage]) -> None:
        """Publishes the batch in one AMQP transaction: per site its envelopes in messages of at most
        :data:`MAX_MESSAGE_BYTES`, an AssignmentBatch where several fit (one publish, one broker write,
        one agent ack for all of them)."""
        exchange = topology.assign_exchange(self.prefix)
        traced = tracing.sdk_active()
        by_site: dict[str, list[PendingMessage]] = {}
        for message in batch:
            by_site.setdefault(message.site, []).append(message)
        for site, messages in by_site.items():
            if site not in declared:
                topology.declare_site_queue(channel, self.prefix, site)
                declared.add(site)
            for group in message_groups(messages, MAX_MESSAGE_BYTES):
                if len(group) == 1:
                    (message,) = group
                    # traceparent/tracestate of a PRODUCER span in the job's trace (the row stores its parent).
                    headers = tracing.publish_headers(message.headers, site, exchange, message.body)
                    self._send(channel, exchange, site, message.body, message.message_type, headers)
                    continue
                envelopes = assignment_pb2.AssignmentBatch()
                for message in group:
                    envelope = envelopes.envelopes.add()
                    envelope.MergeFromString(message.body)
                    if traced:
                        # Each envelope continues from its own PRODUCER span (no per-envelope AMQP headers).
                        context = tracing.publish_headers(message.headers, site, exchange, message.body)
                        envelope.trace_context.clear()
                        envelope.trace_context.update(context)
                self._send(channel, exchange, site, envelopes.SerializeToString(), BATCH_TYPE, {})
        channel.tx_commit()

    @staticmethod
    def _send(channel: BlockingChannel, exchange: str, site: str, body: bytes, message_type: str,
              headers: dict[str, str]) -> None:
        properties = pika.BasicProperties(delivery_mode=2, content_type=topology.PROTOBUF, type=message_type,
                                          headers=headers or None)
        # The underlying channel queues the frames without flushing the socket per message (the blocking
        # wrapper does, at twice the CPU); tx_commit flushes and waits for all.
        channel._impl.basic_publish(exchange, site, body, properties)
