"""Request validation that reports every offending field at once (google.rpc.BadRequest paths)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

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


# The helpers take a field's path in two parts and join them only for a violation: a valid request (the
# common case, 1000 of them in a batch) builds no strings.

def _string_problem(value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"longer than {limit} characters"
    if "\x00" in value:
        return "contains a NUL character"
    return None


def _check_string(out: Violations, path: str, field: str, value: str, limit: int = MAX_STRING) -> None:
    problem = _string_problem(value, limit)
    if problem:
        out.append((path + field, problem))


def _check_each(out: Violations, path: str, field: str, values: Sequence[str],
                problem_of: Callable[..., str | None], *args: Any) -> None:
    """A repeated field: at most MAX_LIST entries, each without ``problem_of(value, *args)``."""
    if len(values) > MAX_LIST:
        out.append((path + field, f"more than {MAX_LIST} entries"))
        return
    for position, value in enumerate(values):
        problem = problem_of(value, *args)
        if problem:
            out.append((f"{path}{field}[{position}]", problem))


def _check_strings(out: Violations, path: str, field: str, values: Sequence[str], limit: int = MAX_STRING) -> None:
    _check_each(out, path, field, values, _string_problem, limit)


_DRIVE = re.compile(r"^[A-Za-z]:")
_SEPARATOR = re.compile(r"[/\\]")


def file_name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe relative file name, or None when it is."""
    if not name:
        return "empty file name"
    problem = _string_problem(name, MAX_NAME)
    if problem:
        return problem
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "absolute path; give a name relative to the step's working directory"
    if ".." in name and ".." in _SEPARATOR.split(name):
        return "contains '..'"
    return None


def _check_files(out: Violations, path: str, field: str, names: Sequence[str]) -> None:
    _check_each(out, path, field, names, file_name_problem)


def _check_step(out: Violations, path: str, step: job_pb2.Step, known_sites: Iterable[str] | None) -> None:
    site = step.target_site
    if not site:
        out.append((f"{path}.target_site", "required"))
    elif not SITE_NAME.match(site):
        out.append((f"{path}.target_site", "must be letters, digits, '_', '.' or '-' (at most 128)"))
    elif known_sites is not None and site not in known_sites:
        out.append((f"{path}.target_site", f"unknown site {site!r}"))
    if not step.executable and not step.executable_args:
        out.append((f"{path}.executable", "executable or executable_args is required"))
    _check_string(out, path, ".executable", step.executable)
    _check_strings(out, path, ".executable_args", step.executable_args)
    _check_files(out, path, ".input_files", step.input_files)
    _check_files(out, path, ".output_files", step.output_files)
    if step.nodes < 0:
        out.append((f"{path}.nodes", "must not be negative"))
    if step.processes_per_node < 0:
        out.append((f"{path}.processes_per_node", "must not be negative"))
    if step.wall_minutes < 0:
        out.append((f"{path}.wall_minutes", "must not be negative"))
    if step.num_evts < -1:
        out.append((f"{path}.num_evts", "must be -1 (the program's default) or more"))
    _check_strings(out, path, ".scheduler_args", step.scheduler_args)
    _check_string(out, path, ".preprocess", step.preprocess, MAX_NAME)
    _check_strings(out, path, ".preprocess_args", step.preprocess_args)
    _check_string(out, path, ".postprocess", step.postprocess, MAX_NAME)
    _check_strings(out, path, ".postprocess_args", step.postprocess_args)
    for field, value in ((".condor_job_file", step.condor_job_file), (".condor_dagman_file", step.condor_dagman_file)):
        if value:
            problem = file_name_problem(value)
            if problem:
                out.append((path + field, problem))


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
    _check_string(out, path, ".owner", job.owner, MAX_NAME)
    _check_string(out, path, ".group_identifier", job.group_identifier, MAX_NAME)
    _check_string(out, path, ".preprocess", job.preprocess, MAX_NAME)
    _check_string(out, path, ".postprocess", job.postprocess, MAX_NAME)
    if job.email_address and (len(job.email_address) > MAX_NAME or not EMAIL.match(job.email_address)):
        out.append((f"{path}.email_address", "not an e-mail address"))
    _check_string(out, path, ".input_url", job.input_url)
    _check_string(out, path, ".output_url", job.output_url)
    _check_strings(out, path, ".preprocess_args", job.preprocess_args)
    _check_strings(out, path, ".postprocess_args", job.postprocess_args)
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
    _check_string(out, prefix, "request_id", request.request_id, 128)
    return out


def validate_list(request: argo_service_pb2.ListJobsRequest) -> Violations:
    """Every problem of a ListJobsRequest (the page token is checked when it is decoded)."""
    out: Violations = []
    if request.page_size < 0:
        out.append(("page_size", "must not be negative"))
    for position, state in enumerate(request.states):
        if state not in _JOB_STATES:
            out.append((f"states[{position}]", f"unknown job state {state}"))
    _check_string(out, "", "owner", request.owner, MAX_NAME)
    _check_string(out, "", "group_identifier", request.group_identifier, MAX_NAME)
    if request.site and not SITE_NAME.match(request.site):
        out.append(("site", "not a site name"))
    return out
