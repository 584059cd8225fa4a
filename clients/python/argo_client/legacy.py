"""The seed's JSON submission format, accepted unchanged and mapped onto :class:`job_pb2.Job`.

The original ARGO took a JSON object with the job's fields at the top and a ``jobs`` list holding one
entry per step (the seed called steps "Balsam jobs")::

    {"username": "bob", "email_address": "bob@example.org", "preprocess": null, ...,
     "jobs": [{"executable": "zjetgen90_mpi", "executable_args": "alpout.input.0", ...}, ...]}

Every field keeps its meaning: ``username`` becomes the job's ``owner``; argument fields that the seed
wrote as one string (``executable_args``, ``scheduler_args``, ``preprocess_args``, ``postprocess_args``)
are split like a POSIX shell would (:func:`shlex.split`, without running anything) into argv lists, and
lists are taken as they are; ``null`` means the field's default (``num_evts`` defaults to -1, the
program's own default). An unknown key is refused rather than ignored, so a typo never silently drops a
setting. All problems are reported at once, each naming its field (``jobs[1].nodes: must be an integer``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from argobalsam.argo.v1 import job_pb2

from argo_client.errors import FieldViolation, SubmissionError

#: Seed top-level string fields → Job fields.
JOB_STRINGS = {
    "username": "owner",
    "email_address": "email_address",
    "group_identifier": "group_identifier",
    "input_url": "input_url",
    "output_url": "output_url",
    "preprocess": "preprocess",
    "postprocess": "postprocess",
}
#: Seed top-level argument fields (string or list) → Job fields.
JOB_ARGS = ("preprocess_args", "postprocess_args")
#: Seed step string fields (same names in Step).
STEP_STRINGS = ("executable", "target_site", "preprocess", "postprocess", "condor_job_file", "condor_dagman_file")
#: Seed step argument fields (string or list; same names in Step).
STEP_ARGS = ("executable_args", "scheduler_args", "preprocess_args", "postprocess_args")
#: Seed step file lists (same names in Step).
STEP_FILES = ("input_files", "output_files")
#: Seed step integers with the bit width of their Step field and the default used for ``null``.
STEP_INTEGERS: dict[str, tuple[int, int]] = {
    "nodes": (32, 0),
    "processes_per_node": (32, 0),
    "wall_minutes": (32, 0),
    "num_evts": (64, -1),
}

JOB_KEYS = frozenset(JOB_STRINGS) | frozenset(JOB_ARGS) | {"jobs"}
STEP_KEYS = frozenset(STEP_STRINGS) | frozenset(STEP_ARGS) | frozenset(STEP_FILES) | frozenset(STEP_INTEGERS)


class _Reader:
    """Converts values field by field, collecting every violation instead of stopping at the first."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def refuse(self, path: str, description: str) -> None:
        self.violations.append((path, description))

    def string(self, value: Any, path: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.refuse(path, f"must be a string, not {_kind(value)}")
            return ""
        if not _is_utf8(value):
            self.refuse(path, "must be valid UTF-8 text")
            return ""
        return value

    def args(self, value: Any, path: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            if not _is_utf8(value):
                self.refuse(path, "must be valid UTF-8 text")
                return []
            try:
                return shlex.split(value)
            except ValueError as exc:  # unbalanced quotes or a trailing escape
                self.refuse(path, f"cannot be split into arguments: {exc}")
                return []
        return self.strings(value, path, "a string or a list of strings")

    def strings(self, value: Any, path: str, expected: str = "a list of strings") -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.refuse(path, f"must be {expected}, not {_kind(value)}")
            return []
        result: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.refuse(f"{path}[{index}]", f"must be a string, not {_kind(item)}")
            elif not _is_utf8(item):
                self.refuse(f"{path}[{index}]", "must be valid UTF-8 text")
            else:
                result.append(item)
        return result

    def integer(self, value: Any, path: str, bits: int, default: int) -> int:
        if value is None:
            return default
        # bool is an int in Python but `true` is never a node count.
        if isinstance(value, bool) or not isinstance(value, int):
            self.refuse(path, f"must be an integer, not {_kind(value)}")
            return default
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        if not low <= value <= high:
            self.refuse(path, f"must be between {low} and {high}")
            return default
        return value

    def unknown_keys(self, data: Mapping[Any, Any], known: frozenset[str], prefix: str) -> None:
        for key in data:
            if key not in known:
                self.refuse(f"{prefix}{key}", f"unknown field (known: {', '.join(sorted(known))})")


def _kind(value: Any) -> str:
    """JSON's name for the type of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_utf8(text: str) -> bool:
    """Whether protobuf can store the string (JSON's ``\\ud800`` decodes to a lone surrogate it cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def job_from_legacy(document: Any) -> job_pb2.Job:
    """Maps a decoded seed submission (the JSON object the original ARGO accepted) onto a Job.

    :param document: the decoded JSON value.
    :returns: the job to create; output-only fields are left unset.
    :raises SubmissionError: naming every field that is unknown or of the wrong type.
    """
    if not isinstance(document, dict):
        raise SubmissionError(
            "not a seed submission", [("", f"must be a JSON object with a 'jobs' list, not {_kind(document)}")]
        )
    reader = _Reader()
    reader.unknown_keys(document, JOB_KEYS, "")
    job = job_pb2.Job()
    for seed_name, field in JOB_STRINGS.items():
        setattr(job, field, reader.string(document.get(seed_name), seed_name))
    for field in JOB_ARGS:
        getattr(job, field).extend(reader.args(document.get(field), field))
    steps = document.get("jobs")
    if not isinstance(steps, list):
        reader.refuse("jobs", f"must be a list of steps, not {_kind(steps)}")
    elif not steps:
        reader.refuse("jobs", "must hold at least one step")
    else:
        for index, entry in enumerate(steps):
            step = _step_from_legacy(entry, f"jobs[{index}]", reader)
            if step is not None:
                job.steps.append(step)
    if reader.violations:
        raise SubmissionError("invalid seed submission", reader.violations)
    return job


def _step_from_legacy(entry: Any, path: str, reader: _Reader) -> job_pb2.Step | None:
    """Maps one entry of the seed's ``jobs`` list onto a Step (``None`` when it is not an object)."""
    if not isinstance(entry, dict):
        reader.refuse(path, f"must be an object, not {_kind(entry)}")
        return None
    reader.unknown_keys(entry, STEP_KEYS, f"{path}.")
    step = job_pb2.Step()
    for field in STEP_STRINGS:
        setattr(step, field, reader.string(entry.get(field), f"{path}.{field}"))
    for field in STEP_ARGS:
        getattr(step, field).extend(reader.args(entry.get(field), f"{path}.{field}"))
    for field in STEP_FILES:
        getattr(step, field).extend(reader.strings(entry.get(field), f"{path}.{field}"))
    for field, (bits, default) in STEP_INTEGERS.items():
        setattr(step, field, reader.integer(entry.get(field), f"{path}.{field}", bits, default))
    return step
