"""Exceptions raised by :class:`argo_client.ArgoClient`, built from the server's ``google.rpc.Status``.

The server puts an ``ErrorInfo`` (domain ``argobalsam``) on every error and, for bad input, a
``BadRequest`` naming every offending field; both are decoded here so that callers never touch gRPC.
"""

from __future__ import annotations

from typing import cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

#: One field violation: (field path such as ``job.steps[1].nodes``, what is wrong with it).
FieldViolation = tuple[str, str]


class ArgoError(Exception):
    """Base of every error the client raises for a failed call.

    :ivar code: the gRPC status code (``None`` for errors raised before any call, e.g. bad input files).
    :ivar reason: ``ErrorInfo.reason`` sent by the server (``ERROR_REASON_...``), or ``""``.
    :ivar metadata: ``ErrorInfo.metadata`` sent by the server.
    :ivar field_violations: ``BadRequest`` field violations, empty for most errors.
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: list[FieldViolation] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.field_violations: list[FieldViolation] = list(field_violations or [])

    def describe(self) -> str:
        """The message followed by one ``field: description`` line per field violation."""
        lines = [self.message]
        lines.extend(f"{field}: {description}" if field else description for field, description in self.field_violations)
        return "\n".join(lines)


class InvalidArgument(ArgoError):
    """The request had invalid fields; :attr:`field_violations` names each of them."""


class NotFound(ArgoError):
    """The job or site does not exist, or the caller may not see it."""


class AlreadyExists(ArgoError):
    """The resource exists already (e.g. a ``request_id`` reused with a different request)."""


class FailedPrecondition(ArgoError):
    """The verb is not allowed in the job's current state (e.g. releasing a job that is not held)."""


class PermissionDenied(ArgoError):
    """The caller may not do this."""


class Unauthenticated(ArgoError):
    """No credentials, or credentials the server refused."""


class Unavailable(ArgoError):
    """The server could not be reached or did not answer in time (after the client's retries)."""


class ServerError(ArgoError):
    """Any other failure on the server's side (``INTERNAL``, ``UNKNOWN``, ...)."""


_BY_CODE: dict[grpc.StatusCode, type[ArgoError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


def error_from_rpc(error: grpc.RpcError) -> ArgoError:
    """Translates a failed gRPC call into the matching :class:`ArgoError` subclass.

    :param error: the exception raised by a stub call (it is also a :class:`grpc.Call`).
    :returns: the exception to raise, carrying the code, ``ErrorInfo`` and ``BadRequest`` details.
    """
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else None) or str(code)
    reason = ""
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    try:
        status = rpc_status.from_call(cast(grpc.Call, error)) if hasattr(error, "trailing_metadata") else None
    except ValueError:
        # The status in the trailers disagrees with the call's own code or message: ignore the details.
        status = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend((v.field, v.description) for v in bad_request.field_violations)
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                metadata = dict(info.metadata)
    cls = _BY_CODE.get(code, ServerError)
    return cls(message, code=code, reason=reason, metadata=metadata, field_violations=violations)


class SubmissionError(ArgoError, ValueError):
    """A submission file or document that cannot be turned into a job; raised before any call.

    :attr:`field_violations` names every offending field, e.g. ``("jobs[1].nodes", "must be an integer")``.
    """

    def __init__(self, message: str, field_violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message, field_violations=field_violations)

    def __str__(self) -> str:
        return self.describe()
