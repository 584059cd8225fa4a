"""The agent's two RabbitMQ connections: one consumes its site's assignments, one publishes reports.

Both are supervised threads that reconnect with exponential backoff; neither loses anything across a
broker outage: an unacked assignment is redelivered (and recognised as a duplicate once stored), and
the publisher sends only what the outbox holds, marking rows sent after the broker confirmed them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from argobalsam.balsam.v1 import status_pb2

from balsam_agent.amqp_connect import AmqpTls, apply_tls, refusal_of

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-protobuf"
REPORT_TYPE = "argobalsam.balsam.v1.AgentReport"
_AMQP_ERRORS = (pika.exceptions.AMQPError, OSError)


def assign_queue_name(prefix: str, site: str) -> str:
    """Name of a site's assignment queue."""
    return f"{prefix}.assign.{site}"


def queue_arguments(prefix: str) -> dict[str, str]:
    """Arguments every queue of the topology is declared with (identical everywhere)."""
    return {"x-queue-type": "quorum", "x-dead-letter-exchange": f"{prefix}.dead"}


def declare_topology(channel: pika.adapters.blocking_connection.BlockingChannel, prefix: str, site: str,
                     passive_exchanges: bool = False) -> None:
    """Declares what the agent uses: the exchanges and its own assignment queue (idempotent).

    With ``passive_exchanges`` the exchanges (which the server declares at its start) are only checked,
    which needs no configure permission on them: the broker may then limit the agent to its own queue."""
    channel.exchange_declare(f"{prefix}.assign", "direct", durable=True, passive=passive_exchanges)
    channel.exchange_declare(f"{prefix}.status", "topic", durable=True, passive=passive_exchanges)
    channel.exchange_declare(f"{prefix}.dead", "fanout", durable=True, passive=passive_exchanges)
    queue = assign_queue_name(prefix, site)
    channel.queue_declare(queue, durable=True, arguments=queue_arguments(prefix))
    channel.queue_bind(queue, f"{prefix}.assign", routing_key=site)


def connection_parameters(url: str, name: str, tls: AmqpTls | None = None) -> pika.URLParameters:
    """Connection parameters with a connection name operators can see in ``rabbitmqctl`` (and TLS and
    certificate login for ``amqps://``, see :mod:`balsam_agent.amqp_connect`)."""
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": name}
    params.heartbeat = 30
    params.blocked_connection_timeout = 60
    return apply_tls(params, url, tls)


class Backoff:
    """Exponential backoff between reconnects: 0.1 s doubling to 5 s, reset after a success."""

    def __init__(self, first: float = 0.1, most: float = 5.0) -> None:
        self.first, self.most, self.delay = first, most, first

    def wait(self, stop: threading.Event) -> None:
        """Sleeps the current delay (or until ``stop``) and doubles it."""
        stop.wait(self.delay)
        self.delay = min(self.most, self.delay * 2)

    def reset(self) -> None:
        """Back to the first delay."""
        self.delay = self.first


#: Called as ``on_delivery(body, delivery tag, connection generation, AMQP headers, AMQP type)`` for
#: every assignment message.
DeliveryHandler = Callable[[bytes, int, int, Any, Any], None]


class AssignmentConsumer:
    """Consumes ``<prefix>.assign.<site>`` and hands bodies to the engine; acks on the engine's word."""

    def __init__(self, url: str, prefix: str, site: str, prefetch: int, on_delivery: DeliveryHandler) -> None:
        self.url, self.prefix, self.site, self.prefetch = url, prefix, site, prefetch
        self.on_delivery = on_delivery
        self.generation = 0
        self.connected = threading.Event()
        #: TLS settings and passive exchange declaration (set by the agent from its configuration).
        self.tls: AmqpTls | None = None
        self.declare_exchanges = True
        #: Why the broker refused this agent for good (the consumer then stops), or None.
        self.refusal: str | None = None
        self._stop = threading.Event()
        self._conn: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None
        self._thread = threading.Thread(target=self._run, name=f"amqp-consumer-{site}", daemon=True)

    def start(self) -> None:
        """Starts the consumer thread."""
        self._thread.start()

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                conn = pika.BlockingConnection(connection_parameters(
                    self.url, f"balsam-agent {self.prefix} {self.site} consumer", self.tls))
            except _AMQP_ERRORS as exc:
                if self._refused(exc):
                    return
                log.warning("cannot connect to the broker (%s); retrying in %.1fs", exc, backoff.delay)
                backoff.wait(self._stop)
                continue
            try:
                channel = conn.channel()
                declare_topology(channel, self.prefix, self.site, passive_exchanges=not self.declare_exchanges)
                channel.basic_qos(prefetch_count=self.prefetch)
                self.generation += 1
                generation = self.generation

                def deliver(ch: object, method: pika.spec.Basic.Deliver, props: object, body: bytes,
                            generation: int = generation) -> None:
                    # The headers carry the W3C trace context (traceparent) of the server's publish.
                    self.on_delivery(body, method.delivery_tag, generation, getattr(props, "headers", None),
                                     getattr(props, "type", None))

                channel.basic_consume(assign_queue_name(self.prefix, self.site), deliver)
                self._conn, self._channel = conn, channel
                self.connected.set()
                backoff.reset()
                while not self._stop.is_set():
                    conn.process_data_events(time_limit=0.2)
            except _AMQP_ERRORS as exc:
                if self._refused(exc):
                    return
                log.warning("assignment consumer lost the broker (%s); reconnecting", exc)
                backoff.wait(self._stop)
            finally:
                self.connected.clear()
                self._conn = self._channel = None
                if conn.is_open:
                    try:
                        conn.close()
                    except _AMQP_ERRORS:
                        pass

    def _refused(self, error: BaseException) -> bool:
        self.refusal = refusal_of(error)
        if self.refusal is not None:
            log.error("assignment consumer of site %s stops: %s", self.site, self.refusal)
        return self.refusal is not None

    def _call(self, generation: int, action: Callable[[pika.adapters.blocking_connection.BlockingChannel], None]
              ) -> None:
        conn, channel = self._conn, self._channel
        # A tag of an earlier connection means nothing now: that delivery will come again.
        if conn is None or channel is None or generation != self.generation:
            return

        def run() -> None:
            if channel.is_open:
                action(channel)

        try:
            conn.add_callback_threadsafe(run)
        except _AMQP_ERRORS:
            pass

    def ack(self, delivery_tag: int, generation: int) -> None:
        """Acks every delivery up to ``delivery_tag`` (the engine stores them in delivery order)."""
        self._call(generation, lambda ch: ch.basic_ack(delivery_tag, multiple=True))

    def reject(self, delivery_tag: int, generation: int) -> None:
        """Dead-letters one delivery (a malformed body)."""
        self._call(generation, lambda ch: ch.basic_nack(delivery_tag, multiple=False, requeue=False))

    def stop(self) -> None:
        """Stops consuming and closes the connection (unacked deliveries return to the queue)."""
        self._stop.set()
        self._thread.join(timeout=5)


class StatusPublisher:
    """Publishes the outbox (batches of updates) and heartbeats on ``<prefix>.status`` with confirms.

    ``linger``: the least time between two status messages. An update made after a quiet spell goes
    at once; under load the updates of ``linger`` seconds travel in one message, which the broker
    stores and the server applies in one transaction (per-message costs that otherwise grow with
    the agent's speed)."""

    def __init__(self, url: str, prefix: str, site: str, *, read_batch: Callable[[int], list[tuple[int, bytes]]],
                 mark_sent: Callable[[list[int]], None], heartbeat: Callable[[bool], status_pb2.AgentReport],
                 heartbeat_interval: float, batch_size: int = 500, linger: float = 0.0) -> None:
        self.url, self.prefix, self.site = url, prefix, site
        self.read_batch, self.mark_sent, self.heartbeat = read_batch, mark_sent, heartbeat
        self.heartbeat_interval = heartbeat_interval
        self.batch_size = batch_size
        self.linger = linger
        self._last_status = 0.0
        self.published_messages = 0
        self.connected = threading.Event()
        #: TLS settings and passive exchange declaration (set by the agent from its configuration).
        self.tls: AmqpTls | None = None
        self.declare_exchanges = True
        #: Why the broker refused this agent for good (the publisher then stops), or None.
        self.refusal: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None
        self._conn: pika.BlockingConnection | None = None
        self._next_heartbeat = 0.0
        self._thread = threading.Thread(target=self._run, name=f"amqp-publisher-{site}", daemon=True)

    def start(self) -> None:
        """Starts the publisher thread."""
        self._thread.start()

    def wake(self) -> None:
        """Tells the publisher the outbox has new rows."""
        self._wake.set()

    def _publish(self, routing_key: str, report: status_pb2.AgentReport) -> None:
        assert self._channel is not None
        self._channel.basic_publish(
            f"{self.prefix}.status", routing_key, report.SerializeToString(),
            properties=pika.BasicProperties(content_type=CONTENT_TYPE, type=REPORT_TYPE, delivery_mode=2))
        self.published_messages += 1

    def _flush(self) -> None:
        while True:
            rows = self.read_batch(self.batch_size)
            if not rows:
                return
            report = status_pb2.AgentReport(site=self.site)
            for _, body in rows:
                report.status.updates.add().MergeFromString(body)
            self._publish(f"status.{self.site}", report)
            self._last_status = time.monotonic()
            self.mark_sent([row_id for row_id, _ in rows])

    def _connect(self) -> None:
        conn = pika.BlockingConnection(connection_parameters(
            self.url, f"balsam-agent {self.prefix} {self.site} publisher", self.tls))
        channel = conn.channel()
        channel.exchange_declare(f"{self.prefix}.status", "topic", durable=True, passive=not self.declare_exchanges)
        channel.confirm_delivery()
        self._conn, self._channel = conn, channel
        self.connected.set()

    def _disconnect(self) -> None:
        self.connected.clear()
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except _AMQP_ERRORS:
                pass

    def _run(self) -> None:
        backoff = Backoff()
        while True:
            stopping = self._stop.is_set()
            try:
                if self._conn is None:
                    self._connect()
                    backoff.reset()
                self._wake.clear()
                quiet = self._last_status + self.linger - time.monotonic()
                if quiet > 0 and not stopping:
                    self._stop.wait(quiet)  # more updates join this message meanwhile
                self._flush()
                now = time.monotonic()
                if stopping or now >= self._next_heartbeat:
                    self._publish(f"heartbeat.{self.site}", self.heartbeat(stopping))
                    self._next_heartbeat = now + self.heartbeat_interval
                if stopping:
                    break
                assert self._conn is not None
                # Sleep on the wake event, but let pika answer broker heartbeats meanwhile.
                deadline = min(self._next_heartbeat, time.monotonic() + 1.0)
                while not self._wake.is_set() and not self._stop.is_set() and time.monotonic() < deadline:
                    self._conn.process_data_events(time_limit=0)
                    self._wake.wait(0.05)
            except _AMQP_ERRORS as exc:
                self.refusal = refusal_of(exc)
                if self.refusal is not None:
                    log.error("status publisher of site %s stops: %s", self.site, self.refusal)
                    break
                log.warning("status publisher lost the broker (%s); retrying in %.1fs", exc, backoff.delay)
                self._disconnect()
                if stopping:
                    break
                backoff.wait(self._stop)
        self._disconnect()

    def stop(self, timeout: float = 5.0) -> None:
        """Flushes the outbox, sends a last heartbeat (``stopping``) and closes."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout)
