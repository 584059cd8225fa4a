"""A real in-process agent for the ``slurm-local`` site drives steps through the real Slurm.

Assignments go through RabbitMQ (a unique prefix per test) exactly as the server sends them; the agent
submits with sbatch, polls with squeue/sacct and reports every state back.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import balsam_slurm.plugin
import pytest
from argobalsam.argo.v1 import job_pb2

from balsam_agent.testing import AgentHarness

PROGRAMS = {
    "ranks": "#!/bin/sh\necho \"rank=$SLURM_PROCID of $ARGO_RANKS job=$ARGO_JOB_ID\"\n",
    "fail": "#!/bin/sh\necho failing >&2\nexit \"$1\"\n",
    "sleep": "#!/bin/sh\nexec sleep \"$1\"\n",
}


@pytest.fixture
def slurm_agent(require_slurm: None, balsam_agent: Callable[..., AgentHarness],
                tmp_path: Path) -> Callable[..., AgentHarness]:
    """Factory of an agent for ``slurm-local`` allowed to run the small programs above."""
    exec_dir = tmp_path / "bin"
    exec_dir.mkdir()
    for name, text in PROGRAMS.items():
        (exec_dir / name).write_text(text)
        (exec_dir / name).chmod(0o755)

    def start(**kwargs: Any) -> AgentHarness:
        options: dict[str, Any] = {"allowed_exec_dir": str(exec_dir), "poll_interval": 0.3}
        return balsam_agent("slurm-local", site_options=options, plugins=[balsam_slurm.plugin], **kwargs)

    return start


def sacct_state(job_id: str, expected: str, timeout: float = 20.0) -> str:
    """The job's accounting state once it starts with ``expected`` (slurmdbd lags squeue a little)."""
    deadline = time.monotonic() + timeout
    while True:
        state = subprocess.run(["sacct", "-X", "-P", "-n", "-j", job_id, "--format=State"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
        if state.startswith(expected) or time.monotonic() > deadline:
            return state
        time.sleep(0.3)


def test_step_runs_two_ranks_through_slurm(slurm_agent: Callable[..., AgentHarness]) -> None:
    harness = slurm_agent()
    step_id = harness.assign(job_id="js1", executable="ranks", nodes=1, processes_per_node=2, wall_minutes=5)
    done = harness.reports.wait_state(step_id, "SUCCEEDED", timeout=60)
    states = harness.reports.states(step_id)
    assert states[0] == "ACCEPTED" and "SUBMITTED" in states
    assert done.exit_code == 0
    assert sacct_state(done.scheduler_id, "COMPLETED") == "COMPLETED"
    stdout = Path(harness.agent.site.work_root) / "js1" / "0" / "1" / "stdout.txt"
    assert sorted(stdout.read_text().splitlines()) == ["rank=0 of 2 job=js1", "rank=1 of 2 job=js1"]


def test_failing_step_reports_the_slurm_exit_code(slurm_agent: Callable[..., AgentHarness]) -> None:
    harness = slurm_agent()
    step_id = harness.assign(job_id="js2", executable="fail", args=["3"])
    failed = harness.reports.wait_state(step_id, "FAILED", timeout=60)
    assert failed.failed_phase == job_pb2.STEP_PHASE_RUN
    assert failed.exit_code == 3
    assert "exited with code 3" in failed.reason


def test_cancelled_step_cancels_the_slurm_job(slurm_agent: Callable[..., AgentHarness]) -> None:
    harness = slurm_agent()
    step_id = harness.assign(job_id="js3", executable="sleep", args=["300"])
    running = harness.reports.wait_state(step_id, "RUNNING", timeout=60)
    harness.control("cancel", step_id, reason="test")
    harness.reports.wait_state(step_id, "CANCELLED", timeout=60)
    job_id = running.scheduler_id or harness.reports.wait_state(step_id, "SUBMITTED").scheduler_id
    assert sacct_state(job_id, "CANCELLED").startswith("CANCELLED")


def test_restarted_agent_readopts_its_running_slurm_job(slurm_agent: Callable[..., AgentHarness],
                                                        tmp_path: Path) -> None:
    job = f"jr{uuid.uuid4().hex[:8]}"
    state_dir = tmp_path / "agent-state"
    first = slurm_agent(state_dir=state_dir)
    step_id = first.assign(job_id=job, executable="sleep", args=["4"])
    running = first.reports.wait_state(step_id, "RUNNING", timeout=60)
    first.agent.stop()
    second = slurm_agent(state_dir=state_dir, reports=first.reports)
    done = second.reports.wait_state(step_id, "SUCCEEDED", timeout=60)
    assert done.scheduler_id == running.scheduler_id
    # submitted once, not twice (slurmdbd records a job's end a moment after squeue drops it)
    deadline = time.monotonic() + 20
    named: list[str] = []
    while time.monotonic() < deadline and named != [f"{done.scheduler_id}|COMPLETED"]:
        time.sleep(0.3)
        named = subprocess.run(["sacct", "-X", "-P", "-n", "-S", "now-1day", f"--name=argo-{job}-0-a1",
                                "--format=JobID,State"], capture_output=True, text=True, timeout=30).stdout.split()
    assert named == [f"{done.scheduler_id}|COMPLETED"]
