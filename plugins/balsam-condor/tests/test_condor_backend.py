"""The ``condor`` backend against the HTCondor command-line simulator (real processes, real files)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import htcondor2
import pytest
from balsam_condor import simulator
from balsam_condor.backend import CondorScheduler

from balsam_agent.scheduler import LaunchSpec, SchedulerError, SchedulerJobStatus, SchedulerState

PY = sys.executable


def make_spec(workdir: Path, code: str, *, name: str = "argo-j1-0-a1", **fields) -> LaunchSpec:
    workdir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = dict(job_name=name, argv=(PY, "-c", code), workdir=workdir, nodes=1, processes_per_node=2,
                  wall_minutes=0, env={"ARGO_JOB_ID": "j1"}, stdout_path=workdir / "stdout.txt",
                  stderr_path=workdir / "stderr.txt")
    values.update(fields)
    return LaunchSpec(**values)


def wait_for(condor: CondorScheduler, cluster: str, states: set[SchedulerState],
             timeout: float = 20.0) -> SchedulerJobStatus:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condor.poll([cluster]).get(cluster)
        if last is not None and last.state in states:
            return last
        time.sleep(0.05)
    raise AssertionError(f"cluster {cluster} never reached {states}; last {last}")


def test_submit_poll_complete(condor, tmp_path):
    workdir = tmp_path / "step"
    code = "import os, sys; print('args', sys.argv[1:], os.environ['ARGO_JOB_ID'], os.getcwd())"
    spec = make_spec(workdir, code, argv=(PY, "-c", code, "two words", "it's", '"q"', "$HOME"))
    cluster = condor.submit(spec)
    assert cluster.isdigit()
    status = wait_for(condor, cluster, {SchedulerState.COMPLETED, SchedulerState.FAILED})
    assert (status.state, status.exit_code) == (SchedulerState.COMPLETED, 0)
    out = (workdir / "stdout.txt").read_text()
    assert "['two words', \"it's\", '\"q\"', '$HOME']" in out
    assert "j1" in out and str(workdir) in out
    # The job event log is real enough for HTCondor's own reader.
    events = [e.type for e in htcondor2.JobEventLog(str(workdir / f"{spec.job_name}.log")).events(0)]
    assert events == [htcondor2.JobEventType.SUBMIT, htcondor2.JobEventType.EXECUTE,
                      htcondor2.JobEventType.JOB_TERMINATED]


def test_failing_program_reports_its_exit_code(condor, tmp_path):
    cluster = condor.submit(make_spec(tmp_path / "s", "import sys; sys.exit(7)"))
    status = wait_for(condor, cluster, {SchedulerState.COMPLETED, SchedulerState.FAILED})
    assert (status.state, status.exit_code) == (SchedulerState.FAILED, 7)


def test_poll_is_batched_and_leaves_out_unknown_jobs(condor, tmp_path):
    # Like modern Balsam's issue #323: a job the scheduler no longer knows is left out, not a crash.
    a = condor.submit(make_spec(tmp_path / "a", "import time; time.sleep(30)", name="argo-a"))
    b = condor.submit(make_spec(tmp_path / "b", "pass", name="argo-b"))
    wait_for(condor, b, {SchedulerState.COMPLETED})
    statuses = condor.poll([a, b, "9999", "not-an-id"])
    assert set(statuses) == {a, b}
    assert statuses[a].state in (SchedulerState.QUEUED, SchedulerState.RUNNING)
    condor.cancel(a)


def test_cancel_running_and_held(condor, tmp_path):
    running = condor.submit(make_spec(tmp_path / "r", "import time; time.sleep(60)", name="argo-r"))
    wait_for(condor, running, {SchedulerState.RUNNING})
    condor.cancel(running)
    assert wait_for(condor, running, {SchedulerState.CANCELLED}).reason.startswith("via condor_rm")
    # Cancelling a job that already left the queue is not an error.
    condor.cancel(running)


def test_hold_release_and_hold_reason(condor, tmp_path):
    workdir = tmp_path / "h"
    cluster = condor.submit(make_spec(workdir, "import time; time.sleep(60)", name="argo-h"))
    wait_for(condor, cluster, {SchedulerState.RUNNING})
    condor.hold(cluster)
    held = wait_for(condor, cluster, {SchedulerState.HELD})
    assert held.reason.startswith("via condor_hold")
    condor.release(cluster)
    wait_for(condor, cluster, {SchedulerState.RUNNING})
    condor.cancel(cluster)
    wait_for(condor, cluster, {SchedulerState.CANCELLED})
    with pytest.raises(SchedulerError) as info:
        condor.hold(cluster)
    assert not info.value.transient


def test_walltime_exceeded_fails_the_step(condor, tmp_path, monkeypatch):
    # 1 minute is too long for a test: the description's policy is scaled down to one second.
    from balsam_condor import commands

    monkeypatch.setattr(commands, "walltime_policy",
                        lambda minutes: "(JobStatus == 2) && (time() - JobCurrentStartDate > 1)")
    cluster = condor.submit(make_spec(tmp_path / "w", "import time; time.sleep(60)", wall_minutes=1))
    status = wait_for(condor, cluster, {SchedulerState.FAILED, SchedulerState.CANCELLED})
    assert status.state is SchedulerState.FAILED
    assert "walltime exceeded" in status.reason


def test_find_by_name_in_queue_and_history(condor, tmp_path):
    assert condor.find_by_name("argo-nothing") is None
    running = condor.submit(make_spec(tmp_path / "q", "import time; time.sleep(60)", name="argo-q"))
    assert condor.find_by_name("argo-q") == running
    done = condor.submit(make_spec(tmp_path / "d", "pass", name="argo-d"))
    wait_for(condor, done, {SchedulerState.COMPLETED})
    assert condor.find_by_name("argo-d") == done
    condor.cancel(running)


def test_user_condor_job_file(condor, tmp_path):
    workdir = tmp_path / "u"
    workdir.mkdir()
    (workdir / "mine.sub").write_text(
        f"universe = vanilla\nexecutable = {PY}\narguments = \"-c 'print(42)'\"\n"
        "output = mine.out\nerror = mine.err\nlog = mine.log\nqueue 2\n")
    spec = make_spec(workdir, "", name="argo-user", argv=(), condor_job_file="mine.sub")
    cluster = condor.submit(spec)
    status = wait_for(condor, cluster, {SchedulerState.COMPLETED, SchedulerState.FAILED})
    assert status.state is SchedulerState.COMPLETED
    assert (workdir / "mine.out").read_text() == "42\n42\n"
    assert condor.find_by_name("argo-user") == cluster


def test_user_file_must_stay_in_the_workdir(condor, tmp_path):
    (tmp_path / "evil.sub").write_text("executable = /bin/true\nqueue\n")
    spec = make_spec(tmp_path / "x", "", argv=(), condor_job_file="../evil.sub")
    with pytest.raises(SchedulerError, match="outside"):
        condor.submit(spec)


def _dag(workdir: Path, second_exit: int) -> None:
    workdir.mkdir()
    for node, code in (("a", "open('a.txt', 'w').write('A')"),
                       ("b", f"import sys; print(open('a.txt').read()); sys.exit({second_exit})")):
        (workdir / f"{node}.sub").write_text(
            f"executable = {PY}\narguments = \"-c '{code.replace(chr(39), chr(39) * 2)}'\"\n"
            f"output = {node}.out\nerror = {node}.err\nlog = nodes.log\nqueue\n")
    (workdir / "w.dag").write_text("JOB A a.sub\nJOB B b.sub\nPARENT A CHILD B\n")


def test_dagman_file_tracked_as_one_unit(condor, tmp_path):
    workdir = tmp_path / "dag"
    _dag(workdir, 0)
    cluster = condor.submit(make_spec(workdir, "", name="argo-dag", argv=(), condor_dagman_file="w.dag"))
    status = wait_for(condor, cluster, {SchedulerState.COMPLETED, SchedulerState.FAILED})
    assert status.state is SchedulerState.COMPLETED
    assert (workdir / "b.out").read_text() == "A\n"  # B ran after A
    assert condor.find_by_name("argo-dag") == cluster


def test_failing_dag_node_fails_the_dag(condor, tmp_path):
    workdir = tmp_path / "dag"
    _dag(workdir, 4)
    cluster = condor.submit(make_spec(workdir, "", name="argo-dag2", argv=(), condor_dagman_file="w.dag"))
    status = wait_for(condor, cluster, {SchedulerState.COMPLETED, SchedulerState.FAILED})
    assert (status.state, status.exit_code) == (SchedulerState.FAILED, 1)


def test_missing_executable_is_a_permanent_submit_error(condor, tmp_path):
    with pytest.raises(SchedulerError, match="does not exist") as info:
        condor.submit(make_spec(tmp_path / "m", "", argv=("/no/such/program",)))
    assert not info.value.transient


@pytest.mark.parametrize("mode", ["fail", "garbage"])
def test_status_command_failures_are_retried(condor, condor_pool, tmp_path, mode):
    cluster = condor.submit(make_spec(tmp_path / "f", "pass"))
    wait_for(condor, cluster, {SchedulerState.COMPLETED})
    simulator.inject_fault(condor_pool, "condor_q", mode, count=1)
    if mode == "fail":  # one failure: the retry with backoff answers
        assert condor.poll([cluster])[cluster].state is SchedulerState.COMPLETED
    else:  # garbage output is not retried by the command runner: the agent's next cycle is
        with pytest.raises(SchedulerError, match="unreadable"):
            condor.poll([cluster])
        assert condor.poll([cluster])[cluster].state is SchedulerState.COMPLETED


def test_persistent_failure_raises_scheduler_error(condor, condor_pool, tmp_path):
    simulator.inject_fault(condor_pool, "condor_q", "fail", count=5)
    with pytest.raises(SchedulerError, match="condor_q exited 1"):
        condor.poll(["1"])


def test_hanging_command_times_out(condor, condor_pool):
    condor.command_timeout = 0.5
    condor.command_attempts = 2
    simulator.inject_fault(condor_pool, "condor_history", "hang", count=2)
    started = time.monotonic()
    with pytest.raises(SchedulerError, match="timed out"):
        condor.poll(["5"])
    assert time.monotonic() - started < 5


def test_timed_out_submit_is_adopted_not_duplicated(condor, condor_pool, tmp_path, monkeypatch):
    # A submit whose answer was lost (here: the tool failed after queueing, as if its connection
    # dropped) is found again by name instead of being submitted twice.
    spec = make_spec(tmp_path / "t", "pass", name="argo-lost")
    real_run = condor.run
    calls = []

    def lossy_run(argv, **kwargs):
        result = real_run(argv, **kwargs)
        if argv[0] == "condor_submit":
            calls.append(argv)
            raise SchedulerError("condor_submit timed out after 5s")
        return result

    monkeypatch.setattr(condor, "run", lossy_run)
    cluster = condor.submit(spec)
    assert len(calls) == 1
    assert len(simulator.read_state(condor_pool)["history"]) + len(
        simulator.read_state(condor_pool)["queue"]) == 1
    assert cluster == "1"


def test_plugin_registers_backend_and_site():
    import pluggy

    from balsam_agent import PROJECT, hookspecs

    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(PROJECT, name="condor")
    schedulers = [r for records in manager.hook.balsam_schedulers() for r in records]
    sites = [s for profiles in manager.hook.balsam_sites() for s in profiles]
    assert [(r.name, r.backend) for r in schedulers if r.name == "condor"] == [("condor", CondorScheduler)]
    assert [s.scheduler for s in sites if s.name == "argo_cluster"] == ["condor"]
