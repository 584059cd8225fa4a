"""The ``local`` scheduler on its own: launch, poll, and re-adoption after an agent crash at any point."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from balsam_agent.builtin.local_launch import read_claim
from balsam_agent.builtin.local_scheduler import LocalScheduler, _proc_stat, parse_scheduler_id
from balsam_agent.records import SiteProfile
from balsam_agent.scheduler import LaunchSpec, SchedulerError, SchedulerJobStatus, SchedulerState


@pytest.fixture
def scheduler(tmp_path: Path):
    backend = LocalScheduler(SiteProfile(name="local", scheduler="local", work_root=str(tmp_path / "work")))
    yield backend
    backend.close()


def _spec(tmp_path: Path, name: str, argv: list[str]) -> LaunchSpec:
    workdir = tmp_path / name
    workdir.mkdir(exist_ok=True)
    return LaunchSpec(job_name=name, argv=tuple(argv), workdir=workdir, nodes=1, processes_per_node=1,
                      wall_minutes=0)


def _wait_final(scheduler: LocalScheduler, scheduler_id: str, timeout: float = 10) -> SchedulerJobStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = scheduler.poll([scheduler_id])[scheduler_id]
        if status.state not in (SchedulerState.RUNNING, SchedulerState.QUEUED, SchedulerState.HELD):
            return status
        time.sleep(0.02)
    raise AssertionError(f"{scheduler_id} still {status}")


def _launch_by_hand(scheduler: LocalScheduler, spec: LaunchSpec) -> tuple[subprocess.Popen[bytes], int]:
    """What an agent that died right after its launch leaves behind: a claimed, running attempt whose id
    the agent never recorded. Returns the launcher and the pid of the program it started."""
    marker = scheduler.registry / f"{spec.job_name}.pid"
    proc = subprocess.Popen([sys.executable, "-m", "balsam_agent.builtin.local_launch", str(marker), "0", "0",
                             *spec.argv],
                            cwd=spec.workdir, start_new_session=True)
    deadline = time.monotonic() + 10
    while (claim := read_claim(str(marker))) is None:
        assert time.monotonic() < deadline, "the launcher never claimed"
        time.sleep(0.005)
    return proc, claim[0]


def test_exit_codes_are_reported(scheduler: LocalScheduler, tmp_path: Path) -> None:
    ok = scheduler.submit(_spec(tmp_path, "ok", ["true"]))
    bad = scheduler.submit(_spec(tmp_path, "bad", ["sh", "-c", "exit 3"]))
    assert _wait_final(scheduler, ok).state is SchedulerState.COMPLETED
    failed = _wait_final(scheduler, bad)
    assert (failed.state, failed.exit_code, failed.reason) == (SchedulerState.FAILED, 3, "program exited with code 3")


def test_a_second_submit_of_the_same_attempt_runs_the_program_once(scheduler: LocalScheduler,
                                                                    tmp_path: Path) -> None:
    spec = _spec(tmp_path, "again", ["sh", "-c", "echo x >> count.txt; sleep 0.3; exit 6"])
    first = scheduler.submit(spec)
    second = scheduler.submit(spec)
    for scheduler_id in (first, second):
        final = _wait_final(scheduler, scheduler_id)
        assert (final.state, final.exit_code) == (SchedulerState.FAILED, 6), scheduler_id
    assert (spec.workdir / "count.txt").read_text() == "x\n"


def test_the_step_sees_its_environment(scheduler: LocalScheduler, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "env", ["sh", "-c", 'printf "%s|%s|%s" "$ARGO_JOB_ID" "$ODD" "$PATH" > env.txt'])
    spec = dataclasses.replace(spec, env={"ARGO_JOB_ID": "j1", "ODD": "a b; $(rm -rf x) 'q\"\n2"})
    assert _wait_final(scheduler, scheduler.submit(spec)).state is SchedulerState.COMPLETED
    assert (spec.workdir / "env.txt").read_text() == f"j1|a b; $(rm -rf x) 'q\"\n2|{os.environ['PATH']}"
    # A name no shell can export is refused by name, and nothing starts.
    odd = dataclasses.replace(_spec(tmp_path, "env2", ["sh", "-c", "echo ran > ran.txt"]), env={"A-B": "1"})
    with pytest.raises(SchedulerError, match="'A-B' is not a valid shell name"):
        scheduler.submit(odd)
    assert not (odd.workdir / "ran.txt").exists()


def test_a_launch_whose_id_was_never_recorded_is_found_by_name(scheduler: LocalScheduler, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "crash", ["sh", "-c", "echo x >> count.txt; sleep 0.5; exit 4"])
    orphan, pid = _launch_by_hand(scheduler, spec)
    scheduler_id = scheduler.find_by_name(spec.job_name)
    assert scheduler_id is not None
    assert parse_scheduler_id(scheduler_id)[0] == pid
    assert scheduler.poll([scheduler_id])[scheduler_id].state is SchedulerState.RUNNING
    final = _wait_final(scheduler, scheduler_id)
    orphan.wait()
    assert (final.state, final.exit_code) == (SchedulerState.FAILED, 4)
    assert (spec.workdir / "count.txt").read_text() == "x\n"


def test_a_submit_of_a_claimed_attempt_follows_the_launch_that_holds_the_claim(scheduler: LocalScheduler,
                                                                               tmp_path: Path) -> None:
    """The race after a crash: the agent relaunches an attempt that an earlier launch already claimed
    (the agent looked before the claim was written). Nothing starts a second time; the submit returns
    the claim holder, whose end and exit code are then reported."""
    spec = _spec(tmp_path, "race", ["sh", "-c", "echo x >> count.txt; sleep 0.5"])
    orphan, pid = _launch_by_hand(scheduler, spec)
    scheduler_id = scheduler.submit(spec)
    assert parse_scheduler_id(scheduler_id)[0] == pid
    launched = scheduler.poll([scheduler_id])[scheduler_id]
    assert launched.state is SchedulerState.RUNNING, launched
    final = _wait_final(scheduler, scheduler_id)
    orphan.wait()
    assert final.state is SchedulerState.COMPLETED, final
    assert (spec.workdir / "count.txt").read_text() == "x\n"


def test_a_zombie_whose_exit_is_being_recorded_is_still_running(scheduler: LocalScheduler, tmp_path: Path) -> None:
    """A step that ended is a zombie of its launcher until the launcher has written its exit code; a
    re-attached agent that looks in between must not report it ended without one."""
    spec = _spec(tmp_path, "zombie", ["sh", "-c", "while [ ! -e go ]; do sleep 0.01; done; exit 7"])
    launcher, pid = _launch_by_hand(scheduler, spec)
    os.kill(launcher.pid, signal.SIGSTOP)  # the launcher cannot record the exit while stopped
    try:
        (spec.workdir / "go").touch()
        deadline = time.monotonic() + 10
        while (stat := _proc_stat(pid)) is not None and stat[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        scheduler_id = scheduler.find_by_name(spec.job_name)
        assert scheduler_id is not None
        assert scheduler.poll([scheduler_id])[scheduler_id].state is SchedulerState.RUNNING
    finally:
        os.kill(launcher.pid, signal.SIGCONT)
    final = _wait_final(scheduler, scheduler_id)
    launcher.wait()
    assert (final.state, final.exit_code) == (SchedulerState.FAILED, 7)


def test_a_program_that_cannot_start_fails_the_submit_and_leaves_no_claim(scheduler: LocalScheduler,
                                                                          tmp_path: Path) -> None:
    spec = _spec(tmp_path, "missing", [str(tmp_path / "no-such-program")])
    with pytest.raises(SchedulerError, match="cannot start .*no-such-program"):
        scheduler.submit(spec)
    assert not (scheduler.registry / "missing.pid").exists()
    # The attempt can be submitted again once the program is there.
    program = tmp_path / "no-such-program"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    assert _wait_final(scheduler, scheduler.submit(spec)).state is SchedulerState.COMPLETED


def test_steps_outlive_their_spawner_and_keep_their_exit_codes(scheduler: LocalScheduler, tmp_path: Path) -> None:
    """The agent goes away (its end of the spawner's pipe closes): the spawner stays until its last step
    ended, records that step's exit code, and then exits."""
    spec = _spec(tmp_path, "outlive", ["sh", "-c", "sleep 0.5; exit 9"])
    scheduler_id = scheduler.submit(spec)
    spawner = scheduler.spawner.pid
    assert spawner is not None
    scheduler.close()
    assert _proc_stat(spawner) is not None and _proc_stat(spawner)[0] != "Z"
    restarted = LocalScheduler(scheduler.site)
    try:
        final = _wait_final(restarted, scheduler_id)
        assert (final.state, final.exit_code) == (SchedulerState.FAILED, 9)
    finally:
        restarted.close()
    deadline = time.monotonic() + 5
    while (stat := _proc_stat(spawner)) is not None and stat[0] not in ("Z", "X"):
        assert time.monotonic() < deadline, "the spawner did not exit after its last step"
        time.sleep(0.02)


def test_an_adopted_process_that_ended_reports_its_exit_code(scheduler: LocalScheduler, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "ended", ["sh", "-c", "exit 5"])
    scheduler_id = scheduler.submit(spec)
    _wait_final(scheduler, scheduler_id)
    restarted = LocalScheduler(scheduler.site)  # a new agent process: no children, no cache
    try:
        final = restarted.poll([scheduler_id])[scheduler_id]
        assert (final.state, final.exit_code) == (SchedulerState.FAILED, 5)
    finally:
        restarted.close()


def test_walltime_is_enforced_by_a_restarted_agent(tmp_path: Path) -> None:
    site = SiteProfile(name="local", scheduler="local", work_root=str(tmp_path / "work"),
                       options={"seconds_per_wall_minute": 0.5})
    first = LocalScheduler(site)
    spec = dataclasses.replace(_spec(tmp_path, "long", ["sleep", "30"]), wall_minutes=1)
    scheduler_id = first.submit(spec)
    assert first.poll([scheduler_id])[scheduler_id].state is SchedulerState.RUNNING
    first.close()
    restarted = LocalScheduler(site)  # knows nothing but the registry files and /proc
    try:
        final = _wait_final(restarted, scheduler_id, timeout=10)
        assert (final.state, final.timed_out, final.reason) == (SchedulerState.FAILED, True,
                                                                 "walltime of 1 min exceeded")
        assert restarted.find_by_name("long") is not None
    finally:
        restarted.close()


def test_an_attempt_launched_by_an_earlier_version_reports_its_exit_code(scheduler: LocalScheduler) -> None:
    """Earlier versions claimed with ``PID WALL`` and wrote the exit code to ``<name>.exit``; an upgraded
    agent re-attaching to such an attempt still learns how it ended."""
    gone = 2 ** 22 + 12345  # above the default pid_max: no process has it
    (scheduler.registry / "legacy.pid").write_text(f"{gone} 5\n")
    (scheduler.registry / "legacy.exit").write_text("6\n")
    scheduler_id = scheduler.find_by_name("legacy")
    assert scheduler_id == f"{gone}:0:legacy"
    final = scheduler.poll([scheduler_id])[scheduler_id]
    assert (final.state, final.exit_code) == (SchedulerState.FAILED, 6)
    # The current format: the exit code appended to the claim.
    (scheduler.registry / "current.pid").write_text(f"{gone} 5 77\nexit 0\n")
    current = scheduler.find_by_name("current")
    assert current is not None and scheduler.poll([current])[current].state is SchedulerState.COMPLETED


def test_concurrent_submits_each_start_their_step_once(scheduler: LocalScheduler, tmp_path: Path) -> None:
    """Submits from many worker threads share the spawner (requests pipelined, claims made together)."""
    import concurrent.futures

    specs = [_spec(tmp_path, f"c{i}", ["sh", "-c", f"echo {i} >> count.txt; exit {i % 3}"]) for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        ids = list(pool.map(scheduler.submit, specs))
    assert len({parse_scheduler_id(i)[0] for i in ids}) == len(specs)
    for i, (spec, scheduler_id) in enumerate(zip(specs, ids, strict=True)):
        final = _wait_final(scheduler, scheduler_id)
        assert final.exit_code == i % 3, (scheduler_id, final)
        assert (spec.workdir / "count.txt").read_text() == f"{i}\n"


def test_the_current_spawners_pipe_ending_orphans_its_steps_before_they_are_reparented(
        scheduler: LocalScheduler, tmp_path: Path) -> None:
    # A dying spawner's events pipe can read as ended while the kernel has not yet given its children to
    # another parent: their parent pid still names it, and they must be followed all the same.
    scheduler_id = scheduler.submit(_spec(tmp_path, "early", ["sh", "-c", "sleep 0.3"]))
    pid = parse_scheduler_id(scheduler_id)[0]
    assert (_proc_stat(pid) or ("", 0, 0))[2] == scheduler.spawner.pid
    scheduler._on_spawner_gone(scheduler.spawner.events_fd)  # type: ignore[arg-type]
    assert pid not in scheduler._launched
    assert _wait_final(scheduler, scheduler_id).state is SchedulerState.COMPLETED  # its spawner lived on


def test_a_killed_spawner_is_replaced_and_its_orphans_are_followed(scheduler: LocalScheduler, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "orphan", ["sh", "-c", "sleep 0.6"])
    scheduler_id = scheduler.submit(spec)
    spawner = scheduler.spawner.pid
    assert spawner is not None
    os.kill(spawner, signal.SIGKILL)
    # The step runs on, reparented; its end is noticed, but nobody recorded its exit code.
    assert scheduler.poll([scheduler_id])[scheduler_id].state is SchedulerState.RUNNING
    final = _wait_final(scheduler, scheduler_id)
    assert (final.state, final.native_state) == (SchedulerState.FAILED, "lost")
    # The next submit starts a new spawner.
    again = scheduler.submit(_spec(tmp_path, "after", ["true"]))
    assert scheduler.spawner.pid not in (None, spawner)
    assert _wait_final(scheduler, again).state is SchedulerState.COMPLETED
