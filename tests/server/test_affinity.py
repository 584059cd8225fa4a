"""``cpu_affinity``: a server pins every thread of its process to the CPUs named; its relay process keeps
the CPUs the server had (it does not share the server's interpreter lock)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from argobalsam.argo.v1 import argo_service_pb2 as api
from argobalsam.argo.v1 import argo_service_pb2_grpc

from argo_server.config import ServerConfig

from .conftest import one_step_job


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


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_a_pinned_server_runs_its_threads_on_its_cpus_and_its_relay_on_the_others(
        tmp_path: Path, amqp_url: str, amqp_prefix: str) -> None:
    mine = sorted(os.sched_getaffinity(0))
    pinned = mine[-1]
    settings = tmp_path / "server.yaml"
    settings.write_text(f"cpu_affinity: [{pinned}]\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "argo_server.cli", "--listen", "127.0.0.1:0", "--config", str(settings),
         "--database-url", f"sqlite:///{tmp_path / 'argo.db'}", "--amqp-url", amqp_url,
         "--amqp-prefix", amqp_prefix, "--data-root", (tmp_path / "data").as_uri()],
        stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        port = 0
        for line in server.stderr:
            match = re.search(r"listening on [\d.]+:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "the server did not start"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            created = argo_service_pb2_grpc.ArgoServiceStub(channel).CreateJob(
                api.CreateJobRequest(job=one_step_job()), timeout=30)
        assert created.job.name.startswith("jobs/")
        threads = os.listdir(f"/proc/{server.pid}/task")
        assert len(threads) > 5  # gRPC's, the pool's, the supervised loops'
        assert {task: allowed(server.pid, task) for task in threads} == {task: {pinned} for task in threads}
        deadline = time.monotonic() + 15
        relays: list[int] = []
        while not relays and time.monotonic() < deadline:
            relays = [pid for pid in children(server.pid)
                      if b"argo_server.relay_process" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            time.sleep(0.05)
        assert relays, "no relay process"
        while allowed(relays[0]) != set(mine) and time.monotonic() < deadline:
            time.sleep(0.05)  # the child sets its CPUs once it has read its settings
        assert allowed(relays[0]) == set(mine)
    finally:
        server.terminate()
        server.wait(30)


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
