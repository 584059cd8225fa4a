"""Submission files: the seed's JSON (a ``jobs`` list) or the new API's YAML/JSON (a ``steps`` list).

The new form uses the field names of the proto's ``Job`` and ``Step`` (``owner``, ``email_address``,
``steps: [{target_site, executable, executable_args: [...], ...}]``; protobuf's camelCase JSON names are
accepted too). Output-only fields (``name``, ``state``, times, ...) are dropped, so the output of
``argo show JOB --output json`` can be submitted again. A file may also hold a list of documents, which
are created together in one call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from argobalsam.argo.v1 import job_pb2
from google.protobuf import descriptor, json_format, message

from argo_client.errors import FieldViolation, SubmissionError
from argo_client.legacy import job_from_legacy

#: Fields the server sets; a submission's values for them are dropped.
JOB_OUTPUT_ONLY = ("name", "state", "state_reason", "current_step", "create_time", "update_time", "end_time", "data_url")
STEP_OUTPUT_ONLY = (
    "name", "index", "state", "state_reason", "failed_phase", "attempt", "scheduler_id", "exit_code",
    "dispatch_time", "start_time", "end_time", "update_time",
)


def job_from_document(document: Any) -> job_pb2.Job:
    """Turns one decoded submission into a Job, choosing the form by its ``jobs`` or ``steps`` key.

    :raises SubmissionError: naming every offending field.
    """
    if isinstance(document, dict):
        has_jobs, has_steps = "jobs" in document, "steps" in document
        if has_jobs and has_steps:
            raise SubmissionError(
                "ambiguous submission",
                [("", "has both 'jobs' (the seed's form) and 'steps' (the API's form); use one")],
            )
        if has_jobs:
            return job_from_legacy(document)
        if has_steps:
            return job_from_api_document(document)
    raise SubmissionError(
        "not a submission",
        [("", "must be an object with a 'jobs' list (the seed's form) or a 'steps' list (the API's form)")],
    )


def job_from_api_document(document: dict[str, Any]) -> job_pb2.Job:
    """Parses the new API form (``Job`` fields with a ``steps`` list) with protobuf's JSON mapping.

    :raises SubmissionError: naming every unknown or malformed field, e.g. ``steps[0].nodes``.
    """
    violations: list[FieldViolation] = []
    top = {key: value for key, value in document.items() if key != "steps"}
    job = job_pb2.Job()
    _parse_fields(top, job, "", violations)
    steps = document.get("steps")
    if not isinstance(steps, list) or not steps:
        violations.append(("steps", "must be a non-empty list of steps"))
    else:
        for index, entry in enumerate(steps):
            path = f"steps[{index}]"
            if not isinstance(entry, dict):
                violations.append((path, "must be an object"))
                continue
            step = job_pb2.Step()
            _parse_fields(entry, step, f"{path}.", violations)
            for field in STEP_OUTPUT_ONLY:
                step.ClearField(field)
            job.steps.append(step)
    if violations:
        raise SubmissionError("invalid submission", violations)
    for field in JOB_OUTPUT_ONLY:
        job.ClearField(field)
    return job


def _parse_fields(data: dict[Any, Any], target: message.Message, prefix: str,
                  violations: list[FieldViolation]) -> None:
    """Parses each key on its own so that every error names its field, then merges it into ``target``."""
    fields = target.DESCRIPTOR.fields_by_name
    by_json = {field.json_name: field for field in target.DESCRIPTOR.fields}
    for key, value in data.items():
        field: Any = None
        if isinstance(key, str):
            field = fields.get(key) or by_json.get(key)
        if field is None or field.name == "steps":
            hidden = {"steps", *JOB_OUTPUT_ONLY, *STEP_OUTPUT_ONLY}
            known = ", ".join(sorted(name for name in fields if name not in hidden))
            violations.append((f"{prefix}{key}", f"unknown field (known: {known})"))
            continue
        if value is None:
            continue  # null means the default, as in protobuf's JSON mapping
        part = type(target)()
        try:
            json_format.ParseDict({field.name: value}, part)
        except (json_format.ParseError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            violations.append((f"{prefix}{field.name}", _describe_parse_error(field, exc)))
            continue
        target.MergeFrom(part)


def _describe_parse_error(field: descriptor.FieldDescriptor, exc: Exception) -> str:
    """A short description of a protobuf JSON parse error for one field."""
    if field.is_repeated:
        return "must be a list of strings"
    if field.type in (descriptor.FieldDescriptor.TYPE_INT32, descriptor.FieldDescriptor.TYPE_INT64):
        bits = 32 if field.type == descriptor.FieldDescriptor.TYPE_INT32 else 64
        return f"must be an integer between {-(2 ** (bits - 1))} and {2 ** (bits - 1) - 1}"
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        return "must be true or false"
    if field.type == descriptor.FieldDescriptor.TYPE_STRING:
        return "must be a string"
    text = str(exc).split(": ", 1)[-1]
    return f"cannot be parsed: {text}"


def parse_submission_text(text: str, source: str = "<submission>") -> list[job_pb2.Job]:
    """Decodes a submission (JSON, or YAML when it is not JSON) into one job or several.

    :param text: the file's content.
    :param source: the file's name, used in error messages.
    :returns: the jobs, in file order (one for a single document, several for a list of documents).
    :raises SubmissionError: when the text is neither JSON nor YAML, or a document is invalid.
    """
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SubmissionError(f"{source}: neither JSON nor YAML: {exc}") from exc
    if isinstance(document, list):
        if not document:
            raise SubmissionError(f"{source}: empty list of submissions")
        jobs: list[job_pb2.Job] = []
        violations: list[FieldViolation] = []
        for index, item in enumerate(document):
            try:
                jobs.append(job_from_document(item))
            except SubmissionError as exc:
                violations.extend((f"[{index}]{_join(path)}", text) for path, text in exc.field_violations)
        if violations:
            raise SubmissionError(f"{source}: invalid submission", violations)
        return jobs
    try:
        return [job_from_document(document)]
    except SubmissionError as exc:
        raise SubmissionError(f"{source}: {exc.message}", exc.field_violations) from None


def _join(path: str) -> str:
    """Appends a field path to a list index (``[0]`` + ``jobs[1].nodes`` → ``[0].jobs[1].nodes``)."""
    return f".{path}" if path else ""


def load_submission(path: str | Path) -> list[job_pb2.Job]:
    """Reads a submission file (``-`` is not special here; the CLI handles standard input).

    :raises SubmissionError: when the file cannot be read or holds an invalid submission.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{file}: cannot read: {exc}") from exc
    return parse_submission_text(text, str(file))
