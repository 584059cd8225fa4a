"""The backend against the real single-node Slurm of this machine (``scripts/services/slurm``).

Skipped, saying why, when ``srun -N1 -n1 true`` does not work (``require_slurm`` in conftest.py). The walltime test's job is submitted
when the module starts and checked by the last test, so its minute of waiting overlaps the others.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from balsam_slurm.backend import SlurmScheduler
from balsam_slurm.profiles import SLURM_LOCAL

from balsam_agent.scheduler import LaunchSpec, SchedulerJobStatus, SchedulerState


class Cluster:
    """The backend plus bookkeeping: unique job names, and every job cancelled at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backend = SlurmScheduler(SLURM_LOCAL)
        self.submitted: list[str] = []

    def spec(self, argv: tuple[str, ...], *, ranks: int = 1, wall_minutes: int = 5,
             scheduler_args: tuple[str, ...] = ()) -> LaunchSpec:
        name = f"argo-slurmtest-{uuid.uuid4().hex[:8]}-0-a1"
        # a space and a quote in the directory check the #SBATCH quoting against sbatch itself
        workdir = self.root / f"step {name} 'x'"
        workdir.mkdir(parents=True)
        return LaunchSpec(job_name=name, argv=argv, workdir=workdir, nodes=1, processes_per_node=ranks,
                          wall_minutes=wall_minutes, scheduler_args=scheduler_args,
                          env={"ARGO_STEP": "0"})

    def submit(self, spec: LaunchSpec) -> str:
        job_id = self.backend.submit(spec)
        self.submitted.append(job_id)
        return job_id

    def wait(self, job_id: str, done: Callable[[SchedulerJobStatus], bool],
             timeout: float = 30.0) -> SchedulerJobStatus:
        """Polls (one squeue, sacct if gone) until ``done`` holds for the job's status."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.backend.poll([job_id]).get(job_id)
            if last is not None and done(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not reach the expected state in {timeout}s; last: {last}")

    def close(self) -> None:
        for job_id in self.submitted:
            subprocess.run(["scancel", job_id], capture_output=True, timeout=30)


def ended(status: SchedulerJobStatus) -> bool:
    return status.state.is_final


def in_state(*states: SchedulerState) -> Callable[[SchedulerJobStatus], bool]:
    return lambda status: status.state in states


@pytest.fixture(scope="module")
def cluster(require_slurm: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("slurm"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def walltime_job(cluster: Cluster) -> tuple[str, float]:
    """A job asking for 1 minute that sleeps for 10: Slurm's smallest honest walltime overrun."""
    spec = cluster.spec(("sleep", "600"), wall_minutes=1)
    return cluster.submit(spec), time.monotonic()


@pytest.fixture(autouse=True)
def _start_the_walltime_job_early(walltime_job: tuple[str, float]) -> None:
    """Requests the walltime job from the first test on, so its minute overlaps the other tests."""


def test_two_ranks_run_under_srun(cluster: Cluster) -> None:
    spec = cluster.spec(("bash", "-c", "echo rank=$SLURM_PROCID step=$ARGO_STEP"), ranks=2)
    job_id = cluster.submit(spec)
    status = cluster.wait(job_id, ended)
    assert (status.state, status.exit_code) == (SchedulerState.COMPLETED, 0)
    output = (spec.workdir / f"{spec.job_name}.out").read_text().split()
    assert sorted(output) == ["rank=0", "rank=1", "step=0", "step=0"]


def test_failing_program_reports_its_exit_code(cluster: Cluster) -> None:
    job_id = cluster.submit(cluster.spec(("bash", "-c", "exit 3")))
    status = cluster.wait(job_id, ended)
    assert (status.state, status.exit_code) == (SchedulerState.FAILED, 3)
    assert status.native_state == "FAILED"
    assert status.reason == "exited with code 3"


def test_cancel_while_pending(cluster: Cluster) -> None:
    job_id = cluster.submit(cluster.spec(("true",), scheduler_args=("--begin=now+1hour",)))
    queued = cluster.wait(job_id, in_state(SchedulerState.QUEUED))
    assert queued.reason == "waiting for its begin time"
    cluster.backend.cancel(job_id)
    status = cluster.wait(job_id, ended)
    assert status.state is SchedulerState.CANCELLED
    assert status.reason.startswith("cancelled by uid")
    cluster.backend.cancel(job_id)  # cancelling twice is harmless


def test_cancel_while_running(cluster: Cluster) -> None:
    job_id = cluster.submit(cluster.spec(("sleep", "300")))
    cluster.wait(job_id, in_state(SchedulerState.RUNNING))
    cluster.backend.cancel(job_id)
    assert cluster.wait(job_id, ended).state is SchedulerState.CANCELLED


def test_hold_and_release(cluster: Cluster) -> None:
    job_id = cluster.submit(cluster.spec(("true",), scheduler_args=("--hold",)))
    held = cluster.wait(job_id, in_state(SchedulerState.HELD))
    assert held.reason == "held by the user"
    cluster.backend.release(job_id)
    assert cluster.wait(job_id, ended).state is SchedulerState.COMPLETED

    waiting = cluster.submit(cluster.spec(("true",), scheduler_args=("--begin=now+1hour",)))
    cluster.wait(waiting, in_state(SchedulerState.QUEUED))
    cluster.backend.hold(waiting)
    assert cluster.wait(waiting, in_state(SchedulerState.HELD)).reason.startswith("held by")
    cluster.backend.release(waiting)
    assert cluster.wait(waiting, lambda s: s.state is not SchedulerState.HELD).state in (
        SchedulerState.QUEUED, SchedulerState.RUNNING, SchedulerState.COMPLETED)


def test_restarted_agent_readopts_a_running_job_by_name(cluster: Cluster) -> None:
    spec = cluster.spec(("sleep", "300"))
    job_id = cluster.submit(spec)
    cluster.wait(job_id, in_state(SchedulerState.RUNNING))
    restarted = SlurmScheduler(SLURM_LOCAL)  # a new agent process knows nothing but the job name
    assert restarted.find_by_name(spec.job_name) == job_id
    assert restarted.poll([job_id])[job_id].state is SchedulerState.RUNNING
    assert restarted.find_by_name(f"argo-never-submitted-{uuid.uuid4().hex[:8]}") is None
    restarted.cancel(job_id)
    cluster.wait(job_id, ended)


def test_one_poll_reports_every_job(cluster: Cluster) -> None:
    running = cluster.submit(cluster.spec(("sleep", "300")))
    failed = cluster.submit(cluster.spec(("false",)))
    cluster.wait(running, in_state(SchedulerState.RUNNING))
    cluster.wait(failed, ended)
    statuses = cluster.backend.poll([running, failed, "999999"])
    assert statuses[running].state is SchedulerState.RUNNING
    assert (statuses[failed].state, statuses[failed].exit_code) == (SchedulerState.FAILED, 1)
    assert "999999" not in statuses
    cluster.backend.cancel(running)


@pytest.mark.slow
def test_walltime_exceeded(cluster: Cluster, walltime_job: tuple[str, float]) -> None:
    job_id, submitted = walltime_job
    # 1 minute limit + slurmctld's 30 s time-limit sweep + margin, counted from the submission
    status = cluster.wait(job_id, ended, timeout=max(1.0, submitted + 150 - time.monotonic()))
    assert status.state is SchedulerState.FAILED
    assert status.timed_out
    assert status.native_state == "TIMEOUT"
    assert status.reason == "walltime exceeded"
