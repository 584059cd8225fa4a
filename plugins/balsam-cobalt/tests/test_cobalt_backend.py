"""The Cobalt backend driven through the Cobalt command-line simulator (Cobalt cannot run here)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from balsam_cobalt.backend import CobaltScheduler
from balsam_cobalt.profiles import MIRA, TUKEY, VESTA

from balsam_agent.scheduler import SchedulerError, SchedulerJobStatus, SchedulerState


def _wait(predicate: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _final(backend: CobaltScheduler, job_id: str) -> SchedulerJobStatus:
    def ended() -> SchedulerJobStatus | None:
        status = backend.poll([job_id]).get(job_id)
        return status if status is not None and status.state.is_final else None
    return _wait(ended)  # type: ignore[return-value]


def _program(directory: Path, body: str) -> str:
    path = directory / "program.sh"
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return str(path)


def test_vesta_step_runs_through_runjob_and_completes(cobalt_sim) -> None:
    backend = CobaltScheduler(cobalt_sim.profile(VESTA))
    spec = cobalt_sim.spec("argo-j1-1-a1", [], nodes=2, processes_per_node=8, env={"ARGO_STEP": "1"})
    argv = [_program(spec.workdir, 'echo "ranks=$COBALT_SIM_RANKS step=$ARGO_STEP arg=$1" > out.txt\n'), "a b"]
    spec = type(spec)(**{**spec.__dict__, "argv": tuple(argv)})
    job_id = backend.submit(spec)
    assert job_id.isdigit()
    status = _final(backend, job_id)
    assert status.state is SchedulerState.COMPLETED and status.exit_code == 0
    assert (spec.workdir / "out.txt").read_text() == "ranks=16 step=1 arg=a b\n"


def test_mira_mode_cn_failure_reports_the_exit_code(cobalt_sim) -> None:
    backend = CobaltScheduler(cobalt_sim.profile(MIRA))
    spec = cobalt_sim.spec("argo-j2-0-a1", [], nodes=2, processes_per_node=4)
    spec = type(spec)(**{**spec.__dict__, "argv": (_program(spec.workdir, "echo $COBALT_SIM_RANKS; exit 7\n"),)})
    job_id = backend.submit(spec)
    status = _final(backend, job_id)
    assert status.state is SchedulerState.FAILED and status.exit_code == 7
    assert spec.stdout_path is not None and spec.stdout_path.read_text() == "8\n"


def test_tukey_step_runs_through_mpirun(cobalt_sim) -> None:
    backend = CobaltScheduler(cobalt_sim.profile(TUKEY))
    spec = cobalt_sim.spec("argo-j3-0-a1", [], nodes=3, processes_per_node=2)
    spec = type(spec)(**{**spec.__dict__, "argv": (_program(spec.workdir, "echo $COBALT_SIM_RANKS\n"),)})
    status = _final(backend, backend.submit(spec))
    assert status.state is SchedulerState.COMPLETED
    assert spec.stdout_path is not None and spec.stdout_path.read_text() == "6\n"


def test_hold_release_and_cancel_of_a_queued_job(cobalt_sim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COBALT_SIM_QUEUE_SECONDS", "600")
    backend = CobaltScheduler(cobalt_sim.profile(VESTA))
    spec = cobalt_sim.spec("argo-j4-0-a1", ["/bin/true"])
    job_id = backend.submit(spec)
    assert backend.poll([job_id])[job_id].state is SchedulerState.QUEUED
    backend.hold(job_id)
    held = backend.poll([job_id])[job_id]
    assert held.state is SchedulerState.HELD and held.native_state == "user_hold"
    with pytest.raises(SchedulerError, match="already in state"):
        backend.hold(job_id)
    backend.release(job_id)
    assert backend.poll([job_id])[job_id].state is SchedulerState.QUEUED
    with pytest.raises(SchedulerError, match="does not have"):
        backend.release(job_id)
    assert backend.find_by_name("argo-j4-0-a1") == job_id
    assert backend.find_by_name("argo-j4-0-a2") is None
    backend.cancel(job_id)
    status = _final(backend, job_id)
    assert status.state is SchedulerState.CANCELLED


def test_cancel_of_a_running_job_kills_it(cobalt_sim) -> None:
    backend = CobaltScheduler(cobalt_sim.profile(VESTA))
    spec = cobalt_sim.spec("argo-j5-0-a1", ["/bin/sleep", "60"])
    job_id = backend.submit(spec)
    _wait(lambda: backend.poll([job_id])[job_id].native_state == "running")
    with pytest.raises(SchedulerError, match="already active"):
        backend.hold(job_id)
    backend.cancel(job_id)
    assert _final(backend, job_id).state is SchedulerState.CANCELLED


def test_walltime_overrun_fails_the_job(cobalt_sim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COBALT_SIM_SECONDS_PER_MINUTE", "0.5")
    backend = CobaltScheduler(cobalt_sim.profile(VESTA))
    job_id = backend.submit(cobalt_sim.spec("argo-j6-0-a1", ["/bin/sleep", "60"], wall_minutes=1))
    status = _final(backend, job_id)
    assert status.state is SchedulerState.FAILED and "walltime" in status.reason


def test_poll_is_one_qstat_for_all_jobs_and_a_restarted_agent_reads_outcomes(cobalt_sim) -> None:
    profile = cobalt_sim.profile(VESTA)
    backend = CobaltScheduler(profile)
    ids = [backend.submit(cobalt_sim.spec(f"argo-j7-{n}-a1", ["/bin/sh", "-c", f"exit {n}"])) for n in range(3)]
    log = cobalt_sim.root / "qstat-calls.txt"
    real = cobalt_sim.bin_dir / "qstat"
    real.rename(cobalt_sim.bin_dir / "qstat.real")
    real.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {cobalt_sim.bin_dir / "qstat.real"} "$@"\n')
    real.chmod(0o755)
    # A new backend instance, as after an agent restart: it knows nothing but the ids.
    fresh = CobaltScheduler(profile)
    statuses = _wait(lambda: (s := fresh.poll(ids)) and all(v.state.is_final for v in s.values())
                     and len(s) == 3 and s)
    assert [statuses[i].exit_code for i in ids] == [0, 1, 2]  # type: ignore[index]
    calls = log.read_text().splitlines()
    assert all(call.endswith(" ".join(ids)) for call in calls)


def test_job_unknown_to_qstat_and_without_log_is_left_out(cobalt_sim) -> None:
    # Modern Balsam issue #323: a job the scheduler does not know must not crash the poll.
    backend = CobaltScheduler(cobalt_sim.profile(VESTA))
    assert backend.poll(["424242"]) == {}
    with pytest.raises(SchedulerError, match="not found"):
        backend.hold("424242")
    backend.cancel("424242")  # nothing to cancel: logged, not raised


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of fake Cobalt commands first on PATH (for failures the simulator never shows)."""
    directory = tmp_path / "fake-bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


def _backend(tmp_path: Path) -> CobaltScheduler:
    from dataclasses import replace
    backend = CobaltScheduler(replace(VESTA, options={"cobaltlog_dir": str(tmp_path / "logs"),
                                                      "command_backoff": 0.01, "command_timeout": 1.0}))
    return backend


def test_failing_qstat_is_retried_then_succeeds(fakes: Path, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    _fake(fakes, "qstat", f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n'
                          'if [ "$n" -lt 2 ]; then echo "component error: Failed to connect to queue-manager" >&2; exit 1; fi\n'
                          'printf "JobID  State    \\n================\\n5      running  \\n"\n')
    assert _backend(tmp_path).poll(["5"])["5"].state is SchedulerState.RUNNING
    assert counter.read_text().strip() == "3"


@pytest.mark.parametrize("body, message", [
    ('echo "component error: Failed to connect to queue-manager" >&2; exit 1\n', "exited 1"),
    ("echo 'garbage without a table'\n", "unrecognised qstat output"),
    ("exec sleep 30\n", "timed out"),
])
def test_qstat_failures_end_in_scheduler_error(fakes: Path, tmp_path: Path, body: str, message: str) -> None:
    _fake(fakes, "qstat", body)
    backend = _backend(tmp_path)
    backend.command_attempts = 2
    with pytest.raises(SchedulerError, match=message):
        backend.poll(["5"])


def test_failing_qsub_is_retried_without_double_submission(fakes: Path, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    _fake(fakes, "qsub", f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n'
                         'if [ "$n" -lt 1 ]; then echo "component error" >&2; exit 1; fi\necho 77\n')
    _fake(fakes, "qstat", "exit 1\n")  # nothing queued under that name
    workdir = tmp_path / "w"
    workdir.mkdir()
    from balsam_agent.scheduler import LaunchSpec
    spec = LaunchSpec("argo-j8-0-a1", ("/bin/true",), workdir, 1, 1, 5)
    assert _backend(tmp_path).submit(spec) == "77"
    assert counter.read_text().strip() == "2"


def test_qsub_that_queued_the_job_before_failing_is_readopted(fakes: Path, tmp_path: Path) -> None:
    _fake(fakes, "qsub", "echo 'timeout talking to cqm' >&2; exit 1\n")
    _fake(fakes, "qstat", 'printf "JobID  JobName       State   \\n====================\\n'
                          '91     argo-j9-0-a1  queued  \\n"\n')
    workdir = tmp_path / "w"
    workdir.mkdir()
    from balsam_agent.scheduler import LaunchSpec
    spec = LaunchSpec("argo-j9-0-a1", ("/bin/true",), workdir, 1, 1, 5)
    assert _backend(tmp_path).submit(spec) == "91"


def test_the_plugin_registers_the_backend_and_three_sites() -> None:
    from balsam_agent.plugin_manager import get_plugin_manager
    pm = get_plugin_manager()
    records = [r for group in pm.hook.balsam_schedulers() for r in group]
    assert any(r.name == "cobalt" and r.backend is CobaltScheduler for r in records)
    sites = {p.name: p for group in pm.hook.balsam_sites() for p in group}
    assert sites["vesta"].poll_interval == 300
    assert (sites["mira"].launch_style, sites["vesta"].launch_style, sites["tukey"].launch_style) == (
        "cobalt-mode", "runjob", "mpirun")
