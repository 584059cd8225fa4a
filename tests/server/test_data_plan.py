"""The data plan: where each step's files come from and go to."""

from __future__ import annotations

from argobalsam.argo.v1 import job_pb2

from argo_server.data_plan import job_data_url, step_inputs, step_outputs

DATA = "gsiftp://argo.example/data/J1/"


def _steps() -> list[job_pb2.Step]:
    return [job_pb2.Step(input_files=["grid.dat", "seed.txt"], output_files=["events.unw", "log"]),
            job_pb2.Step(input_files=["events.unw", "card.dat"], output_files=["hits.root"]),
            job_pb2.Step(input_files=["hits.root", "log"], output_files=["plots.tgz"])]


def test_data_url_is_per_job_and_ends_with_slash() -> None:
    assert job_data_url("file:///srv/argo/data/", "J1") == "file:///srv/argo/data/J1/"
    assert job_data_url("globus://ep/argo", "J2") == "globus://ep/argo/J2/"


def test_first_step_reads_from_input_url() -> None:
    inputs = step_inputs(_steps(), 0, DATA, "gsiftp://in.example/u/")
    assert [(f.name, f.source_url) for f in inputs] == [
        ("grid.dat", "gsiftp://in.example/u/grid.dat"), ("seed.txt", "gsiftp://in.example/u/seed.txt")]


def test_files_made_by_earlier_steps_come_from_the_data_area() -> None:
    inputs = step_inputs(_steps(), 1, DATA, "gsiftp://in.example/u")
    assert [(f.name, f.source_url) for f in inputs] == [
        ("events.unw", DATA + "events.unw"), ("card.dat", "gsiftp://in.example/u/card.dat")]
    inputs = step_inputs(_steps(), 2, DATA, "gsiftp://in.example/u")
    assert [f.source_url for f in inputs] == [DATA + "hits.root", DATA + "log"]


def test_without_input_url_inputs_are_expected_in_the_data_area() -> None:
    inputs = step_inputs(_steps(), 0, DATA, "")
    assert [f.source_url for f in inputs] == [DATA + "grid.dat", DATA + "seed.txt"]


def test_outputs_go_to_the_data_area_and_the_last_also_to_output_url() -> None:
    first = step_outputs(_steps(), 0, DATA, "gsiftp://out.example/r")
    assert [(f.name, list(f.destination_urls)) for f in first] == [
        ("events.unw", [DATA + "events.unw"]), ("log", [DATA + "log"])]
    last = step_outputs(_steps(), 2, DATA, "gsiftp://out.example/r/")
    assert [list(f.destination_urls) for f in last] == [[DATA + "plots.tgz", "gsiftp://out.example/r/plots.tgz"]]
    assert [list(f.destination_urls) for f in step_outputs(_steps(), 2, DATA, "")] == [[DATA + "plots.tgz"]]
