"""Python client and argo CLI of ARGO & Balsam.

``ArgoClient`` wraps the generated gRPC stubs; :mod:`argo_client.submission` reads submission files
(the seed's JSON and the API's YAML/JSON form); :mod:`argo_client.errors` holds the exceptions.
"""

from argo_client.client import ArgoClient, RetryPolicy
from argo_client.config import TlsConfig
from argo_client.errors import (
    AlreadyExists,
    ArgoError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServerError,
    SubmissionError,
    Unauthenticated,
    Unavailable,
)
from argo_client.submission import job_from_document, load_submission

__all__ = [
    "AlreadyExists",
    "ArgoClient",
    "ArgoError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RetryPolicy",
    "ServerError",
    "SubmissionError",
    "TlsConfig",
    "Unauthenticated",
    "Unavailable",
    "job_from_document",
    "load_submission",
]
