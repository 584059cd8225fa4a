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

from balsam_agent.testing import delete_prefix

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

#: Site names the tests use: their assignment queues are deleted after each test (deleting a queue that
#: does not exist is not an error in RabbitMQ). Every quorum queue costs the broker files and processes,
#: so a suite that kept them all until the end would exhaust it.
TEST_SITES = ("local", "vesta", "mira", "tukey", "argo_cluster", "edison", "perlmutter", "polaris", "aurora",
              "slurm-local", "othersite")


@pytest.fixture
def amqp_prefix(amqp_url: str) -> Iterator[str]:
    """A unique exchange/queue name prefix for one test; its queues and exchanges are deleted after it."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _prefixes.add(prefix)
    yield prefix
    delete_prefix(amqp_url, prefix,
                  [f"{prefix}.status", f"{prefix}.dead", *(f"{prefix}.assign.{site}" for site in TEST_SITES)])


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
