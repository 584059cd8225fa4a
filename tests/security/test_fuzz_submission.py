"""Hostile submissions: the API form with random field values, and YAML alias bombs (the seed form and
free text are fuzzed in tests/client/test_submission.py). Every input maps to jobs or raises a
SubmissionError naming the problem, quickly."""

from __future__ import annotations

import time
from typing import Any

import pytest
from argo_client.errors import SubmissionError
from argo_client.submission import job_from_document, parse_submission_text
from argobalsam.argo.v1 import job_pb2
from hypothesis import example, given, settings
from hypothesis import strategies as st

STEP_FIELDS = [field.name for field in job_pb2.Step.DESCRIPTOR.fields]
JOB_FIELDS = [field.name for field in job_pb2.Job.DESCRIPTOR.fields if field.name != "steps"]

_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                     st.floats(allow_nan=True), st.text(max_size=30), st.binary(max_size=10))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
_steps = st.dictionaries(st.sampled_from(STEP_FIELDS) | st.text(max_size=8), _values, max_size=8)
_documents = st.fixed_dictionaries({"steps": st.lists(_steps, max_size=3) | _values},
                                   optional={name: _values for name in JOB_FIELDS})


@settings(max_examples=300, deadline=None)
@given(_documents)
@example({"steps": [{"state": float("inf")}]})  # found by CI: protobuf raised OverflowError
@example({"steps": [{"nodes": float("-inf")}]})
@example({"steps": [{"nodes": float("nan")}]})
def test_fuzzed_api_documents_map_or_raise_submission_error(document: dict[str, Any]) -> None:
    try:
        job = job_from_document(document)
    except SubmissionError as error:
        assert str(error)
        return
    assert isinstance(job, job_pb2.Job)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e300])
def test_a_non_finite_number_is_refused_by_field_name(value: float) -> None:
    with pytest.raises(SubmissionError) as refused:
        job_from_document({"owner": "alice", "steps": [{"target_site": "local", "executable": "x",
                                                         "nodes": value}]})
    assert "steps[0].nodes" in str(refused.value)
    assert "integer" in str(refused.value)


def _alias_bomb(levels: int = 9) -> str:
    items = ['&a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


@pytest.mark.parametrize("template", [
    "owner: bob\nsteps:\n  - target_site: local\n    executable: x\n    executable_args: {bomb}\n",
    "username: bob\njobs:\n  - target_site: local\n    executable: x\n    executable_args: {bomb}\n",
    "owner: bob\nsteps: {bomb}\n",
    "{bomb}\n",
])
def test_yaml_alias_bombs_are_refused_quickly(template: str) -> None:
    """9 levels of 9 aliases stand for 9**9 strings; the parser must not walk them."""
    started = time.monotonic()
    with pytest.raises(SubmissionError):
        parse_submission_text(template.format(bomb=_alias_bomb()))
    assert time.monotonic() - started < 2.0
