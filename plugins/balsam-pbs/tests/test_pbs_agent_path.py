"""A real in-process agent (real RabbitMQ) runs a step at site polaris through the PBS simulator."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import balsam_pbs.plugin
import pytest
from balsam_pbs.simulator import install


def test_polaris_step_goes_from_submit_through_poll_to_failure_with_exit_code(
        balsam_agent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PBS_SIM_DIR", str(tmp_path / "pbs-state"))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    program = allowed / "app.sh"
    program.write_text('#!/bin/bash\necho "ranks=$PBS_SIM_RANKS"\nexit 3\n')
    program.chmod(0o755)
    try:
        harness = balsam_agent("polaris", plugins=[balsam_pbs.plugin], site_options={
            "allowed_exec_dir": str(allowed), "work_root": str(tmp_path / "work"), "poll_interval": 0.2})
        step_id = harness.assign(job_id="j2", executable=str(program), nodes=2, processes_per_node=4,
                                 wall_minutes=5)
        assert harness.reports.wait_state(step_id, "FAILED", timeout=60), harness.reports.states(step_id)
        assert "SUBMITTED" in harness.reports.states(step_id)
    finally:
        with contextlib.suppress(OSError, ValueError):
            state = json.loads((tmp_path / "pbs-state" / "state.json").read_text())
            for job in state["jobs"].values():
                if job.get("runner_pid"):
                    with contextlib.suppress(OSError):
                        os.kill(job["runner_pid"], signal.SIGKILL)
