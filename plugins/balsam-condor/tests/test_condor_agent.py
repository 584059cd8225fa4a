"""A real in-process agent for ``argo_cluster`` drives steps through the HTCondor simulator.

Assignments go through RabbitMQ (a unique prefix per test) as the server sends them; the agent submits
with condor_submit, polls with condor_q/condor_history and reports every state back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import balsam_condor.plugin
import pytest
from argobalsam.argo.v1 import job_pb2
from balsam_condor import simulator

from balsam_agent.testing import AgentHarness

PROGRAMS = {
    "hello": "#!/bin/sh\necho \"hello $1 job=$ARGO_JOB_ID\"\n",
    "fail": "#!/bin/sh\necho failing >&2\nexit \"$1\"\n",
    "sleep": "#!/bin/sh\nexec sleep \"$1\"\n",
}


@pytest.fixture
def condor_agent(condor_pool: Path, balsam_agent: Callable[..., AgentHarness],
                 tmp_path: Path) -> Callable[[], AgentHarness]:
    """Factory of an agent for ``argo_cluster`` allowed to run the small programs above."""
    exec_dir = tmp_path / "bin"
    exec_dir.mkdir()
    for name, text in PROGRAMS.items():
        (exec_dir / name).write_text(text)
        (exec_dir / name).chmod(0o755)

    def start() -> AgentHarness:
        options: dict[str, Any] = {"allowed_exec_dir": str(exec_dir), "poll_interval": 0.2}
        return balsam_agent("argo_cluster", site_options=options, plugins=[balsam_condor.plugin])

    return start


def test_step_runs_through_condor(condor_agent: Callable[[], AgentHarness], condor_pool: Path) -> None:
    harness = condor_agent()
    step_id = harness.assign(job_id="jc1", executable="hello", args=["two words"], nodes=1,
                             processes_per_node=2, wall_minutes=5)
    done = harness.reports.wait_state(step_id, "SUCCEEDED", timeout=60)
    states = harness.reports.states(step_id)
    assert "SUBMITTED" in states
    assert done.exit_code == 0
    history = simulator.read_state(condor_pool)["history"]
    assert [(ad["ClusterId"], ad["RequestCpus"]) for ad in history] == [(int(done.scheduler_id), 2)]
    stdout = Path(history[0]["Out"]).read_text()
    assert stdout == "hello two words job=jc1\n"


def test_failing_step_reports_the_exit_code(condor_agent: Callable[[], AgentHarness]) -> None:
    harness = condor_agent()
    step_id = harness.assign(job_id="jc2", executable="fail", args=["3"])
    failed = harness.reports.wait_state(step_id, "FAILED", timeout=60)
    assert failed.failed_phase == job_pb2.STEP_PHASE_RUN
    assert failed.exit_code == 3


def test_cancelled_step_removes_the_condor_job(condor_agent: Callable[[], AgentHarness],
                                               condor_pool: Path) -> None:
    harness = condor_agent()
    step_id = harness.assign(job_id="jc3", executable="sleep", args=["300"])
    harness.reports.wait_state(step_id, "RUNNING", timeout=60)
    harness.control("cancel", step_id, reason="test")
    harness.reports.wait_state(step_id, "CANCELLED", timeout=60)
    # condor_rm marks the job removed at once; it leaves the queue when its program has died.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not simulator.read_state(condor_pool)["history"]:
        time.sleep(0.05)
    history = simulator.read_state(condor_pool)["history"]
    assert [(ad["JobStatus"], ad["RemoveReason"].startswith("via condor_rm")) for ad in history] == [(3, True)]
