"""End-to-end throughput and dispatch latency: server + RabbitMQ + local agent, one-step no-op jobs.

    .venv/bin/python bench/e2e_throughput.py [--jobs 3000] [--latency-seconds 10] [--relay process|thread]
        [--work-root DIR] [--report-linger SECONDS] [--split]

1. Throughput: BatchCreateJobs of N one-step jobs running ``true`` on the ``local`` site; the time from
   the first create call to the last step's SUCCEEDED report gives steps/s sustained.
2. Dispatch latency at half the target load: CreateJob calls paced at 150/s (``--latency-rate``; 0 paces
   them at half the measured rate instead, a load that moves with the machine's speed and the code's).
   Each call starts at its slot of a fixed schedule, from a few caller threads, so a slow call does not
   hold back the next ones. For each job, the time from the CreateJob call to the agent's ACCEPTED
   report (the agent's own timestamp in the StatusUpdate, same machine clock). p50/p99.

The benchmark reads the agents' reports through its own queue bound to the status exchange (a copy of
every report; the server consumes the real queue). It prints the CPU time per job of every process
(the local scheduler's spawner with the steps it ran counted apart from the agent). The steps' working
directories are on disk by default, where creating a file or directory can cost the kernel hundreds of
microseconds (a step needs six; on this machine's journal-less ext4 the cost grows with the files
deleted in the minutes before, see BENCHMARKS.md); ``--work-root /dev/shm`` measures without that.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
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
from argobalsam.balsam.v1 import assignment_pb2, status_pb2

from argo_server.config import RELAY_MODES

sys.path.insert(0, str(Path(__file__).parent))
from machine import speed_line  # noqa: E402


class StatusTap:
    """Copies every AgentReport into a private queue and records per-step times of chosen states."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self.accepted: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        #: Status messages and the updates they carried (the agent batches its reports).
        self.messages = 0
        self.updates = 0
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
                self.messages += 1
                self.updates += len(report.status.updates)
                for u in report.status.updates:
                    t = u.time.ToDatetime().timestamp()
                    if u.state == job_pb2.STEP_STATE_ACCEPTED:
                        self.accepted.setdefault(u.step_id, t)
                    elif u.state == job_pb2.STEP_STATE_SUCCEEDED:
                        self.succeeded.setdefault(u.step_id, t)
                    elif u.state in (job_pb2.STEP_STATE_FAILED, job_pb2.STEP_STATE_REJECTED):
                        self.failed[u.step_id] = u.reason

    def counts(self) -> tuple[int, int]:
        """(messages, updates) since the last call."""
        with self.lock:
            counts = self.messages, self.updates
            self.messages = self.updates = 0
        return counts

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


class AssignTap:
    """Copies every assignment envelope (a private queue bound to the assign exchange) and records when
    each step's envelope reached the broker, to split the dispatch latency into server and agent parts."""

    def __init__(self, amqp_url: str, prefix: str, site: str) -> None:
        self.published: dict[str, float] = {}
        self.lock = threading.Lock()
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.channel.exchange_declare(f"{prefix}.assign", "direct", durable=True)
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, f"{prefix}.assign", site)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for _method, props, body in self.channel.consume(self.queue, auto_ack=True):
            if props.type == assignment_pb2.AssignmentBatch.DESCRIPTOR.full_name:
                envelopes = list(assignment_pb2.AssignmentBatch.FromString(body).envelopes)
            else:
                envelopes = [assignment_pb2.AssignmentEnvelope.FromString(body)]
            now = time.time()
            with self.lock:
                for envelope in envelopes:
                    self.published.setdefault(envelope.step_id, now)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def child_running(parent: int, module: bytes) -> int | None:
    """The child process of ``parent`` that runs ``python -m <module>``, if there is one."""
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if module in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                    return int(pid)
            except OSError:
                continue
    return None


class CpuMeter:
    """CPU used by the server, its relay process, the agent, the local scheduler's spawner with the steps
    it ran, the broker and this benchmark."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.server is not None
        self.pids = {"server": stack.server.pid, "agent": stack.agents["local"].pid, "bench": os.getpid()}
        relay = child_running(stack.server.pid, b"argo_server.relay_process")
        if relay is not None:
            self.pids["relay"] = relay
        spawner = child_running(stack.agents["local"].pid, b"balsam_agent.builtin.local_spawner")
        if spawner is not None:
            self.pids["spawner+steps"] = spawner
        # The broker is the process listening on the AMQP port (when `ss` may show it).
        port = pika.URLParameters(stack.amqp_url).port
        listing = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
        match = re.search(r"pid=(\d+)", listing)
        if match:
            self.pids["broker"] = int(match.group(1))
        self.start = self.sample()

    def sample(self) -> dict[str, float]:
        """Current CPU seconds per process, and the wall clock."""
        return {"wall": time.monotonic(), **{name: cpu_seconds(pid) for name, pid in self.pids.items()}}

    def report(self, units: int) -> str:
        """CPU share of each process since the last report, and CPU time per unit of work."""
        now = self.sample()
        wall = now["wall"] - self.start["wall"]
        parts = [f"{name} {100 * (now[name] - self.start[name]) / wall:.0f}% "
                 f"({1e6 * (now[name] - self.start[name]) / max(units, 1):.0f} us/job)"
                 for name in self.pids]
        self.start = now
        return "  CPU: " + ", ".join(parts)


def reports_line(tap: StatusTap, jobs: int) -> str:
    """Status messages per job since the last count (each message is one broker write, one server
    transaction)."""
    messages, updates = tap.counts()
    return (f"  status reports: {messages / max(jobs, 1):.2f} messages per job, "
            f"{updates / max(messages, 1):.1f} updates per message")


def percentiles(values: list[float]) -> str:
    """``p50 X ms, p99 Y ms`` of values in milliseconds."""
    values = sorted(values)
    if not values:
        return "no samples"
    return (f"p50 {statistics.median(values):.1f} ms, p99 {values[min(len(values) - 1, int(len(values) * 0.99))]:.1f}"
            f" ms, max {values[-1]:.1f} ms")


def job(program: Path) -> job_pb2.Job:
    return job_pb2.Job(owner="bench", steps=[job_pb2.Step(
        target_site="local", executable=program.name, nodes=1, processes_per_node=1, wall_minutes=5)])


def step_id(created: job_pb2.Job) -> str:
    return created.name.removeprefix("jobs/") + "/0"


def paced_creates(stub: argo_service_pb2_grpc.ArgoServiceStub, program: Path, rate: float, seconds: float,
                  callers: int) -> tuple[dict[str, float], float, list[float]]:
    """CreateJob calls at ``rate`` per second for ``seconds``, each started at its own slot of a fixed
    schedule by one of ``callers`` threads (so that one slow call does not delay the next ones).
    Returns {step id: call start (epoch seconds)} and the achieved rate."""
    interval = 1.0 / rate
    slots = iter(range(int(rate * seconds)))
    lock = threading.Lock()
    sent: dict[str, float] = {}
    calls: list[float] = []
    start = time.time() + 0.05

    def caller() -> None:
        while True:
            with lock:
                slot = next(slots, None)
            if slot is None:
                return
            delay = start + slot * interval - time.time()
            if delay > 0:
                time.sleep(delay)
            before = time.time()
            created = stub.CreateJob(svc.CreateJobRequest(job=job(program))).job
            after = time.time()
            with lock:
                sent[step_id(created)] = before
                calls.append((after - before) * 1000)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(sent.values()) - start
    return sent, len(sent) / elapsed, calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--latency-rate", type=float, default=150.0,
                        help="jobs/s of the latency phase (default: 150, half of the 300 steps/s target; "
                             "0: half of the measured throughput)")
    parser.add_argument("--latency-callers", type=int, default=4)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument("--relay", choices=RELAY_MODES, default="process",
                        help="where the server runs its outbox relay (the server's 'relay' setting)")
    parser.add_argument("--split", action="store_true",
                        help="also split the dispatch latency at the broker (a second copy of every envelope, "
                             "read by this benchmark: it loads the broker and the machine it measures)")
    parser.add_argument("--work-root", type=Path, default=None,
                        help="directory for the steps' working directories (default: in the benchmark's state "
                             "directory, on disk; e.g. /dev/shm to leave the disk's file creation out)")
    parser.add_argument("--report-linger", type=float, default=None,
                        help="the agent's report_linger setting in seconds (default: the agent's default)")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="argo-bench-"))
    print(speed_line("machine before", str(args.work_root or state)))

    site_bin = state / "site-bin"
    site_bin.mkdir()
    program = site_bin / "noop"
    shutil.copy("/bin/true", program)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with LocalStack(state, amqp_url=args.amqp_url, amqp_prefix=prefix, sites=["local"],
                    server_args=["--relay", args.relay], delete_topology=True) as stack:
        stack.start_server()
        tap = StatusTap(args.amqp_url, prefix)
        assign_tap = AssignTap(args.amqp_url, prefix, "local") if args.split else None
        work_root = Path(tempfile.mkdtemp(dir=args.work_root)) if args.work_root else state / "work"
        config = stack.write_agent_config("local", site_options={"allowed_exec_dir": str(site_bin),
                                                                 "work_root": str(work_root)})
        if args.report_linger is not None:
            with config.open("a") as handle:
                handle.write(f"report_linger: {args.report_linger}\n")
        stack.start_agent("local")
        channel = grpc.insecure_channel(stack.address)
        stub = argo_service_pb2_grpc.ArgoServiceStub(channel)
        # warm-up: the agent is up and consuming
        warm = stub.CreateJob(svc.CreateJobRequest(job=job(program))).job
        tap.wait([step_id(warm)], "succeeded", 60)

        meter = CpuMeter(stack)
        tap.counts()
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
        print(meter.report(len(ids)))
        print(reports_line(tap, len(ids)))

        target = rate / 2 if args.latency_rate <= 0 else args.latency_rate
        meter.report(1)
        tap.counts()
        sent, achieved, calls = paced_creates(stub, program, target, args.latency_seconds, args.latency_callers)
        tap.wait(list(sent), "accepted", 120)
        cpu = meter.report(len(sent))
        tap.wait(list(sent), "succeeded", 120)
        lat = sorted((tap.accepted[s] - t) * 1000 for s, t in sent.items() if s in tap.accepted)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"dispatch latency (CreateJob -> ACCEPTED at the agent) at {achieved:.0f} jobs/s "
              f"(asked {target:.0f}/s{'' if args.latency_rate > 0 else ' = half of the measured rate'}): "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"max {lat[-1]:.1f} ms, n={len(lat)}")
        print(cpu)
        print(reports_line(tap, len(sent)))
        if assign_tap is None:
            published: dict[str, float] = {}
        else:
            with assign_tap.lock:
                published = dict(assign_tap.published)
        print("  the CreateJob call itself: " + percentiles(calls))
        if published:
            print("  of which CreateJob -> envelope at the broker: "
                  + percentiles([(published[s] - t) * 1000 for s, t in sent.items() if s in published]))
            print("  and envelope at the broker -> ACCEPTED: "
                  + percentiles([(tap.accepted[s] - published[s]) * 1000 for s in sent
                                 if s in published and s in tap.accepted]))
        channel.close()
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(work_root, ignore_errors=True)
    print(speed_line("machine after"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
