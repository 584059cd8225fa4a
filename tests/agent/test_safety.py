"""The agent refuses what the site did not allow, with a reason the user can read."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(("fields", "reason"), [
    ({"executable": "/bin/sh"}, "outside the site's allowed directory"),
    ({"executable": "../../bin/sh"}, "outside the site's allowed directory"),
    ({"executable": "nope"}, "no executable file"),
    ({"args": ["/usr/bin/env", "true"]}, "outside the site's allowed directory"),
    ({"executable": "true", "preprocess": "/bin/rm"}, "pre-process script '/bin/rm' refused"),
    ({"executable": "true", "nodes": 9}, "max_nodes"),
    ({"executable": "true", "wall_minutes": 61}, "max_wall_minutes"),
])
def test_rejects_with_reason(local_agent, fields: dict, reason: str) -> None:
    harness = local_agent(site_options={"max_nodes": 8, "max_wall_minutes": 60})
    step_id = harness.assign(job_id="jr", **fields)
    rejected = harness.reports.wait_state(step_id, "REJECTED")
    assert reason in rejected.reason
    assert harness.reports.states(step_id) == ["REJECTED"]


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape.txt", "a/../../escape.txt"])
def test_rejects_file_names_leaving_the_workdir_before_any_byte_moves(local_agent, tmp_path: Path,
                                                                       name: str) -> None:
    source = tmp_path / "secret.txt"
    source.write_text("x")
    harness = local_agent()
    step_id = harness.assign(job_id="jp", executable="true", inputs={name: source.as_uri()})
    rejected = harness.reports.wait_state(step_id, "REJECTED")
    assert "leave" in rejected.reason
    assert not (Path(harness.agent.site.work_root) / "jp").exists()


def test_symlinked_output_escaping_the_workdir_is_not_stored(local_agent, exec_dir: Path, tmp_path: Path) -> None:
    (exec_dir / "linker").write_text("#!/bin/sh\nln -s /etc/hostname out.txt\n")
    (exec_dir / "linker").chmod(0o755)
    harness = local_agent()
    area = tmp_path / "area"
    step_id = harness.assign(job_id="jl", executable="linker", outputs={"out.txt": [(area / "out.txt").as_uri()]})
    failed = harness.reports.wait_state(step_id, "FAILED")
    assert "outside the step's working directory" in failed.reason
    assert not (area / "out.txt").exists()


def test_symlinked_executable_leaving_the_allowed_dir_is_rejected(local_agent, exec_dir: Path) -> None:
    (exec_dir / "sneaky").symlink_to("/bin/sh")
    harness = local_agent()
    step_id = harness.assign(job_id="jx", executable="sneaky")
    assert "outside" in harness.reports.wait_state(step_id, "REJECTED").reason


def test_site_full_rejects_with_the_limit(local_agent, tmp_path: Path) -> None:
    harness = local_agent(site_options={"max_queued_steps": 2})
    first = [harness.assign(job_id=f"jq{i}", executable="sleep", args=["30"]) for i in range(2)]
    for step_id in first:
        harness.reports.wait_state(step_id, "SUBMITTED")
    third = harness.assign(job_id="jq9", executable="true")
    assert harness.reports.wait_state(third, "REJECTED").reason == "site is full: 2 active steps (max 2)"
    for step_id in first:
        harness.control("cancel", step_id)
        harness.reports.wait_state(step_id, "CANCELLED")


def test_no_allowed_dir_refuses_every_executable(balsam_agent) -> None:
    harness = balsam_agent("local")
    step_id = harness.assign(job_id="jn", executable="/bin/true")
    assert "allows no executables" in harness.reports.wait_state(step_id, "REJECTED").reason
