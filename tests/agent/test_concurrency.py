"""Many steps progress at once; one slow plugin holds back no other step; polling is batched."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from balsam_agent import hookimpl
from balsam_agent.records import ProcessHookRecord, SchedulerRecord, TransferRecord
from balsam_agent.scheduler import LaunchSpec, SchedulerBackend, SchedulerJobStatus, SchedulerState
from balsam_agent.transfer import TransferBackend


class SlowPlugins:
    """A transfer scheme and a process hook that block until released (or 10 s)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        plugin = self

        class SlowTransfer(TransferBackend):
            schemes = ("slow",)

            def fetch(self, items, cancelled) -> None:
                plugin.entered.release()
                plugin.release.wait(10)
                for item in items:
                    item.path.write_text("slow")

            def store(self, items, cancelled) -> None:
                plugin.release.wait(10)

        self.transfer = SlowTransfer

    @hookimpl
    def balsam_transfers(self):
        return [TransferRecord(scheme="slow", backend=self.transfer)]

    @hookimpl
    def balsam_process_hooks(self):
        def slow_hook(context, args) -> None:
            self.entered.release()
            self.release.wait(10)

        return [ProcessHookRecord(name="slow-hook", run=slow_hook)]


def test_a_slow_transfer_and_a_slow_hook_hold_back_no_other_step(local_agent, tmp_path: Path) -> None:
    slow = SlowPlugins()
    harness = local_agent(plugins=[slow])
    try:
        harness.assign(job_id="slowin", executable="true", inputs={"in.txt": "slow://host/in.txt"})
        harness.assign(job_id="slowhook", executable="true", preprocess="slow-hook")
        assert slow.entered.acquire(timeout=10) and slow.entered.acquire(timeout=10)
        started = time.monotonic()
        fast = [harness.assign(job_id=f"fast{i}", executable="true") for i in range(20)]
        for step_id in fast:
            harness.reports.wait_state(step_id, "SUCCEEDED", timeout=10)
        assert time.monotonic() - started < 5
        assert "SUCCEEDED" not in harness.reports.states("slowin/0")
        assert "SUCCEEDED" not in harness.reports.states("slowhook/0")
    finally:
        slow.release.set()
    harness.reports.wait_state("slowin/0", "SUCCEEDED")
    harness.reports.wait_state("slowhook/0", "SUCCEEDED")


class CountingScheduler:
    """A scheduler plugin whose jobs run until told otherwise; it records every poll call."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.submits = 0
        self.finished = False
        plugin = self

        class Counting(SchedulerBackend):
            name = "counting"

            def submit(self, spec: LaunchSpec) -> str:
                plugin.submits += 1
                return spec.job_name

            def poll(self, scheduler_ids: Sequence[str]) -> dict[str, SchedulerJobStatus]:
                plugin.calls.append(len(scheduler_ids))
                state = SchedulerState.COMPLETED if plugin.finished else SchedulerState.RUNNING
                return {i: SchedulerJobStatus(i, state, exit_code=0 if plugin.finished else None)
                        for i in scheduler_ids}

            def cancel(self, scheduler_id: str) -> None:
                pass

        self.backend = Counting

    @hookimpl
    def balsam_schedulers(self):
        return [SchedulerRecord(name="counting", backend=self.backend)]


def test_one_poll_call_per_cycle_for_a_thousand_active_steps(balsam_agent, exec_dir: Path) -> None:
    plugin = CountingScheduler()
    harness = balsam_agent("batch", plugins=[plugin], site_options={
        "scheduler": "counting", "allowed_exec_dir": str(exec_dir), "poll_interval": 0.2})
    steps = [harness.assign(job_id=f"p{i}", executable="true") for i in range(1000)]
    assert harness.reports.wait_for(
        lambda updates: sum(1 for u in updates if u.state == 8) >= 1000, timeout=60), "not all RUNNING"
    calls_before = len(plugin.calls)
    time.sleep(1.0)  # a measured window of about five poll cycles
    window = plugin.calls[calls_before:]
    assert 3 <= len(window) <= 7, window
    assert all(count == 1000 for count in window), window
    assert plugin.submits == 1000
    plugin.finished = True
    assert harness.reports.wait_for(
        lambda updates: sum(1 for u in updates if u.state == 11) >= 1000, timeout=60)
    assert harness.agent.active_steps() == 0
    assert len(set(steps)) == 1000
