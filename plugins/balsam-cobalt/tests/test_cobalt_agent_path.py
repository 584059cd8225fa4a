"""A real in-process agent (real RabbitMQ) runs a step at site vesta through the Cobalt simulator."""

from __future__ import annotations

from pathlib import Path

import balsam_cobalt.plugin


def test_vesta_step_goes_from_submit_through_poll_to_success(cobalt_sim, balsam_agent, tmp_path: Path) -> None:
    bin_dir = tmp_path / "allowed"
    bin_dir.mkdir()
    program = bin_dir / "alpgen.sh"
    program.write_text('#!/bin/bash\necho "ranks=$COBALT_SIM_RANKS args=$*"\n')
    program.chmod(0o755)
    harness = balsam_agent(
        "vesta", plugins=[balsam_cobalt.plugin],
        site_options={"allowed_exec_dir": str(bin_dir), "work_root": str(tmp_path / "work"),
                      "poll_interval": 0.2, "options": {"cobaltlog_dir": str(tmp_path / "logs")}},
    )
    step_id = harness.assign(job_id="j1", executable=str(program), args=["--events", "10"], nodes=2,
                             processes_per_node=4, wall_minutes=5)
    assert harness.reports.wait_state(step_id, "SUCCEEDED", timeout=60), harness.reports.states(step_id)
    states = harness.reports.states(step_id)
    assert "SUBMITTED" in states and states.index("SUBMITTED") < states.index("SUCCEEDED")
    logs = list((tmp_path / "logs").glob("*.cobaltlog"))
    assert len(logs) == 1 and "exit code of 0" in logs[0].read_text()
