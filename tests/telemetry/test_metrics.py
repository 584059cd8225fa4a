"""Metrics: the server's Prometheus endpoint after a job ran, and the agent's scheduler and transfer metrics."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Sequence
from typing import Any

import pytest
from argo_client import ArgoClient
from argo_client.legacy import job_from_legacy
from argobalsam.argo.v1 import job_pb2

from balsam_agent.records import SiteProfile
from balsam_agent.scheduler import BatchScheduler, SchedulerError
from tests.telemetry.helpers import METRICS, Stack


def scrape(stack: Stack) -> str:
    """The server's ``GET /metrics`` on the monitor port."""
    assert stack.server.monitor is not None
    url = f"http://127.0.0.1:{stack.server.monitor.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        return str(reply.read().decode())


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (fails when it is missing)."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(4))
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def test_metrics_endpoint_reports_jobs_steps_transitions_outbox_and_lag(stack: Stack) -> None:
    before = scrape(stack)
    assert sample(before, "argo_outbox_backlog") == 0
    with ArgoClient(stack.address) as client:
        job = client.wait(client.create_job(job_from_legacy(stack.submission)), timeout=90)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED
    text = scrape(stack)
    assert sample(text, "argo_jobs", state="SUCCEEDED") == 1
    assert sample(text, "argo_steps", state="SUCCEEDED") == 2
    assert sample(text, "argo_outbox_backlog") == 0
    assert sample(text, "argo_outbox_age_seconds") == 0
    # every step went DISPATCHED → ACCEPTED → ... → SUCCEEDED (counters are cumulative over the process)
    assert sample(text, "argo_transitions_total", kind="step", to="SUCCEEDED", **{"from": "STAGING_OUT"}) >= 2
    assert sample(text, "argo_transitions_total", kind="job", to="SUCCEEDED") >= 1
    # at least ACCEPTED, STAGING_IN, SUBMITTED, STAGING_OUT, SUCCEEDED per step; RUNNING and QUEUED are
    # skipped when the program ends between two polls
    assert sample(text, "argo_status_updates_total", outcome="applied") >= 10
    assert sample(text, "argo_status_lag_seconds_count") >= 10
    assert sample(text, "argo_status_lag_seconds_sum") >= 0


def _points(name: str) -> list[Any]:
    data = METRICS.get_metrics_data()
    assert data is not None
    return [point for resource in data.resource_metrics for scope in resource.scope_metrics
            for metric in scope.metrics if metric.name == name for point in metric.data.data_points]


def _total(name: str, **attributes: Any) -> float:
    total = 0.0
    for point in _points(name):
        if all(point.attributes.get(key) == value for key, value in attributes.items()):
            total += point.count if hasattr(point, "count") else point.value
    return total


class _Commands(BatchScheduler):
    """Just the command runner of a batch scheduler."""

    name = "commands"
    command_backoff = 0.01

    def submit(self, spec: Any) -> str:
        raise NotImplementedError

    def poll(self, scheduler_ids: Sequence[str]) -> dict[str, Any]:
        raise NotImplementedError

    def cancel(self, scheduler_id: str) -> None:
        raise NotImplementedError


def test_scheduler_command_latency_and_failures_are_measured() -> None:
    site = SiteProfile(name="metrics-site", scheduler="commands")
    scheduler = _Commands(site)
    ok_before = _total("balsam.scheduler.command.duration", command="true", outcome="ok")
    final_before = _total("balsam.scheduler.command.failures", command="false", final=True)
    retried_before = _total("balsam.scheduler.command.failures", command="false", final=False)
    scheduler.run(["true"])
    with pytest.raises(SchedulerError):
        scheduler.run(["false"], attempts=2)
    assert _total("balsam.scheduler.command.duration", command="true", outcome="ok") == ok_before + 1
    assert _total("balsam.scheduler.command.failures", command="false", final=True) == final_before + 1
    assert _total("balsam.scheduler.command.failures", command="false", final=False) == retried_before + 1
    assert _total("balsam.scheduler.command.duration", command="false", outcome="failed") >= 1


def test_transfers_of_a_job_count_bytes_and_durations(stack: Stack) -> None:
    bytes_in = _total("balsam.transfer.bytes", site="local", scheme="file", direction="in")
    bytes_out = _total("balsam.transfer.bytes", site="local", scheme="file", direction="out")
    calls_in = _total("balsam.transfer.duration", site="local", scheme="file", direction="in", outcome="ok")
    with ArgoClient(stack.address) as client:
        job = client.wait(client.create_job(job_from_legacy(stack.submission)), timeout=90)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED
    inputs = sum(path.stat().st_size for path in (stack.site_bin.parent / "inputs").iterdir())
    # step 1 fetches 2 inputs, step 2 fetches 3 inputs and step 1's 2 grids
    assert _total("balsam.transfer.bytes", site="local", scheme="file", direction="in") > bytes_in + inputs
    assert _total("balsam.transfer.bytes", site="local", scheme="file", direction="out") > bytes_out
    assert _total("balsam.transfer.duration", site="local", scheme="file", direction="in", outcome="ok") \
        == calls_in + 2
