"""Benchmark: durable CreateJob with 8 concurrent callers vs. a trivial RPC (health Check) on the same
server in the same run, and BatchCreateJobs throughput.

    .venv/bin/python bench/server_create.py [--database-url URL] [--seconds 5] [--relay process|thread]
        [--cpu-affinity 1]

Targets (issue 2): CreateJob rate >= 0.5 x health Check rate; BatchCreateJobs >= 10,000 jobs/s. The Check
and the CreateJob are measured in alternating half-second slices, ``--seconds`` each.
The server runs in a child process (SQLite in a temporary directory by default); its relay publishes
to RabbitMQ under a throw-away prefix whose queues are deleted at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
from argobalsam.argo.v1 import argo_service_pb2 as api
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argo_server.config import RELAY_MODES

sys.path.insert(0, str(Path(__file__).parent))
from machine import speed_line  # noqa: E402
from server_common import ServerChild, delete_broker_objects  # noqa: E402


def rate(callers: int, seconds: float, call: Callable[[], None]) -> float:
    """Calls per second of ``callers`` threads calling ``call`` for ``seconds``."""
    counts = [0] * callers
    stop = threading.Event()

    def work(slot: int) -> None:
        while not stop.is_set():
            call()
            counts[slot] += 1

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def interleaved_rates(callers: int, seconds: float, calls: dict[str, Callable[[], None]],
                      slice_seconds: float = 0.5) -> dict[str, float]:
    """Calls per second of each of ``calls``, measured in alternating slices of ``slice_seconds`` for
    ``seconds`` each: this machine's speed drifts by +-30 % within minutes, and two figures of the same
    minutes make a steadier ratio than two back-to-back runs."""
    slices = max(1, round(seconds / slice_seconds))
    totals = dict.fromkeys(calls, 0.0)
    for _ in range(slices):
        for name, call in calls.items():
            totals[name] += rate(callers, seconds / slices, call)
    return {name: total / slices for name, total in totals.items()}


def job(number: int) -> job_pb2.Job:
    """A one-step job like a user's."""
    return job_pb2.Job(owner="bench", group_identifier="bench", steps=[job_pb2.Step(
        target_site="local", executable="/bin/true", executable_args=[str(number)], nodes=1,
        input_files=["in.dat"], output_files=["out.dat"])])


def main() -> None:
    """Runs the benchmark and prints its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--relay", choices=RELAY_MODES, default="process",
                        help="where the server runs its outbox relay (the server's 'relay' setting)")
    parser.add_argument("--cpu-affinity", default="", metavar="CPUS",
                        help="comma-separated CPUs to pin the server's threads to (its 'cpu_affinity' setting)")
    args = parser.parse_args()
    print(speed_line("machine before"))
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as state:
        url = args.database_url or f"sqlite:///{state}/argo.db"
        settings = Path(state, "server.yaml")
        cpus = [int(cpu) for cpu in args.cpu_affinity.split(",") if cpu]
        settings.write_text(f"cpu_affinity: {cpus}\n")
        server = ServerChild("--database-url", url, "--amqp-prefix", prefix, "--data-root",
                             Path(state, "data").as_uri(), "--relay", args.relay, "--config", str(settings))
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
            argo = argo_service_pb2_grpc.ArgoServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            check = health_pb2.HealthCheckRequest()
            counter = iter(range(10**9))
            rate(args.callers, 1.0, lambda: health.Check(check))  # warm up
            rates = interleaved_rates(args.callers, args.seconds, {
                "check": lambda: health.Check(check),
                "create": lambda: argo.CreateJob(api.CreateJobRequest(job=job(next(counter)),
                                                                      request_id=uuid.uuid4().hex))})
            checks, creates = rates["check"], rates["create"]
            print(f"database: {url.split(':')[0]}  callers: {args.callers}  relay: {args.relay}  "
                  f"server's CPUs: {args.cpu_affinity or 'any'}")
            print(f"health Check:  {checks:8.0f} calls/s")
            print(f"CreateJob:     {creates:8.0f} calls/s   ratio {creates / checks:.2f} (target >= 0.5)")
            batch_size, batches = 1000, 20
            # built before the clock starts: the figure is the server's batch path, not the client's
            # protobuf construction (the client waits for each reply, so its work would add up)
            requests = [api.BatchCreateJobsRequest(requests=[
                api.CreateJobRequest(job=job(number * batch_size + i)) for i in range(batch_size)])
                for number in range(batches)]
            started = time.perf_counter()
            for request in requests:
                argo.BatchCreateJobs(request)
            elapsed = time.perf_counter() - started
            print(f"BatchCreateJobs: {batch_size * batches / elapsed:8.0f} jobs/s "
                  f"({batches} batches of {batch_size}, target >= 10000)")
            channel.close()
        finally:
            server.stop()
            delete_broker_objects(prefix)
    print(speed_line("machine after"))


if __name__ == "__main__":
    main()
