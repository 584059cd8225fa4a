"""Authentication of gRPC calls and the ownership rules of jobs.

With ``auth`` on, :class:`AuthInterceptor` requires ``authorization: Bearer <token>`` on every call
except the health service (load balancers and orchestrators probe it without credentials, and it tells
nothing but "serving"); server reflection needs a token like the API it describes. A call without a
valid token ends with UNAUTHENTICATED (ErrorInfo reason ``UNAUTHENTICATED``) before any servicer code
runs. The caller's :class:`~argo_server.tokens.Identity` is then available to the servicer through
:func:`current_identity` (a context variable set around the handler, streams included).

Ownership: a user sees, lists, watches and changes only jobs whose ``owner`` is their user name; another
user's job is NOT_FOUND, exactly like a job that does not exist, so ids cannot be probed. Admins see
everything. With ``auth`` off there is no identity and no filtering (the server then binds loopback only).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

import grpc
from argobalsam.argo.v1 import argo_service_pb2, job_pb2
from sqlalchemy import Table, select

from . import errors
from .db import Database
from .models import Job
from .tokens import Identity, TokenStore

log = logging.getLogger(__name__)

#: Methods callable without a token (prefix match on the full method name).
PUBLIC_METHODS = ("/grpc.health.v1.Health/",)

_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("argo_identity", default=None)
_jobs = cast(Table, Job.__table__)


def current_identity() -> Identity | None:
    """The authenticated caller of the current gRPC call (None when authentication is off)."""
    return _identity.get()


def unauthenticated(message: str) -> errors.ApiError:
    """UNAUTHENTICATED with reason UNAUTHENTICATED."""
    return errors.ApiError(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", message)


def permission_denied(field: str, message: str) -> errors.ApiError:
    """PERMISSION_DENIED naming the field that asked for more than the caller may have."""
    return errors.ApiError(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", f"{field}: {message}",
                           {"field": field}, violations=[(field, message)])


def bearer_token(metadata: Any) -> str | None:
    """The token of an ``authorization: Bearer ...`` entry of the call metadata, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _wrap_unary(behavior: Callable[[Any, Any], Any], identity: Identity) -> Callable[[Any, Any], Any]:
    def call(request: Any, context: Any) -> Any:
        reset = _identity.set(identity)
        try:
            return behavior(request, context)
        finally:
            _identity.reset(reset)

    return call


def _wrap_stream(behavior: Callable[[Any, Any], Iterator[Any]], identity: Identity
                 ) -> Callable[[Any, Any], Iterator[Any]]:
    # gRPC iterates a response stream after the behavior returned, so the identity is set inside the
    # generator: it is current whenever the servicer's generator runs.
    def call(request: Any, context: Any) -> Iterator[Any]:
        reset = _identity.set(identity)
        try:
            yield from behavior(request, context)
        finally:
            _identity.reset(reset)

    return call


def _refusal(handler: grpc.RpcMethodHandler, error: errors.ApiError) -> grpc.RpcMethodHandler:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        errors.abort(context, error)

    def refuse_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        errors.abort(context, error)
        yield from ()

    kinds = {"request_deserializer": handler.request_deserializer,
             "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **kinds)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **kinds)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **kinds)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **kinds)


def _with_identity(handler: grpc.RpcMethodHandler, identity: Identity) -> grpc.RpcMethodHandler:
    kinds = {"request_deserializer": handler.request_deserializer,
             "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_wrap_unary(handler.unary_unary, identity), **kinds)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_wrap_stream(handler.unary_stream, identity), **kinds)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_wrap_unary(handler.stream_unary, identity), **kinds)
    stream_stream: Callable[[Any, Any], Iterator[Any]] = handler.stream_stream  # type: ignore[assignment]
    return grpc.stream_stream_rpc_method_handler(_wrap_stream(stream_stream, identity), **kinds)


class AuthInterceptor(grpc.ServerInterceptor):
    """Requires a valid bearer token on every call but the public ones; sets the caller's identity."""

    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
                          handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        """Refuses an unauthenticated call, or runs it with the caller's identity current."""
        handler = continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(PUBLIC_METHODS):
            return handler
        token = bearer_token(handler_call_details.invocation_metadata)  # type: ignore[attr-defined]
        if token is None:
            return _refusal(handler, unauthenticated("missing bearer token (authorization: Bearer ...)"))
        try:
            identity = self.tokens.verify(token)
        except Exception:
            log.exception("checking a token failed")
            return _refusal(handler, errors.internal("cannot check the token now"))
        if identity is None:
            return _refusal(handler, unauthenticated("invalid or revoked token"))
        return _with_identity(handler, identity)


# -- ownership ------------------------------------------------------------------------------------


def may_see(owner: str) -> bool:
    """Whether the caller may see (and change) a job owned by ``owner``."""
    identity = current_identity()
    return identity is None or identity.admin or identity.user == owner


def claim_owner(job: job_pb2.Job, field: str) -> None:
    """Sets a new job's owner to the caller; an explicit different owner needs an admin.

    Raises PERMISSION_DENIED naming ``field`` for a non-admin asking for someone else's name."""
    identity = current_identity()
    if identity is None:
        return
    if not job.owner:
        job.owner = identity.user
    elif job.owner != identity.user and not identity.admin:
        raise permission_denied(field, f"you may create jobs only for yourself ({identity.user!r}), "
                                       f"not for {job.owner!r}")


def scope_owner(owner: str, field: str = "owner") -> str:
    """The owner filter a listing or watch must use: the caller's own name for a non-admin.

    Raises PERMISSION_DENIED when a non-admin asks for another user's jobs."""
    identity = current_identity()
    if identity is None or identity.admin:
        return owner
    if owner and owner != identity.user:
        raise permission_denied(field, f"you may list only your own jobs ({identity.user!r})")
    return identity.user


def check_job_access(db: Database, job_id: str, name: str) -> None:
    """NOT_FOUND unless the job exists and the caller may see it (one indexed read; an owner never
    changes, so checking before the change is as good as checking inside it)."""
    identity = current_identity()
    if identity is None or identity.admin:
        return
    with db.read() as connection:
        owner = connection.execute(select(_jobs.c.owner).where(_jobs.c.id == job_id)).scalar()
    if owner is None or owner != identity.user:
        raise errors.not_found("job", name)


def scoped_list_request(request: argo_service_pb2.ListJobsRequest) -> argo_service_pb2.ListJobsRequest:
    """``request`` limited to the caller's jobs (a copy when it changes)."""
    owner = scope_owner(request.owner)
    if owner == request.owner:
        return request
    scoped = argo_service_pb2.ListJobsRequest()
    scoped.CopyFrom(request)
    scoped.owner = owner
    return scoped
