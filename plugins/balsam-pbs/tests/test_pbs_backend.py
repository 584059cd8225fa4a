"""The PBS backend driven through the PBS command-line simulator (PBS cannot run here)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from balsam_pbs import commands
from balsam_pbs.backend import PbsScheduler
from balsam_pbs.profiles import AURORA, POLARIS
from balsam_pbs.simulator import install

from balsam_agent.scheduler import LaunchSpec, SchedulerError, SchedulerJobStatus, SchedulerState


@pytest.fixture
def pbs_sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The PBS simulator first on PATH, state under tmp_path; kills the processes it started after."""
    bin_dir = install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PBS_SIM_DIR", str(tmp_path / "pbs-state"))
    monkeypatch.setenv("PBS_SIM_SECONDS_PER_MINUTE", "60")
    monkeypatch.setenv("PBS_SIM_QUEUE_SECONDS", "0")
    yield tmp_path
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((tmp_path / "pbs-state" / "state.json").read_text())
        for job in state["jobs"].values():
            for key, kill in (("task_pid", os.killpg), ("runner_pid", os.kill)):
                if job.get(key):
                    with contextlib.suppress(OSError):
                        kill(job[key], signal.SIGKILL)


def _spec(root: Path, name: str, body: str, **fields: object) -> LaunchSpec:
    workdir = root / "work" / name
    workdir.mkdir(parents=True, exist_ok=True)
    program = workdir / "program.sh"
    program.write_text("#!/bin/bash\n" + body)
    program.chmod(0o755)
    values: dict[str, object] = dict(job_name=name, argv=(str(program),), workdir=workdir, nodes=1,
                                     processes_per_node=1, wall_minutes=5, stdout_path=workdir / "out.txt",
                                     stderr_path=workdir / "err.txt")
    values.update(fields)
    return LaunchSpec(**values)  # type: ignore[arg-type]


def _backend() -> PbsScheduler:
    return PbsScheduler(replace(POLARIS, project="ATLAS", options={**POLARIS.options, "command_backoff": 0.05}))


def _wait(predicate: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _final(backend: PbsScheduler, job_id: str) -> SchedulerJobStatus:
    def ended() -> SchedulerJobStatus | None:
        status = backend.poll([job_id]).get(job_id)
        return status if status is not None and status.state.is_final else None
    return _wait(ended)  # type: ignore[return-value]


def test_qsub_argv_and_mpiexec_script(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "argo-j1-1-a1", "", nodes=2, processes_per_node=4, wall_minutes=90,
                 env={"ARGO_JOB_ID": "j 1"})
    argv, script = _backend().build_submit(spec)
    assert argv[:8] == ["qsub", "-N", "argo-j1-1-a1", "-l", "select=2:ncpus=64:mpiprocs=4",
                        "-l", "walltime=01:30:00", "-l"]
    assert argv[8] == "filesystems=home:eagle"
    assert argv[argv.index("-A") + 1] == "ATLAS" and argv[argv.index("-q") + 1] == "prod"
    assert "mpiexec -n 8 --ppn 4 " in script and "export ARGO_JOB_ID='j 1'" in script
    assert PbsScheduler(AURORA).build_submit(spec)[0][8] == "filesystems=home:flare"


def test_step_completes_and_failure_keeps_its_exit_code(pbs_sim: Path) -> None:
    backend = _backend()
    ok = _spec(pbs_sim, "argo-j2-0-a1", 'echo "ranks=$PBS_SIM_RANKS $ARGO_STEP"\n', nodes=2,
               processes_per_node=4, env={"ARGO_STEP": "0"})
    bad = _spec(pbs_sim, "argo-j2-1-a1", "exit 9\n")
    ok_id, bad_id = backend.submit(ok), backend.submit(bad)
    assert ok_id.endswith(".polaris-pbs-01") and ok_id.split(".")[0].isdigit()
    assert _final(backend, ok_id).state is SchedulerState.COMPLETED
    assert (ok.workdir / "out.txt").read_text() == "ranks=8 0\n"
    failed = _final(backend, bad_id)
    assert failed.state is SchedulerState.FAILED and failed.exit_code == 9


def test_hold_release_cancel_and_readoption(pbs_sim: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBS_SIM_QUEUE_SECONDS", "600")
    backend = _backend()
    job_id = backend.submit(_spec(pbs_sim, "argo-j3-0-a1", "true\n"))
    assert backend.poll([job_id])[job_id].state is SchedulerState.QUEUED
    backend.hold(job_id)
    held = backend.poll([job_id])[job_id]
    assert held.state is SchedulerState.HELD and held.native_state == "H"
    backend.release(job_id)
    assert backend.poll([job_id])[job_id].state is SchedulerState.QUEUED
    assert PbsScheduler(POLARIS).find_by_name("argo-j3-0-a1") == job_id
    assert backend.find_by_name("argo-j3-0-a2") is None
    backend.cancel(job_id)
    assert _final(backend, job_id).state is SchedulerState.CANCELLED
    backend.cancel(job_id)  # already finished: nothing to do, no error
    with pytest.raises(SchedulerError) as info:
        backend.hold(job_id)
    assert not info.value.transient


def test_running_job_cancel_and_walltime(pbs_sim: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBS_SIM_SECONDS_PER_MINUTE", "0.5")
    backend = _backend()
    long_id = backend.submit(_spec(pbs_sim, "argo-j4-0-a1", "sleep 60\n", wall_minutes=1))
    killed_id = backend.submit(_spec(pbs_sim, "argo-j4-1-a1", "sleep 60\n", wall_minutes=60))
    _wait(lambda: backend.poll([killed_id])[killed_id].state is SchedulerState.RUNNING)
    with pytest.raises(SchedulerError, match="Request invalid"):
        backend.hold(killed_id)
    backend.cancel(killed_id)
    assert _final(backend, killed_id).state is SchedulerState.CANCELLED
    overrun = _final(backend, long_id)
    assert overrun.state is SchedulerState.FAILED and overrun.exit_code == -29 and "walltime" in overrun.reason


def test_poll_batches_and_leaves_out_jobs_pbs_does_not_know(pbs_sim: Path) -> None:
    backend = _backend()
    ids = [backend.submit(_spec(pbs_sim, f"argo-j5-{n}-a1", f"exit {n}\n")) for n in range(3)]
    log = pbs_sim / "qstat-calls.txt"
    real = pbs_sim / "bin" / "qstat"
    real.rename(pbs_sim / "bin" / "qstat.real")
    real.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {pbs_sim / "bin" / "qstat.real"} "$@"\n')
    real.chmod(0o755)
    _wait(lambda: all(s.state.is_final for s in backend.poll(ids).values()) and len(backend.poll(ids)) == 3)
    statuses = backend.poll([*ids, "999999.polaris-pbs-01"])
    assert [statuses[i].exit_code for i in ids] == [0, 1, 2]
    assert "999999.polaris-pbs-01" not in statuses  # modern Balsam issue #323: left out, not raised
    calls = log.read_text().splitlines()
    assert calls[-2] == "-f -F json " + " ".join([*ids, "999999.polaris-pbs-01"])
    assert calls[-1] == "-x -f -F json " + " ".join([*ids, "999999.polaris-pbs-01"])


@pytest.mark.parametrize("body, message", [
    ('echo "qstat: cannot connect to server polaris-pbs-01 (errno=111)" >&2; exit 1\n', "cannot connect"),
    ("echo '{not json'\n", "invalid JSON"),
    ("exec sleep 30\n", "timed out"),
])
def test_qstat_failures_are_retried_then_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 body: str, message: str) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    counter = tmp_path / "count"
    (fake / "qstat").write_text(f"#!/bin/sh\necho x >> {counter}\n{body}")
    (fake / "qstat").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    backend = _backend()
    backend.command_timeout, backend.command_attempts = 1.0, 2
    with pytest.raises(SchedulerError, match=message):
        backend.poll(["1.polaris-pbs-01"])
    assert len(counter.read_text().split()) == 2


def test_the_plugin_registers_the_backend_and_two_sites() -> None:
    from balsam_agent.plugin_manager import get_plugin_manager
    pm = get_plugin_manager()
    records = [r for group in pm.hook.balsam_schedulers() for r in group]
    assert any(r.name == "pbs" and r.backend is PbsScheduler for r in records)
    sites = {p.name: p for group in pm.hook.balsam_sites() for p in group}
    assert sites["polaris"].launch_style == sites["aurora"].launch_style == "mpiexec"
    assert commands.walltime(0) == "00:01:00"
