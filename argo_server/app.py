"""Assembly of the server: gRPC services, health and reflection, the outbox relay, the status consumer
and the WatchJobs poller, with a graceful stop."""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from argobalsam.argo.v1 import (
    argo_service_pb2,
    argo_service_pb2_grpc,
    site_service_pb2,
    site_service_pb2_grpc,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from . import affinity, grpc_security, metrics, schema, tracing
from .amqp_connect import AmqpTls
from .config import ServerConfig
from .consumer import StatusConsumer
from .db import Database
from .grpc_security import is_loopback  # noqa: F401 - part of this module's interface
from .notices import MailConfig, Mailer, NoticeDispatcher
from .relay import OutboxRelay
from .relay_process import RelayChild
from .service import ArgoService
from .sites import SiteService
from .store import JobStore
from .supervisor import Supervised
from .watch import EventPoller
from .web.monitor import MonitorServer

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    argo_service_pb2.DESCRIPTOR.services_by_name["ArgoService"].full_name,
    site_service_pb2.DESCRIPTOR.services_by_name["SiteService"].full_name,
)


def create_server(config: ServerConfig, store: JobStore, poller: EventPoller
                  ) -> tuple[grpc.Server, int, health.HealthServicer]:
    """A gRPC server with ArgoService, SiteService, health checking and reflection, bound (not started).

    Returns the server, the bound port (useful with port 0) and the health servicer."""
    grpc_security.check_listen(config)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="grpc"),
                         interceptors=[tracing.ServerTracingInterceptor(),  # outermost: spans cover auth
                                       *grpc_security.interceptors(config, store.db)],
                         options=grpc_security.server_options(config))
    argo_service_pb2_grpc.add_ArgoServiceServicer_to_server(
        ArgoService(store, poller, config.known_sites), server)
    site_service_pb2_grpc.add_SiteServiceServicer_to_server(
        SiteService(store.db, config.site_offline_after), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in (*SERVICE_NAMES, ""):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = grpc_security.bind(server, config)
    return server, port, health_servicer


class ServerProcess:
    """The whole server: database (migrated on start), gRPC, relay, consumer and watch poller."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config.resolved()
        self.db = Database(self.config.database_url, self.config.sqlite_synchronous)
        self.relay = self._relay()
        self.store = JobStore(self.db, self.config.data_root, on_outbox=self.relay.notify)
        self.consumer = StatusConsumer(self.store, self.config.amqp_url, self.config.amqp_prefix,
                                       self.config.status_prefetch, on_outbox=self.relay.notify)
        self.consumer.tls = AmqpTls.from_config(self.config)
        self.consumer.max_body_bytes = self.config.amqp_max_body_bytes
        self.poller = EventPoller(self.store, self.config.watch_poll_interval)
        self.supervised = [Supervised("outbox-relay", self.relay.loop),
                           Supervised("status-consumer", self.consumer.loop)]
        if self.db.dialect == "sqlite":
            self.supervised.append(Supervised("wal-checkpointer", self._checkpoint_loop))
        self.server: grpc.Server | None = None
        self._unpinned: set[int] = set()
        self.health: health.HealthServicer | None = None
        self.port = 0
        self.monitor: MonitorServer | None = None
        mail = MailConfig.from_mapping(self.config.mail)
        self.notices = NoticeDispatcher(self.store, self.poller, Mailer(mail)) if mail.enabled else None

    def _checkpoint_loop(self, stop: threading.Event) -> None:
        """Checkpoints SQLite's WAL every ``checkpoint_interval`` seconds (see :meth:`Database.checkpoint`)."""
        while not stop.wait(self.config.checkpoint_interval):
            self.db.checkpoint()

    def _relay(self) -> OutboxRelay | RelayChild:
        if self.config.relay == "process":
            return RelayChild(self.config, self.db)
        return OutboxRelay.from_config(self.db, self.config)

    def start(self) -> int:
        """Migrates the database, starts everything and returns the gRPC port."""
        if self.config.cpu_affinity:
            self._unpinned = affinity.pin_threads(self.config.cpu_affinity)
            if isinstance(self.relay, RelayChild):
                self.relay.cpus = self._unpinned  # the relay's own process is not bound by our lock
        schema.upgrade(self.db.engine)
        self.server, self.port, self.health = create_server(self.config, self.store, self.poller)
        self.poller.start()
        metrics.register_database(self.db)  # the jobs/steps/outbox gauges read it
        if self.config.run_background:
            for loop in self.supervised:
                loop.start()
        self.server.start()
        host = self.config.listen.rsplit(":", 1)[0]
        if self.notices is not None:
            self.notices.start()
        if self.config.monitor_listen:
            credentials, options = grpc_security.monitor_credentials(self.config)
            self.monitor = MonitorServer(self.config.monitor_listen, f"{host}:{self.port}", credentials,
                                         options).start()
        log.info("argo-server listening on %s:%d (database %s, broker prefix %r)", host, self.port,
                 self.db.engine.url.render_as_string(hide_password=True), self.config.amqp_prefix)
        return self.port

    def stop(self, grace: float = 5.0) -> None:
        """Stops taking calls, lets running calls finish for ``grace`` seconds, then stops the loops."""
        if self.health is not None:
            self.health.enter_graceful_shutdown()
        if self.monitor is not None:
            self.monitor.stop()
        if self.notices is not None:
            self.notices.stop()
        self.poller.stop()
        if self.server is not None:
            self.server.stop(grace).wait()
        for loop in self.supervised:
            loop.stop()
        metrics.unregister_database(self.db)
        self.db.dispose()
        if self._unpinned:
            affinity.pin_threads(self._unpinned)

    def wait(self) -> None:
        """Blocks until the gRPC server stops."""
        if self.server is not None:
            self.server.wait_for_termination()


def run(config: ServerConfig) -> ServerProcess:
    """Starts a server process (the caller stops it)."""
    process = ServerProcess(config)
    process.start()
    return process
