"""Sites: heartbeats recorded by the status consumer, and the SiteService API."""

from __future__ import annotations

from typing import Any, cast

import grpc
from argobalsam.argo.v1 import site_pb2, site_service_pb2, site_service_pb2_grpc
from argobalsam.balsam.v1 import status_pb2
from sqlalchemy import Table, select

from . import errors
from .db import Database
from .ids import now_micros, to_timestamp
from .models import Site
from .service import rpc
from .statements import DriverTx, update_sql
from .store import decode_token, encode_token

sites_table = cast(Table, Site.__table__)


def record_heartbeat(tx: DriverTx, site: str, heartbeat: status_pb2.Heartbeat) -> None:
    """Stores the latest heartbeat of ``site`` (server time: agents' clocks may be off), in the status
    consumer's transaction on the driver's cursor."""
    values = {"last_heartbeat_time": now_micros(), "stopping": heartbeat.stopping,
              "heartbeat": heartbeat.SerializeToString()}
    tx.cursor.execute(update_sql(tx, sites_table, tuple(values), ("name",)), (*values.values(), site))
    if tx.cursor.rowcount == 0:  # MySQL: rows matched, not changed (SQLAlchemy's connections ask for it)
        tx.insert(sites_table, [{"name": site, **values}])


def site_message(row: Any, offline_after: float, now_us: int) -> site_pb2.Site:
    """The API Site of a ``sites`` row."""
    heartbeat = status_pb2.Heartbeat.FromString(row.heartbeat)
    age = (now_us - row.last_heartbeat_time) / 1e6
    site = site_pb2.Site(name=f"sites/{row.name}", online=not row.stopping and age <= offline_after,
                         agent_version=heartbeat.agent_version, scheduler=heartbeat.scheduler,
                         plugins=heartbeat.plugins, capacity=heartbeat.capacity, hostname=heartbeat.hostname)
    stamp = to_timestamp(row.last_heartbeat_time)
    if stamp is not None:
        site.last_heartbeat_time.CopyFrom(stamp)
    return site


class SiteService(site_service_pb2_grpc.SiteServiceServicer):
    """Sites known from their agents' heartbeats, online when the last one is recent."""

    def __init__(self, db: Database, offline_after: float) -> None:
        self.db = db
        self.offline_after = offline_after

    @rpc
    def ListSites(self, request: site_service_pb2.ListSitesRequest,  # noqa: N802 - gRPC method name
                  context: grpc.ServicerContext) -> site_service_pb2.ListSitesResponse:
        """Sites sorted by name."""
        if request.page_size < 0:
            raise errors.invalid_request([("page_size", "must not be negative")])
        size = min(request.page_size or 1000, 1000)
        query = select(sites_table).order_by(sites_table.c.name).limit(size + 1)
        if request.page_token:
            query = query.where(sites_table.c.name > decode_token(request.page_token))
        with self.db.read() as connection:
            rows = connection.execute(query).all()
        now = now_micros()
        token = encode_token(rows[size - 1].name) if len(rows) > size else ""
        return site_service_pb2.ListSitesResponse(
            sites=[site_message(row, self.offline_after, now) for row in rows[:size]], next_page_token=token)

    @rpc
    def GetSite(self, request: site_service_pb2.GetSiteRequest,  # noqa: N802
                context: grpc.ServicerContext) -> site_service_pb2.GetSiteResponse:
        """One site."""
        prefix, _, name = request.name.partition("/")
        if prefix != "sites" or not name:
            raise errors.invalid_request([("name", "must be sites/{site}")])
        with self.db.read() as connection:
            row = connection.execute(select(sites_table).where(sites_table.c.name == name)).first()
        if row is None:
            raise errors.not_found("site", request.name)
        return site_service_pb2.GetSiteResponse(site=site_message(row, self.offline_after, now_micros()))
