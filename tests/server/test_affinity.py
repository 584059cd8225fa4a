"""``cpu_affinity``: a server pins every thread of its process to the CPUs named; its relay process keeps
the CPUs the server had (it does not share the server's interpreter lock)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from argobalsam.argo.v1 import argo_service_pb2 as api

from argo_server.config import ServerConfig

from .conftest import ServerSubprocess, child_pids, one_step_job, wait_for


def allowed(pid: int | str, task: int | str | None = None) -> set[int]:
    """The CPUs a process (or one of its threads) may run on, from ``/proc``."""
    path = f"/proc/{pid}/status" if task is None else f"/proc/{pid}/task/{task}/status"
    text = Path(path).read_text()
    (spec,) = re.findall(r"^Cpus_allowed_list:\s*(\S+)$", text, re.M)
    cpus: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def test_a_pinned_server_runs_its_threads_on_its_cpus_and_its_relay_on_the_others(
        tmp_path: Path, amqp_url: str, amqp_prefix: str) -> None:
    mine = sorted(os.sched_getaffinity(0))
    pinned = mine[-1]
    settings = tmp_path / "server.yaml"
    settings.write_text(f"cpu_affinity: [{pinned}]\n")
    server = ServerSubprocess(f"sqlite:///{tmp_path / 'argo.db'}", amqp_url, amqp_prefix, (tmp_path / "data").as_uri(),
                              tmp_path / "server.log", "--config", str(settings))
    try:
        created = server.argo.CreateJob(api.CreateJobRequest(job=one_step_job()), timeout=30)
        assert created.job.name.startswith("jobs/")
        pid = server.process.pid
        threads = os.listdir(f"/proc/{pid}/task")
        assert len(threads) > 5  # gRPC's, the pool's, the supervised loops'
        assert {task: allowed(pid, task) for task in threads} == {task: {pinned} for task in threads}
        wait_for(lambda: child_pids(pid), message="relay process")
        (relay,) = child_pids(pid)
        assert b"argo_server.relay_process" in Path(f"/proc/{relay}/cmdline").read_bytes()
        # the child sets its CPUs once it has read its settings
        wait_for(lambda: allowed(relay) == set(mine), message=f"relay process on CPUs {mine}")
    finally:
        server.stop()


@pytest.mark.parametrize(("value", "message"), [
    ([1 << 20], r"cpu_affinity: CPUs \[1048576\] are not available to this process \(available: \["),
    (["0"], r"cpu_affinity: must be a list of CPU numbers, not \['0'\]"),
    ("0", r"cpu_affinity: must be a list of CPU numbers, not '0'"),
    ([True], r"cpu_affinity: must be a list of CPU numbers, not \[True\]"),
])
def test_a_bad_cpu_affinity_is_refused_with_its_name(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(cpu_affinity=value).resolved()  # type: ignore[arg-type]


def test_no_cpu_affinity_pins_nothing() -> None:
    assert ServerConfig().resolved().cpu_affinity == []
