"""Fixtures shared by every test: the real RabbitMQ broker and the databases started by .ci/run.

Service addresses come from the environment (``.ci/services.env``) with the defaults of a developer
machine where the services run on their standard loopback ports.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pika
import pytest

AMQP_URL = os.environ.get("ARGO_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
POSTGRES_URL = os.environ.get(
    "ARGO_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/argo_test"
)
MYSQL_URL = os.environ.get("ARGO_TEST_MYSQL_URL", "mysql+pymysql://argo:argo@127.0.0.1:3306/argo_test")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """URL of the real RabbitMQ broker."""
    return AMQP_URL


_prefixes: set[str] = set()


@pytest.fixture
def amqp_prefix() -> str:
    """A unique exchange/queue name prefix for one test (its queues are deleted at the end of the session)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _prefixes.add(prefix)
    return prefix


@pytest.fixture(scope="session", autouse=True)
def _delete_test_queues(amqp_url: str) -> Iterator[None]:
    """Deletes every queue and exchange created under a test prefix, once, after the session."""
    yield
    if not _prefixes:
        return
    try:
        listing = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True,
                                 text=True, timeout=60).stdout.split()
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    except (OSError, subprocess.SubprocessError, pika.exceptions.AMQPError):
        return
    try:
        channel = connection.channel()
        for queue in listing:
            if queue.split(".", 1)[0] in _prefixes:
                channel.queue_delete(queue)
        for prefix in _prefixes:
            for exchange in ("assign", "status", "dead"):
                channel.exchange_delete(f"{prefix}.{exchange}")
    finally:
        connection.close()
