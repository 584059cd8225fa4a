"""Crash recovery (kill -9 of an agent process) and a broker outage (connections closed by the broker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from argobalsam.argo.v1 import job_pb2

from balsam_agent import hookimpl
from balsam_agent.testing import AssignmentPublisher, ReportCollector, make_assignment

SUCCEEDED = job_pb2.STEP_STATE_SUCCEEDED


def _start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BALSAM_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "balsam_agent.cli", "--site", "local", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def _step_rows(database: Path, step_ids: list[str]) -> list[list[tuple]]:
    import sqlite3

    conn = sqlite3.connect(database)
    try:
        return [conn.execute("SELECT step_id, attempt, phase, state, scheduler_id, terminal FROM steps "
                             "WHERE step_id = ?", (s,)).fetchall() for s in step_ids]
    finally:
        conn.close()


def _distinct_succeeded(reports: ReportCollector) -> Counter[str]:
    seen = {(u.step_id, u.attempt, u.sequence) for u in reports.updates if u.state == SUCCEEDED}
    return Counter(step_id for step_id, _, _ in seen)


@pytest.mark.slow
def test_kill_9_at_any_phase_then_restart_finishes_every_step_exactly_once(
        tmp_path: Path, exec_dir: Path, balsam_amqp_url: str, balsam_amqp_prefix: str) -> None:
    (exec_dir / "once").write_text("#!/bin/sh\necho ran >> \"$1\"\nsleep \"$2\"\n")
    (exec_dir / "once").chmod(0o755)
    source = tmp_path / "input.txt"
    source.write_text("in")
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "amqp_url": balsam_amqp_url, "amqp_prefix": balsam_amqp_prefix, "state_dir": str(tmp_path / "state"),
        "heartbeat_interval": 1, "site": {"allowed_exec_dir": str(exec_dir), "poll_interval": 0.1}}))
    reports = ReportCollector(balsam_amqp_url, balsam_amqp_prefix)
    log = tmp_path / "agent.log"
    agent = _start_agent(config, log)
    publisher = AssignmentPublisher(balsam_amqp_url, balsam_amqp_prefix)
    try:
        assert reports.wait_for(lambda _: bool(reports.heartbeats), timeout=20), log.read_text()
        counters = {}
        for i in range(60):
            counter = tmp_path / f"count{i}.txt"
            counters[f"k{i}/0"] = counter
            publisher.publish(make_assignment(
                job_id=f"k{i}", site="local", executable="once", args=[str(counter), str(0.05 * (i % 7))],
                inputs={"input.txt": source.as_uri()},
                outputs={"input.txt": [(tmp_path / "area" / f"k{i}.txt").as_uri()]}))
        # Kill at different moments: first acceptances, mid-run, most finished.
        for wanted in (1, 25, 45):
            assert reports.wait_for(lambda updates, w=wanted: len({u.step_id for u in updates}) >= w,  # type: ignore[misc]
                                    timeout=30)
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
            agent = _start_agent(config, log)
        finished = reports.wait_for(lambda _: len(_distinct_succeeded(reports)) >= 60, timeout=60)
        missing = sorted(set(counters) - set(_distinct_succeeded(reports)))
        assert finished, (f"not finished: {[(m, [(job_pb2.StepState.Name(u.state), u.reason) for u in reports.for_step(m)]) for m in missing]}; "
                          f"{_step_rows(tmp_path / 'state' / 'agent.sqlite', missing)}")
        assert set(_distinct_succeeded(reports).values()) == {1}
        for step_id, counter in counters.items():
            assert counter.read_text() == "ran\n", f"{step_id} ran {counter.read_text().count('ran')} times"
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=20)
        publisher.close()
        reports.close()


def _close_agent_connections(prefix: str) -> int:
    listing = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                             capture_output=True, text=True, timeout=60).stdout
    closed = 0
    for line in listing.splitlines():
        if f"balsam-agent {prefix} " in line:
            pid = line.split("\t", 1)[0]
            subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: broker-side close"],
                           capture_output=True, timeout=60, check=True)
            closed += 1
    return closed


def test_broker_closing_the_connections_loses_no_update(local_agent, tmp_path: Path) -> None:
    harness = local_agent()
    steps = [harness.assign(job_id=f"o{i}", executable="sleep", args=["0.5"]) for i in range(20)]
    harness.reports.wait_for(lambda updates: len(updates) >= 20, timeout=20)
    assert _close_agent_connections(harness.agent.config.amqp_prefix) == 2
    late = [harness.assign(job_id=f"late{i}", executable="true") for i in range(5)]
    for step_id in steps + late:
        harness.reports.wait_state(step_id, "SUCCEEDED", timeout=30)
    for step_id in steps + late:
        sequences = sorted({u.sequence for u in harness.reports.for_step(step_id)})
        assert sequences == list(range(1, sequences[-1] + 1)), f"{step_id} lost an update: {sequences}"


class TimeoutRecorder:
    def __init__(self) -> None:
        self.timeouts: list[str] = []
        self.errors: list[tuple[str, str]] = []

    @hookimpl
    def balsam_step_timeout(self, context) -> None:
        self.timeouts.append(f"{context.job_id}/{context.step_index}")

    @hookimpl
    def balsam_step_error(self, context, phase, reason) -> None:
        self.errors.append((phase, reason))


def test_walltime_overrun_kills_the_step_and_calls_the_timeout_hook(local_agent) -> None:
    recorder = TimeoutRecorder()
    harness = local_agent(site_options={"options": {"seconds_per_wall_minute": 0.5}}, plugins=[recorder])
    step_id = harness.assign(job_id="jw", executable="sleep", args=["30"], wall_minutes=1)
    failed = harness.reports.wait_state(step_id, "FAILED", timeout=15)
    assert failed.reason == "walltime of 1 min exceeded"
    assert failed.failed_phase == job_pb2.STEP_PHASE_RUN
    deadline = time.monotonic() + 5
    while not recorder.errors and time.monotonic() < deadline:
        time.sleep(0.02)
    assert recorder.timeouts == ["jw/0"]
    assert recorder.errors == [("run", "walltime of 1 min exceeded")]


def test_restarted_agent_reattaches_to_a_running_program(local_agent, tmp_path: Path) -> None:
    first = local_agent(state_dir=tmp_path / "state")
    counter = tmp_path / "count.txt"
    (Path(first.agent.site.allowed_exec_dir) / "slow-count").write_text(
        "#!/bin/sh\nsleep 1\necho ran >> \"$1\"\n")
    (Path(first.agent.site.allowed_exec_dir) / "slow-count").chmod(0o755)
    step_id = first.assign(job_id="ra", executable="slow-count", args=[str(counter)])
    running = first.reports.wait_state(step_id, "RUNNING")
    first.agent.stop()
    second = local_agent(state_dir=tmp_path / "state", reports=first.reports)
    done = second.reports.wait_state(step_id, "SUCCEEDED", timeout=20)
    assert done.scheduler_id == running.scheduler_id
    assert counter.read_text() == "ran\n"
