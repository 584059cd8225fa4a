"""Request validation that reports every offending field at once (google.rpc.BadRequest paths)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from argobalsam.argo.v1 import argo_service_pb2, job_pb2

MAX_STEPS = 100
MAX_LIST = 1000           # entries of any repeated string field
MAX_STRING = 4096         # characters of any free string (URLs, arguments, reasons)
MAX_NAME = 255            # owner, group, e-mail, hook names, file names
MAX_BATCH = 50_000        # requests in one BatchCreateJobs
MAX_PAGE_SIZE = 1000

SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Violations = list[tuple[str, str]]

_JOB_STATES = set(job_pb2.JobState.values()) - {job_pb2.JOB_STATE_UNSPECIFIED}


def _check_string(out: Violations, path: str, value: str, limit: int = MAX_STRING) -> None:
    if len(value) > limit:
        out.append((path, f"longer than {limit} characters"))
    elif "\x00" in value:
        out.append((path, "contains a NUL character"))


def _check_strings(out: Violations, path: str, values: Sequence[str], limit: int = MAX_STRING) -> None:
    if len(values) > MAX_LIST:
        out.append((path, f"more than {MAX_LIST} entries"))
        return
    for position, value in enumerate(values):
        _check_string(out, f"{path}[{position}]", value, limit)


def file_name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe relative file name, or None when it is."""
    if not name:
        return "empty file name"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    if "\x00" in name:
        return "contains a NUL character"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path; give a name relative to the step's working directory"
    if ".." in re.split(r"[/\\]", name):
        return "contains '..'"
    return None


def _check_files(out: Violations, path: str, names: Sequence[str]) -> None:
    if len(names) > MAX_LIST:
        out.append((path, f"more than {MAX_LIST} entries"))
        return
    for position, name in enumerate(names):
        problem = file_name_problem(name)
        if problem:
            out.append((f"{path}[{position}]", problem))


def _check_step(out: Violations, path: str, step: job_pb2.Step, known_sites: Iterable[str] | None) -> None:
    if not step.target_site:
        out.append((f"{path}.target_site", "required"))
    elif not SITE_NAME.match(step.target_site):
        out.append((f"{path}.target_site", "must be letters, digits, '_', '.' or '-' (at most 128)"))
    elif known_sites is not None and step.target_site not in known_sites:
        out.append((f"{path}.target_site", f"unknown site {step.target_site!r}"))
    if not step.executable and not step.executable_args:
        out.append((f"{path}.executable", "executable or executable_args is required"))
    _check_string(out, f"{path}.executable", step.executable)
    _check_strings(out, f"{path}.executable_args", step.executable_args)
    _check_files(out, f"{path}.input_files", step.input_files)
    _check_files(out, f"{path}.output_files", step.output_files)
    for field in ("nodes", "processes_per_node", "wall_minutes"):
        if getattr(step, field) < 0:
            out.append((f"{path}.{field}", "must not be negative"))
    if step.num_evts < -1:
        out.append((f"{path}.num_evts", "must be -1 (the program's default) or more"))
    _check_strings(out, f"{path}.scheduler_args", step.scheduler_args)
    for field in ("preprocess", "postprocess"):
        _check_string(out, f"{path}.{field}", getattr(step, field), MAX_NAME)
        _check_strings(out, f"{path}.{field}_args", getattr(step, f"{field}_args"))
    for field in ("condor_job_file", "condor_dagman_file"):
        value = getattr(step, field)
        if value:
            problem = file_name_problem(value)
            if problem:
                out.append((f"{path}.{field}", problem))


def validate_job(job: job_pb2.Job, known_sites: Iterable[str] | None = None, path: str = "job") -> Violations:
    """Every problem of a job to create, as (field path, description) pairs."""
    out: Violations = []
    if not job.steps:
        out.append((f"{path}.steps", "at least one step is required"))
    elif len(job.steps) > MAX_STEPS:
        out.append((f"{path}.steps", f"more than {MAX_STEPS} steps"))
    else:
        sites = set(known_sites) if known_sites is not None else None
        for index, step in enumerate(job.steps):
            _check_step(out, f"{path}.steps[{index}]", step, sites)
    for field in ("owner", "group_identifier", "preprocess", "postprocess"):
        _check_string(out, f"{path}.{field}", getattr(job, field), MAX_NAME)
    if job.email_address and (len(job.email_address) > MAX_NAME or not EMAIL.match(job.email_address)):
        out.append((f"{path}.email_address", "not an e-mail address"))
    for field in ("input_url", "output_url"):
        _check_string(out, f"{path}.{field}", getattr(job, field))
    for field in ("preprocess_args", "postprocess_args"):
        _check_strings(out, f"{path}.{field}", getattr(job, field))
    return out


def validate_create(request: argo_service_pb2.CreateJobRequest, known_sites: Iterable[str] | None = None,
                    path: str = "") -> Violations:
    """Every problem of a CreateJobRequest (``path`` prefixes the field paths inside a batch)."""
    prefix = f"{path}." if path else ""
    out: Violations = []
    if not request.HasField("job"):
        out.append((f"{prefix}job", "required"))
    else:
        out.extend(validate_job(request.job, known_sites, f"{prefix}job"))
    _check_string(out, f"{prefix}request_id", request.request_id, 128)
    return out


def validate_list(request: argo_service_pb2.ListJobsRequest) -> Violations:
    """Every problem of a ListJobsRequest (the page token is checked when it is decoded)."""
    out: Violations = []
    if request.page_size < 0:
        out.append(("page_size", "must not be negative"))
    for position, state in enumerate(request.states):
        if state not in _JOB_STATES:
            out.append((f"states[{position}]", f"unknown job state {state}"))
    _check_string(out, "owner", request.owner, MAX_NAME)
    _check_string(out, "group_identifier", request.group_identifier, MAX_NAME)
    if request.site and not SITE_NAME.match(request.site):
        out.append(("site", "not a site name"))
    return out
