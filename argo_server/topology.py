"""RabbitMQ names and declarations (README "RabbitMQ topology"); identical wherever they are declared."""

from __future__ import annotations

from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

PROTOBUF = "application/x-protobuf"


def queue_arguments(prefix: str) -> dict[str, Any]:
    """Arguments of every queue: quorum, dead-lettering to ``<prefix>.dead``."""
    return {"x-queue-type": "quorum", "x-dead-letter-exchange": f"{prefix}.dead"}


def assign_exchange(prefix: str) -> str:
    """Direct exchange of assignment envelopes (routing key = site)."""
    return f"{prefix}.assign"


def assign_queue(prefix: str, site: str) -> str:
    """One site's queue of assignment envelopes."""
    return f"{prefix}.assign.{site}"


def status_name(prefix: str) -> str:
    """Name of the status topic exchange and of the queue the servers consume."""
    return f"{prefix}.status"


def dead_name(prefix: str) -> str:
    """Name of the dead-letter fanout exchange and its queue."""
    return f"{prefix}.dead"


def declare_dead_letters(channel: BlockingChannel, prefix: str) -> None:
    """Declares ``<prefix>.dead``: a fanout exchange and a quorum queue bound to it."""
    channel.exchange_declare(dead_name(prefix), "fanout", durable=True)
    # The dead-letter queue itself has no dead-letter exchange: a message rejected there would loop.
    channel.queue_declare(dead_name(prefix), durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(dead_name(prefix), dead_name(prefix))


def declare_site_queue(channel: BlockingChannel, prefix: str, site: str) -> None:
    """Declares the assign exchange and the queue of ``site``, bound with the site as key."""
    channel.exchange_declare(assign_exchange(prefix), "direct", durable=True)
    channel.queue_declare(assign_queue(prefix, site), durable=True, arguments=queue_arguments(prefix))
    channel.queue_bind(assign_queue(prefix, site), assign_exchange(prefix), routing_key=site)


def declare_status(channel: BlockingChannel, prefix: str) -> None:
    """Declares the status topic exchange and the shared status queue bound with ``#``."""
    declare_dead_letters(channel, prefix)
    channel.exchange_declare(status_name(prefix), "topic", durable=True)
    channel.queue_declare(status_name(prefix), durable=True, arguments=queue_arguments(prefix))
    channel.queue_bind(status_name(prefix), status_name(prefix), routing_key="#")
