"""The seed's JSON submission and the API's YAML/JSON form, mapped onto job_pb2.Job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from argo_client.errors import SubmissionError
from argo_client.legacy import JOB_KEYS, STEP_KEYS, job_from_legacy
from argo_client.submission import job_from_document, load_submission, parse_submission_text
from argobalsam.argo.v1 import job_pb2
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st


def seed_document(seed_path: Path) -> dict[str, Any]:
    return json.loads(seed_path.read_text())


def test_seed_example_maps_every_field(seed_path: Path) -> None:
    [job] = load_submission(seed_path)

    assert job.owner == "bob"
    assert job.email_address == "bob@example.org"
    assert job.preprocess == "" and list(job.preprocess_args) == []
    assert job.postprocess == "" and list(job.postprocess_args) == []
    assert len(job.steps) == 2

    first, second = job.steps
    assert first.executable == "zjetgen90_mpi"
    assert list(first.executable_args) == ["alpout.input.0"]
    assert list(first.input_files) == ["alpout.input.0", "cteq6l1.tbl"]
    assert list(first.output_files) == ["alpout.grid1", "alpout.grid2"]
    assert first.nodes == 1
    assert first.processes_per_node == 1
    assert first.num_evts == -1
    assert first.wall_minutes == 60
    assert list(first.scheduler_args) == []
    assert first.target_site == "argo_cluster"
    assert (first.preprocess, first.postprocess) == ("", "")
    assert list(first.preprocess_args) == [] and list(first.postprocess_args) == []

    # The seed's second step names its program inside executable_args; that meaning is kept.
    assert second.executable == ""
    assert list(second.executable_args) == ["zjetgen90_mpi", "alpout.input.1", "alpout.input.2", "32"]
    assert list(second.input_files) == ["alpout.input.1", "alpout.input.2", "cteq6l1.tbl", "alpout.grid1",
                                        "alpout.grid2"]
    assert list(second.output_files) == ["alpout.unw", "alpout_unw.par", "directoryList_before.txt",
                                         "directoryList_after.txt", "alpgen_postsubmit.err", "alpgen_postsubmit.out"]
    assert second.nodes == 2
    assert second.processes_per_node == 32
    assert second.num_evts == -1
    assert second.wall_minutes == 60
    assert list(second.scheduler_args) == ["--mode=script"]
    assert second.target_site == "vesta"
    assert second.preprocess == "" and list(second.preprocess_args) == []
    assert second.postprocess == "" and list(second.postprocess_args) == ["alpout"]
    # Nothing output-only is set by the client.
    assert job.name == "" and job.state == job_pb2.JOB_STATE_UNSPECIFIED


def test_every_seed_field_lands_in_the_job() -> None:
    document = {
        "username": "alice", "email_address": "alice@example.org", "group_identifier": "alpgen-2015",
        "input_url": "gsiftp://argo/in/", "output_url": "gsiftp://argo/out/",
        "preprocess": "stage_grids", "preprocess_args": "--fast 'two words'",
        "postprocess": "collect", "postprocess_args": ["a", "b c"],
        "jobs": [{
            "executable": "alpgen", "executable_args": ["x", "y z"], "input_files": ["in"], "output_files": ["out"],
            "nodes": 4, "processes_per_node": 16, "num_evts": 10_000_000_000, "wall_minutes": 30,
            "scheduler_args": "-q 'debug queue' --mode=c16", "target_site": "mira",
            "preprocess": "pre", "preprocess_args": "p1", "postprocess": "post", "postprocess_args": "q1 q2",
            "condor_job_file": "job.submit", "condor_dagman_file": "flow.dag",
        }],
    }
    assert set(document) == JOB_KEYS
    assert set(document["jobs"][0]) == STEP_KEYS  # type: ignore[index]

    job = job_from_legacy(document)

    assert (job.owner, job.email_address, job.group_identifier) == ("alice", "alice@example.org", "alpgen-2015")
    assert (job.input_url, job.output_url) == ("gsiftp://argo/in/", "gsiftp://argo/out/")
    assert job.preprocess == "stage_grids" and list(job.preprocess_args) == ["--fast", "two words"]
    assert job.postprocess == "collect" and list(job.postprocess_args) == ["a", "b c"]
    step = job.steps[0]
    assert step.executable == "alpgen" and list(step.executable_args) == ["x", "y z"]
    assert list(step.input_files) == ["in"] and list(step.output_files) == ["out"]
    assert (step.nodes, step.processes_per_node, step.num_evts, step.wall_minutes) == (4, 16, 10_000_000_000, 30)
    assert list(step.scheduler_args) == ["-q", "debug queue", "--mode=c16"]
    assert step.target_site == "mira"
    assert step.preprocess == "pre" and list(step.preprocess_args) == ["p1"]
    assert step.postprocess == "post" and list(step.postprocess_args) == ["q1", "q2"]
    assert (step.condor_job_file, step.condor_dagman_file) == ("job.submit", "flow.dag")


def test_null_num_evts_means_the_programs_default() -> None:
    job = job_from_legacy({"jobs": [{"executable": "x", "num_evts": None, "nodes": None}]})
    assert job.steps[0].num_evts == -1
    assert job.steps[0].nodes == 0


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"jobs": [{"nodes": "two"}]}, [("jobs[0].nodes", "must be an integer, not a string")]),
        ({"jobs": [{}, {"nodes": 1.5}]}, [("jobs[1].nodes", "must be an integer, not a number")]),
        ({"jobs": [{"wall_minutes": True}]}, [("jobs[0].wall_minutes", "must be an integer, not a boolean")]),
        ({"jobs": [{"nodes": 2**31}]}, [("jobs[0].nodes", "must be between -2147483648 and 2147483647")]),
        ({"jobs": [{"input_files": "a.txt"}]}, [("jobs[0].input_files", "must be a list of strings, not a string")]),
        ({"jobs": [{"output_files": ["ok", 3]}]}, [("jobs[0].output_files[1]", "must be a string, not an integer")]),
        ({"jobs": [{"executable_args": {"a": 1}}]},
         [("jobs[0].executable_args", "must be a string or a list of strings, not an object")]),
        ({"jobs": [{"scheduler_args": "--mode='script"}]},
         [("jobs[0].scheduler_args", "cannot be split into arguments: No closing quotation")]),
        ({"username": 7, "jobs": [{}]}, [("username", "must be a string, not an integer")]),
        ({"jobs": []}, [("jobs", "must hold at least one step")]),
        ({"jobs": "step"}, [("jobs", "must be a list of steps, not a string")]),
        ({"jobs": [None]}, [("jobs[0]", "must be an object, not null")]),
    ],
)
def test_bad_seed_input_names_the_field(document: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    with pytest.raises(SubmissionError) as caught:
        job_from_legacy(document)
    assert caught.value.field_violations == expected


def test_unknown_keys_are_refused_with_their_path(seed_path: Path) -> None:
    document = seed_document(seed_path)
    document["user_name"] = "bob"
    document["jobs"][1]["node"] = 2

    with pytest.raises(SubmissionError) as caught:
        job_from_legacy(document)

    fields = [field for field, _ in caught.value.field_violations]
    assert fields == ["user_name", "jobs[1].node"]
    assert "unknown field" in caught.value.field_violations[0][1]
    assert "nodes" in caught.value.field_violations[1][1]  # the message lists the valid names


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(SubmissionError) as caught:
        job_from_legacy({"jobs": [{"nodes": "a", "wall_minutes": "b"}, {"target_site": 3}]})
    assert [f for f, _ in caught.value.field_violations] == ["jobs[0].nodes", "jobs[0].wall_minutes",
                                                             "jobs[1].target_site"]
    assert "jobs[0].nodes: must be an integer" in str(caught.value)


def test_api_form_in_yaml_uses_proto_field_names() -> None:
    text = """
owner: carol
email_address: carol@example.org
group_identifier: g1
notify_every_change: true
steps:
  - target_site: edison
    executable: /opt/bin/sim
    executable_args: [--events, "100", "two words"]
    nodes: 3
    processesPerNode: 8      # protobuf's JSON names work too
    scheduler_args: []
    state: STEP_STATE_RUNNING  # output-only: dropped
"""
    [job] = parse_submission_text(text)
    assert (job.owner, job.email_address, job.group_identifier, job.notify_every_change) == \
        ("carol", "carol@example.org", "g1", True)
    step = job.steps[0]
    assert (step.target_site, step.executable, list(step.executable_args)) == \
        ("edison", "/opt/bin/sim", ["--events", "100", "two words"])
    assert (step.nodes, step.processes_per_node) == (3, 8)
    assert step.state == job_pb2.STEP_STATE_UNSPECIFIED


def test_api_form_errors_name_each_field() -> None:
    text = json.dumps({"owner": ["x"], "colour": "red",
                       "steps": [{"nodes": "many", "executable_args": "a b", "target": "mira"}]})
    with pytest.raises(SubmissionError) as caught:
        parse_submission_text(text, "job.json")
    assert caught.value.field_violations == [
        ("owner", "must be a string"),
        ("colour", caught.value.field_violations[1][1]),
        ("steps[0].nodes", "must be an integer between -2147483648 and 2147483647"),
        ("steps[0].executable_args", "must be a list of strings"),
        ("steps[0].target", caught.value.field_violations[4][1]),
    ]
    assert caught.value.field_violations[1][1].startswith("unknown field")
    assert str(caught.value).startswith("job.json: invalid submission")


def test_show_output_can_be_submitted_again(seed_path: Path) -> None:
    [job] = load_submission(seed_path)
    job.name = "jobs/abc"
    job.state = job_pb2.JOB_STATE_FAILED
    job.steps[0].state = job_pb2.STEP_STATE_FAILED
    job.steps[0].scheduler_id = "123.pbs01"
    job.create_time.GetCurrentTime()
    shown = json_format.MessageToJson(job, preserving_proto_field_name=True)

    [again] = parse_submission_text(shown)

    job.ClearField("name")
    job.ClearField("state")
    job.ClearField("create_time")
    job.steps[0].ClearField("state")
    job.steps[0].ClearField("scheduler_id")
    assert again == job


def test_form_is_chosen_by_jobs_or_steps() -> None:
    assert job_from_document({"jobs": [{"executable": "a"}]}).steps[0].executable == "a"
    assert job_from_document({"steps": [{"executable": "b"}]}).steps[0].executable == "b"
    with pytest.raises(SubmissionError, match="both"):
        job_from_document({"jobs": [], "steps": []})
    with pytest.raises(SubmissionError, match="not a submission"):
        job_from_document({"executable": "a"})


def test_a_list_of_documents_gives_several_jobs_and_indexed_errors(seed_path: Path) -> None:
    seed = seed_document(seed_path)
    jobs = parse_submission_text(json.dumps([seed, {"steps": [{"executable": "x"}]}]))
    assert [len(job.steps) for job in jobs] == [2, 1]

    with pytest.raises(SubmissionError) as caught:
        parse_submission_text(json.dumps([seed, {"jobs": [{"nodes": "x"}]}]))
    assert caught.value.field_violations == [("[1].jobs[0].nodes", "must be an integer, not a string")]


def test_unreadable_files_are_submission_errors(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="cannot read"):
        load_submission(tmp_path / "missing.json")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [\n")
    with pytest.raises(SubmissionError, match="neither JSON nor YAML"):
        load_submission(bad)


# -- fuzzing: any decoded JSON gives a Job or a SubmissionError, nothing else -----------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text()
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
_step_value = {
    key: _json for key in STEP_KEYS
}
_steps = st.fixed_dictionaries({}, optional=_step_value) | _json
_documents = st.fixed_dictionaries(
    {"jobs": st.lists(_steps, max_size=3) | _json},
    optional={key: _json for key in JOB_KEYS - {"jobs"}} | {"extra": _json},
)


@settings(max_examples=300, deadline=None)
@given(_documents | _json)
def test_fuzzed_seed_documents_map_or_raise_submission_error(document: Any) -> None:
    try:
        job = job_from_legacy(document)
    except SubmissionError as exc:
        assert exc.field_violations, "every refusal names at least one field"
    else:
        assert isinstance(job, job_pb2.Job)
        assert len(job.steps) == len(document["jobs"])
        job.SerializeToString()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzzed_submission_text_maps_or_raises_submission_error(text: str) -> None:
    try:
        jobs = parse_submission_text(text)
    except SubmissionError:
        return
    assert jobs and all(isinstance(job, job_pb2.Job) for job in jobs)


def test_text_protobuf_cannot_store_is_refused_by_name() -> None:
    # json.loads turns "\ud800" into a lone surrogate, which protobuf cannot encode.
    document = json.loads('{"username": "\\ud800", "jobs": [{"executable_args": ["ok", "\\udfff"]}]}')
    with pytest.raises(SubmissionError) as caught:
        job_from_legacy(document)
    assert caught.value.field_violations == [("username", "must be valid UTF-8 text"),
                                             ("jobs[0].executable_args[1]", "must be valid UTF-8 text")]
