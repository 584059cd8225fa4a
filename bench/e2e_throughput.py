"""End-to-end throughput and dispatch latency: server + RabbitMQ + local agent, one-step no-op jobs.

    .venv/bin/python bench/e2e_throughput.py [--jobs 3000] [--latency-seconds 10]

1. Throughput: BatchCreateJobs of N one-step jobs running ``true`` on the ``local`` site; the time from
   the first create call to the last step's SUCCEEDED report gives steps/s sustained.
2. Dispatch latency at half that load: CreateJob calls paced at 0.5 × the measured rate; for each job,
   the time from the CreateJob call to the agent's ACCEPTED report (the agent's own timestamp in the
   StatusUpdate, same machine clock). p50/p99.

The benchmark reads the agents' reports through its own queue bound to the status exchange (a copy of
every report; the server consumes the real queue).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import pika
from argo_client.local_stack import DEFAULT_AMQP_URL, LocalStack
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2
from argobalsam.balsam.v1 import status_pb2


class StatusTap:
    """Copies every AgentReport into a private queue and records per-step times of chosen states."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self.accepted: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self.lock = threading.Lock()
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(f"{prefix}.status", "topic", durable=True)
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, f"{prefix}.status", "status.#")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for _method, _props, body in self.channel.consume(self.queue, auto_ack=True):
            report = status_pb2.AgentReport.FromString(body)
            with self.lock:
                for u in report.status.updates:
                    t = u.time.ToDatetime().timestamp()
                    if u.state == job_pb2.STEP_STATE_ACCEPTED:
                        self.accepted.setdefault(u.step_id, t)
                    elif u.state == job_pb2.STEP_STATE_SUCCEEDED:
                        self.succeeded.setdefault(u.step_id, t)
                    elif u.state in (job_pb2.STEP_STATE_FAILED, job_pb2.STEP_STATE_REJECTED):
                        self.failed[u.step_id] = u.reason

    def wait(self, step_ids: list[str], table: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                done = getattr(self, table)
                missing = [s for s in step_ids if s not in done and s not in self.failed]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} steps not {table} after {timeout}s")
            time.sleep(0.01)


def job(program: Path) -> job_pb2.Job:
    return job_pb2.Job(owner="bench", steps=[job_pb2.Step(
        target_site="local", executable=program.name, nodes=1, processes_per_node=1, wall_minutes=5)])


def step_id(created: job_pb2.Job) -> str:
    return created.name.removeprefix("jobs/") + "/0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="argo-bench-"))
    site_bin = state / "site-bin"
    site_bin.mkdir()
    program = site_bin / "noop"
    shutil.copy("/bin/true", program)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with LocalStack(state, amqp_url=args.amqp_url, amqp_prefix=prefix, sites=["local"]) as stack:
        stack.start_server()
        tap = StatusTap(args.amqp_url, prefix)
        stack.start_agent("local", site_options={"allowed_exec_dir": str(site_bin),
                                                 "work_root": str(state / "work")})
        channel = grpc.insecure_channel(stack.address)
        stub = argo_service_pb2_grpc.ArgoServiceStub(channel)
        # warm-up: the agent is up and consuming
        warm = stub.CreateJob(svc.CreateJobRequest(job=job(program))).job
        tap.wait([step_id(warm)], "succeeded", 60)

        t0 = time.time()
        ids: list[str] = []
        for start in range(0, args.jobs, args.batch):
            n = min(args.batch, args.jobs - start)
            reply = stub.BatchCreateJobs(svc.BatchCreateJobsRequest(
                requests=[svc.CreateJobRequest(job=job(program)) for _ in range(n)]))
            ids += [step_id(j) for j in reply.jobs]
        t_created = time.time()
        tap.wait(ids, "succeeded", 600)
        t_end = max(tap.succeeded[s] for s in ids if s in tap.succeeded)
        rate = len(ids) / (t_end - t0)
        print(f"throughput: {len(ids)} one-step no-op jobs in {t_end - t0:.2f} s = {rate:.0f} steps/s "
              f"(creation took {t_created - t0:.2f} s; failed: {len(tap.failed)})")

        target = rate / 2
        interval = 1.0 / target
        sent: dict[str, float] = {}
        t_next = time.time()
        stop_at = t_next + args.latency_seconds
        while time.time() < stop_at:
            now = time.time()
            if now < t_next:
                time.sleep(t_next - now)
            before = time.time()
            created = stub.CreateJob(svc.CreateJobRequest(job=job(program))).job
            sent[step_id(created)] = before
            t_next += interval
        tap.wait(list(sent), "accepted", 120)
        lat = sorted((tap.accepted[s] - t) * 1000 for s, t in sent.items() if s in tap.accepted)
        achieved = len(sent) / args.latency_seconds
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"dispatch latency (CreateJob -> ACCEPTED at the agent) at {achieved:.0f} jobs/s "
              f"(half of the measured rate): p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms, "
              f"n={len(lat)}")
        channel.close()
    shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
