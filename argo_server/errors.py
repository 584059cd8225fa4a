"""Rich gRPC errors: every error carries a google.rpc.Status with an ErrorInfo (domain "argobalsam")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "argobalsam"


class ApiError(Exception):
    """An error to return to the gRPC caller, with its code, ErrorInfo reason and optional details."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str,
                 metadata: Mapping[str, str] | None = None,
                 violations: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.violations = list(violations)

    def to_status(self) -> grpc.Status:
        """The ``grpc.Status`` carrying a google.rpc.Status with ErrorInfo (and BadRequest)."""
        details = []
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
        if self.violations:
            bad_request = error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
                for field, description in _within_budget(self.violations)])
            packed = any_pb2.Any()
            packed.Pack(bad_request)
            details.append(packed)
        status = status_pb2.Status(code=_CODE_NUMBERS[self.code], message=_clip(self.message, MAX_MESSAGE),
                                   details=details)
        return rpc_status.to_status(status)


_CODE_NUMBERS = {code: code.value[0] for code in grpc.StatusCode}

# The status travels in trailing metadata, which gRPC limits to 16 KiB (8 KiB advised): an error naming
# thousands of bad fields would reach the client as RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT.
MAX_MESSAGE = 1000
MAX_VIOLATION_BYTES = 4000
MAX_TEXT = 200


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def _within_budget(violations: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The violations that fit the metadata budget (each clipped), and a last one counting the rest."""
    kept: list[tuple[str, str]] = []
    used = 0
    for position, (field, description) in enumerate(violations):
        field, description = _clip(field, MAX_TEXT), _clip(description, MAX_TEXT)
        used += len(field.encode()) + len(description.encode()) + 8
        if used > MAX_VIOLATION_BYTES:
            return [*kept, ("", f"{len(violations) - position} more problems not shown")]
        kept.append((field, description))
    return kept
assert _CODE_NUMBERS[grpc.StatusCode.INVALID_ARGUMENT] == code_pb2.INVALID_ARGUMENT


def invalid_request(violations: list[tuple[str, str]]) -> ApiError:
    """INVALID_ARGUMENT naming every bad field."""
    fields = ", ".join(field for field, _ in violations)
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST",
                    f"invalid request: {fields}", violations=violations)


def not_found(kind: str, name: str) -> ApiError:
    """NOT_FOUND for a job or site."""
    return ApiError(grpc.StatusCode.NOT_FOUND, "NOT_FOUND", f"{kind} {name!r} not found", {"name": name})


def invalid_transition(message: str, name: str, state: str) -> ApiError:
    """FAILED_PRECONDITION for a verb the job's state does not allow."""
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION", message,
                    {"name": name, "state": state})


def request_id_reused(request_id: str) -> ApiError:
    """ALREADY_EXISTS for a request_id used before with a different request."""
    return ApiError(grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED",
                    f"request_id {request_id!r} was used for a different request", {"request_id": request_id})


def internal(message: str = "internal error") -> ApiError:
    """INTERNAL for an unexpected failure (details are logged, not returned)."""
    return ApiError(grpc.StatusCode.INTERNAL, "INTERNAL", message)


def abort(context: grpc.ServicerContext, error: ApiError) -> None:
    """Ends the call with ``error`` (raises, as ``context.abort_with_status`` does)."""
    context.abort_with_status(error.to_status())
