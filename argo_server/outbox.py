"""The transactional outbox: envelopes written in the transaction of the change that caused them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from argobalsam.balsam.v1 import assignment_pb2
from opentelemetry import baggage, propagate, trace
from sqlalchemy import Connection, Integer, Table, bindparam, delete, func, select

from .ids import set_timestamp
from .models import OutboxMessage

ENVELOPE_TYPE = assignment_pb2.AssignmentEnvelope.DESCRIPTOR.full_name
outbox_table = cast(Table, OutboxMessage.__table__)


def current_trace_context() -> dict[str, str]:
    """The W3C trace context of the current span (empty without an active span)."""
    if not trace.get_current_span().get_span_context().is_valid and not baggage.get_all():
        return {}  # nothing to propagate: skip the propagators (called once per job of a batch)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def encode_headers(headers: dict[str, str]) -> str:
    """Trace headers as ``key=value`` lines (W3C values contain no newlines)."""
    return "\n".join(f"{key}={value}" for key, value in sorted(headers.items()))


def decode_headers(text: str) -> dict[str, str]:
    """Inverse of :func:`encode_headers`."""
    pairs = (line.partition("=") for line in text.splitlines() if line)
    return {key: value for key, _, value in pairs}


def outbox_row(envelope: assignment_pb2.AssignmentEnvelope, now_us: int) -> dict[str, Any]:
    """The outbox row holding ``envelope`` for its site."""
    return {"site": envelope.site, "step_id": envelope.step_id, "message_type": ENVELOPE_TYPE,
            "body": envelope.SerializeToString(), "trace_headers": encode_headers(dict(envelope.trace_context)),
            "create_time": now_us}


def make_envelope(step_id: str, attempt: int, sequence: int, site: str, now_us: int,
                  trace_context: dict[str, str]) -> assignment_pb2.AssignmentEnvelope:
    """An envelope without its action (the caller sets assign/cancel/hold/release)."""
    envelope = assignment_pb2.AssignmentEnvelope(step_id=step_id, attempt=attempt, sequence=sequence, site=site)
    if trace_context:  # (an empty map argument alone costs half the constructor)
        envelope.trace_context.update(trace_context)
    set_timestamp(envelope.time, now_us)
    return envelope


@dataclass(frozen=True)
class PendingMessage:
    """An unsent outbox row."""

    id: int
    site: str
    message_type: str
    body: bytes
    headers: dict[str, str]


def claim_batch(connection: Connection, limit: int, skip_locked: bool) -> list[PendingMessage]:
    """The oldest unsent rows; with ``skip_locked`` they stay locked by this transaction, so another
    replica's relay takes the next rows instead of the same ones."""
    query = _CLAIM_SKIP_LOCKED if skip_locked else _CLAIM
    return [PendingMessage(row.id, row.site, row.message_type, row.body, decode_headers(row.trace_headers))
            for row in connection.execute(query, {"limit": limit})]


def rows_after(cursor: Any, last_id: int, limit: int) -> list[PendingMessage]:
    """The oldest rows with an id above ``last_id``: what a relay that sent every row up to ``last_id``
    has still to send. Only on SQLite, where ids grow in commit order (one writer, AUTOINCREMENT); read
    with the driver's cursor (:meth:`~argo_server.db.Database.read_raw`), once per relay round."""
    cursor.execute(_AFTER_SQL, (last_id, limit))
    return [PendingMessage(row_id, site, message_type, body, decode_headers(headers))
            for row_id, site, message_type, body, headers in cursor.fetchall()]


def delete_through(connection: Connection, last_id: int) -> None:
    """Removes every row up to ``last_id`` (a relay reported them sent)."""
    connection.execute(_DELETE_THROUGH, {"last_id": last_id})


# Built once: the relay runs these for every batch, and building a statement costs more than running it.
_CLAIM = select(outbox_table).order_by(outbox_table.c.id).limit(bindparam("limit", type_=Integer))
_CLAIM_SKIP_LOCKED = _CLAIM.with_for_update(skip_locked=True)
_AFTER_SQL = ("SELECT id, site, message_type, body, trace_headers FROM outbox WHERE id > ? "
              "ORDER BY id LIMIT ?")
_DELETE_SENT = delete(outbox_table).where(outbox_table.c.id.in_(bindparam("ids", expanding=True)))
_DELETE_THROUGH = delete(outbox_table).where(outbox_table.c.id <= bindparam("last_id", type_=Integer))


def mark_sent(connection: Connection, ids: Sequence[int]) -> None:
    """Removes published rows: the outbox holds only what is still to be sent."""
    for start in range(0, len(ids), 500):
        connection.execute(_DELETE_SENT, {"ids": list(ids[start:start + 500])})


def pending_count(connection: Connection) -> int:
    """Number of unsent rows."""
    return int(connection.execute(select(func.count()).select_from(outbox_table)).scalar_one())
