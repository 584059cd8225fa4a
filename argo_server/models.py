"""Database schema: SQLAlchemy 2 typed models of jobs, steps, events, the outbox and sites.

Times are integers (microseconds since the epoch, UTC): portable across SQLite, PostgreSQL and MySQL,
cheap to compare and index. The submitted job and step specifications are stored as serialized protobuf
(``spec``): the server never queries inside them, and it keeps inserts few and fast.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names fixed so that Alembic migrations are the same on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# An autoincrementing 64-bit key; SQLite only autoincrements an INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")
# Serialized protobuf; MySQL's BLOB stops at 64 KiB, so ask for the long variant.
Blob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Job(Base):
    """One workflow. ``id`` is time-ordered, so ordering by id is ordering by creation."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), default="")
    group_identifier: Mapped[str] = mapped_column(String(255), default="")
    email_address: Mapped[str] = mapped_column(String(320), default="")
    #: Serialized ``argobalsam.argo.v1.Job`` as submitted, without its steps.
    spec: Mapped[bytes] = mapped_column(Blob)
    step_count: Mapped[int] = mapped_column(Integer)
    state: Mapped[int] = mapped_column(Integer)
    state_reason: Mapped[str] = mapped_column(Text, default="")
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    data_url: Mapped[str] = mapped_column(Text, default="")
    #: CreateJob's request_id (unique: a concurrent duplicate fails to insert and reads the first job).
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)
    #: Digest of the request, to tell a retry from a reuse of the id with a different request.
    request_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: W3C context of CreateJob's span as ``key=value`` lines: every envelope of the job continues
    #: this trace, also those caused by calls from other traces (see :mod:`argo_server.tracing`).
    trace_context: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_owner_id", "owner", "id"),
        Index("ix_jobs_group_identifier_id", "group_identifier", "id"),
    )


class JobSite(Base):
    """The sites a job's steps target, with the job's state copied so that the ListJobs filter
    "state and site, newest first" is one index range scan."""

    __tablename__ = "job_sites"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    site: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_job_sites_site_state_job_id", "site", "state", "job_id"),
        Index("ix_job_sites_site_job_id", "site", "job_id"),
    )


class Step(Base):
    """One step of a job and the state of its current attempt."""

    __tablename__ = "steps"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_site: Mapped[str] = mapped_column(String(128))
    #: Serialized ``argobalsam.argo.v1.Step`` as submitted (output-only fields cleared).
    spec: Mapped[bytes] = mapped_column(Blob)
    state: Mapped[int] = mapped_column(Integer)
    state_reason: Mapped[str] = mapped_column(Text, default="")
    failed_phase: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    #: Highest agent sequence applied for the current attempt (status idempotency).
    report_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Sequence of the last envelope the server wrote for this step (increasing across attempts).
    envelope_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    scheduler_id: Mapped[str] = mapped_column(String(255), default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dispatch_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    start_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    end_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    update_time: Mapped[int] = mapped_column(BigInteger)


class JobEvent(Base):
    """One entry of a job's history; ``event_id`` is the cursor of ListJobEvents and WatchJobs."""

    __tablename__ = "job_events"

    event_id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32))
    time: Mapped[int] = mapped_column(BigInteger)
    job_state: Mapped[int] = mapped_column(Integer)
    step_index: Mapped[int] = mapped_column(Integer, default=-1)
    previous_step_state: Mapped[int] = mapped_column(Integer, default=0)
    step_state: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    site: Mapped[str] = mapped_column(String(128), default="")
    scheduler_id: Mapped[str] = mapped_column(String(255), default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failed_phase: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_job_events_job_id_event_id", "job_id", "event_id"),)


class OutboxMessage(Base):
    """An AssignmentEnvelope written with the state change that caused it, waiting for the relay.

    The relay deletes a row once the broker confirmed the message, so the table holds only what is
    still to be sent. On SQLite the id is AUTOINCREMENT, never reused after a delete: ids then grow in
    commit order, which a relay process relies on to read only what follows its last sent row."""

    __tablename__ = "outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(128))
    step_id: Mapped[str] = mapped_column(String(64))
    #: Full protobuf name of the body's message (the AMQP ``type`` property).
    message_type: Mapped[str] = mapped_column(String(128))
    body: Mapped[bytes] = mapped_column(Blob)
    #: W3C trace context as ``key=value`` lines (sent as AMQP headers).
    trace_headers: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[int] = mapped_column(BigInteger)


class Site(Base):
    """A site as last reported by its agent's heartbeat."""

    __tablename__ = "sites"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_heartbeat_time: Mapped[int] = mapped_column(BigInteger)
    #: True after a heartbeat with ``stopping`` set: offline at once.
    stopping: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Serialized ``argobalsam.balsam.v1.Heartbeat`` (version, hostname, scheduler, plugins, capacity).
    heartbeat: Mapped[bytes] = mapped_column(Blob)


class MailNotice(Base):
    """An e-mail notice claimed by one server replica, so that replicas send each notice once.

    The replica whose insert of the event id succeeds sends the notice; the others skip it."""

    __tablename__ = "mail_notices"

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    job_id: Mapped[str] = mapped_column(String(32))
    claim_time: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """A bearer token of the gRPC API (``argo-server token create``), stored hashed.

    The token handed to the user is ``argo_<id>_<secret>``: ``id`` finds the row, and the SHA-256 of the
    secret is compared in constant time, so the database never holds anything that logs a user in."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(255))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Hex SHA-256 of the token's secret part.
    secret_hash: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[int] = mapped_column(BigInteger)
    #: Set by ``token revoke``; a revoked token is refused but kept for the record.
    revoke_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (Index("ix_tokens_user", "user"),)
