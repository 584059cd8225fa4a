"""Failing Slurm commands: retried with backoff, then a SchedulerError; never a crash.

Fake ``sbatch``/``squeue``/``sacct``/``scancel``/``scontrol`` scripts on PATH play each failure; every
call is logged to a file so the tests can count the retries.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from balsam_slurm.backend import SlurmScheduler
from balsam_slurm.profiles import SLURM_LOCAL

from balsam_agent.scheduler import LaunchSpec, SchedulerError, SchedulerState

COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "scontrol")


class FakeSlurm:
    """Writes fake Slurm commands into a directory put first on PATH."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "calls.log"
        self.log.touch()
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ['PATH']}")
        for name in COMMANDS:
            self.script(name, "echo unexpected call >&2; exit 99")

    def script(self, name: str, body: str) -> None:
        """Defines what the fake ``name`` does (a bash body; "$@" are its arguments)."""
        path = self.bin / name
        path.write_text(f'#!/bin/bash\necho "{name} $*" >> {self.log}\n{body}\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def calls(self, name: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.split(" ", 1)[0] == name]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    return FakeSlurm(tmp_path, monkeypatch)


@pytest.fixture
def backend() -> SlurmScheduler:
    scheduler = SlurmScheduler(SLURM_LOCAL)
    scheduler.command_backoff = 0.01
    scheduler.command_timeout = 2.0
    return scheduler


def spec(tmp_path: Path) -> LaunchSpec:
    return LaunchSpec(job_name="argo-j1-0-a1", argv=("true",), workdir=tmp_path, nodes=1,
                      processes_per_node=1, wall_minutes=5)


def test_status_command_failing_is_retried_then_raised(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    fake.script("squeue", "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1")
    with pytest.raises(SchedulerError, match="Unable to contact"):
        backend.poll(["5", "6"])
    assert len(fake.calls("squeue")) == backend.command_attempts


def test_transient_failure_then_success(fake: FakeSlurm, backend: SlurmScheduler, tmp_path: Path) -> None:
    counter = tmp_path / "n"
    fake.script("squeue", f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n"
                          "[ $n -ge 1 ] || { echo busy >&2; exit 1; }\necho '5|RUNNING|None'")
    assert backend.poll(["5"])["5"].state is SchedulerState.RUNNING
    assert len(fake.calls("squeue")) == 2


def test_status_command_hanging_times_out(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    backend.command_timeout = 0.3
    backend.command_attempts = 2
    fake.script("squeue", "exec sleep 30")
    with pytest.raises(SchedulerError, match="timed out"):
        backend.poll(["5"])


def test_garbage_status_output_is_an_error(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    fake.script("squeue", "echo '<html>proxy error</html>'")
    with pytest.raises(SchedulerError, match="unexpected line"):
        backend.poll(["5"])


def test_job_unknown_to_squeue_is_confirmed_by_sacct(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    # squeue's answer when its only id was purged (Balsam issue #323): an empty listing, not a failure
    fake.script("squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1")
    fake.script("sacct", "echo '5|argo-j1-0-a1|FAILED|3:0|None'")
    status = backend.poll(["5"])["5"]
    assert (status.state, status.exit_code) == (SchedulerState.FAILED, 3)
    assert len(fake.calls("squeue")) == 1
    assert "--jobs=5" in fake.calls("sacct")[0]


def test_sacct_only_for_jobs_missing_from_squeue(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    fake.script("squeue", "echo '5|RUNNING|None'; echo '6|PENDING|JobHeldAdmin'")
    fake.script("sacct", "echo '7|argo-x|COMPLETED|0:0|None'")
    statuses = backend.poll(["5", "6", "7", "8"])
    assert [call.split()[1] for call in fake.calls("squeue")] == ["--jobs=5,6,7,8"]
    (sacct_call,) = fake.calls("sacct")
    assert "--jobs=7,8" in sacct_call
    assert statuses["6"].state is SchedulerState.HELD
    assert statuses["7"].state is SchedulerState.COMPLETED
    assert "8" not in statuses  # nowhere: left out, the agent retries


def test_job_still_active_in_lagging_accounting_is_not_called_ended(fake: FakeSlurm,
                                                                    backend: SlurmScheduler) -> None:
    fake.script("squeue", "true")
    fake.script("sacct", "echo '5|argo-x|RUNNING|0:0|None'")
    assert backend.poll(["5"]) == {}


def test_no_jobs_runs_no_command(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    assert backend.poll([]) == {}
    assert fake.log.read_text() == ""


def test_ids_that_are_not_slurm_ids_are_refused(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    with pytest.raises(SchedulerError) as info:
        backend.poll(["--all"])
    assert not info.value.transient
    with pytest.raises(SchedulerError):
        backend.cancel("5;rm")
    assert fake.log.read_text() == ""


def test_failed_sbatch_is_retried_after_checking_it_did_not_submit(fake: FakeSlurm, backend: SlurmScheduler,
                                                                   tmp_path: Path) -> None:
    counter = tmp_path / "n"
    fake.script("sbatch", f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n"
                          "[ $n -ge 1 ] || { echo 'Socket timed out' >&2; exit 1; }\necho 42")
    fake.script("squeue", "true")
    fake.script("sacct", "true")
    assert backend.submit(spec(tmp_path)) == "42"
    assert len(fake.calls("sbatch")) == 2
    assert len(fake.calls("squeue")) == 1  # looked for the job by name before submitting again


def test_sbatch_that_submitted_despite_failing_is_adopted(fake: FakeSlurm, backend: SlurmScheduler,
                                                          tmp_path: Path) -> None:
    fake.script("sbatch", "echo 'Socket timed out' >&2; exit 1")
    fake.script("squeue", "echo 77")
    assert backend.submit(spec(tmp_path)) == "77"
    assert len(fake.calls("sbatch")) == 1


def test_sbatch_failing_every_time_raises(fake: FakeSlurm, backend: SlurmScheduler, tmp_path: Path) -> None:
    fake.script("sbatch", "echo 'sbatch: error: invalid partition specified: nosuch' >&2; exit 1")
    fake.script("squeue", "true")
    fake.script("sacct", "true")
    with pytest.raises(SchedulerError, match="invalid partition"):
        backend.submit(spec(tmp_path))
    assert len(fake.calls("sbatch")) == backend.command_attempts


def test_sbatch_garbage_output_raises(fake: FakeSlurm, backend: SlurmScheduler, tmp_path: Path) -> None:
    fake.script("sbatch", "echo 'Submitted batch job'")
    fake.script("squeue", "true")
    fake.script("sacct", "true")
    with pytest.raises(SchedulerError, match="not a job id"):
        backend.submit(spec(tmp_path))


def test_cancel_of_a_job_already_gone_is_not_an_error(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    fake.script("scancel", "echo 'scancel: error: Kill job error on job id 5: Invalid job id specified' >&2; exit 1")
    backend.cancel("5")
    assert len(fake.calls("scancel")) == 1


def test_cancel_failing_is_retried_then_raised(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    fake.script("scancel", "echo 'Unable to contact slurm controller' >&2; exit 1")
    with pytest.raises(SchedulerError, match="Unable to contact"):
        backend.cancel("5")
    assert len(fake.calls("scancel")) == backend.command_attempts


def test_hold_of_an_unknown_job_is_a_permanent_error(fake: FakeSlurm, backend: SlurmScheduler) -> None:
    fake.script("scontrol", "echo 'Invalid job id specified for job 5' >&2; exit 1")
    with pytest.raises(SchedulerError) as info:
        backend.hold("5")
    assert not info.value.transient
    assert len(fake.calls("scontrol")) == 1


def test_missing_commands_are_a_permanent_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                backend: SlurmScheduler) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SchedulerError, match="not found") as info:
        backend.poll(["5"])
    assert not info.value.transient
