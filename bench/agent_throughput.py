"""Agent throughput and accept latency: no-op one-step assignments through RabbitMQ and a local agent.

    python bench/agent_throughput.py [--steps 3000] [--rate 150] [--latency-steps 1500]

1. Burst: publishes ``--steps`` envelopes of ``/bin/true`` at once and consumes the agent's reports
   until every step SUCCEEDED; prints steps/s sustained (first publish to last SUCCEEDED).
2. Paced: publishes ``--latency-steps`` envelopes at ``--rate`` per second and prints the accept
   latency (publish → ACCEPTED report received) p50/p99, and the end-to-end latency to SUCCEEDED.

The agent runs in this process (its own threads), against the real broker, on a unique prefix.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pika

os.environ.setdefault("BALSAM_DISABLE_PLUGIN_AUTOLOAD", "1")

from argobalsam.argo.v1 import job_pb2  # noqa: E402
from argobalsam.balsam.v1 import status_pb2  # noqa: E402

from balsam_agent.agent import Agent  # noqa: E402
from balsam_agent.config import AgentConfig  # noqa: E402
from balsam_agent.testing import delete_prefix, make_assignment  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from machine import speed_line  # noqa: E402


class Collector:
    """Consumes reports on its own connection and records when each step reached each state."""

    def __init__(self, url: str, prefix: str) -> None:
        self.seen: dict[tuple[str, int], float] = {}
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = self.conn.channel()
        ch.exchange_declare(f"{prefix}.status", "topic", durable=True)
        ch.queue_declare(f"{prefix}.status", durable=True,
                         arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": f"{prefix}.dead"})
        ch.queue_bind(f"{prefix}.status", f"{prefix}.status", "#")
        ch.basic_qos(prefetch_count=2000)
        ch.basic_consume(f"{prefix}.status", self.on_message)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def on_message(self, ch, method, props, body) -> None:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        report = status_pb2.AgentReport.FromString(body)
        with self.cond:
            for update in report.status.updates:
                self.seen.setdefault((update.step_id, update.state), now)
            self.cond.notify_all()
        ch.basic_ack(method.delivery_tag, multiple=True)

    def run(self) -> None:
        while not self.stop.is_set():
            self.conn.process_data_events(time_limit=0.1)

    def wait_count(self, state: int, step_ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all((s, state) in self.seen for s in step_ids):
                if time.monotonic() > deadline:
                    return False
                self.cond.wait(0.2)
        return True


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-url", default=os.environ.get("ARGO_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--latency-steps", type=int, default=1500)
    parser.add_argument("--work-root", type=Path, default=None,
                        help="directory for the steps' working directories (default: in the agent's state "
                             "directory, on disk; e.g. /dev/shm to leave the disk's file creation out)")
    parser.add_argument("--report-linger", type=float, default=None,
                        help="the agent's report_linger in seconds (default: the agent's default); the latencies "
                             "here are times of arrival of the reports, which the linger delays under load")
    args = parser.parse_args()
    print(speed_line("machine before", str(args.work_root or tempfile.gettempdir())))
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    state = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    true = os.path.realpath(shutil.which("true") or "/bin/true")
    collector = Collector(args.amqp_url, prefix)
    agent = Agent(AgentConfig(site_name="local", amqp_url=args.amqp_url, amqp_prefix=prefix, state_dir=state,
                              load_entry_points=False,
                              **({} if args.report_linger is None else {"report_linger": args.report_linger}),
                              site={"allowed_exec_dir": os.path.dirname(true), "poll_interval": 0.05,
                                    **({"work_root": str(Path(tempfile.mkdtemp(dir=args.work_root)))}
                                       if args.work_root else {})}))
    agent.start()
    agent.wait_connected()
    conn = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel = conn.channel()
    props = pika.BasicProperties(content_type="application/x-protobuf", delivery_mode=2,
                                 type="argobalsam.balsam.v1.AssignmentEnvelope")
    try:
        bodies = [make_assignment(job_id=f"b{i}", site="local", executable=true).SerializeToString()
                  for i in range(args.steps)]
        steps = [f"b{i}/0" for i in range(args.steps)]
        start = time.perf_counter()
        for body in bodies:
            channel.basic_publish(f"{prefix}.assign", "local", body, properties=props)
        published = time.perf_counter()
        if not collector.wait_count(job_pb2.STEP_STATE_SUCCEEDED, steps, timeout=600):
            print("burst did not finish", file=sys.stderr)
            return 1
        end = max(collector.seen[(s, job_pb2.STEP_STATE_SUCCEEDED)] for s in steps)
        print(f"burst: {args.steps} steps in {end - start:.2f}s = {args.steps / (end - start):.0f} steps/s "
              f"(publishing took {published - start:.2f}s); poll calls: {agent.poll_calls}")

        sent: dict[str, float] = {}
        paced = [f"l{i}/0" for i in range(args.latency_steps)]
        interval = 1.0 / args.rate
        next_at = time.perf_counter()
        for i, step_id in enumerate(paced):
            body = make_assignment(job_id=f"l{i}", site="local", executable=true).SerializeToString()
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)
            sent[step_id] = time.perf_counter()
            channel.basic_publish(f"{prefix}.assign", "local", body, properties=props)
            next_at += interval
            if i % 50 == 0:
                conn.process_data_events(time_limit=0)
        if not collector.wait_count(job_pb2.STEP_STATE_SUCCEEDED, paced, timeout=600):
            print("paced run did not finish", file=sys.stderr)
            return 1
        accept = [1000 * (collector.seen[(s, job_pb2.STEP_STATE_ACCEPTED)] - sent[s]) for s in paced]
        done = [1000 * (collector.seen[(s, job_pb2.STEP_STATE_SUCCEEDED)] - sent[s]) for s in paced]
        print(f"paced at {args.rate:.0f}/s: accept latency p50 {statistics.median(accept):.1f} ms, "
              f"p99 {percentile(accept, 0.99):.1f} ms; publish→SUCCEEDED p50 {statistics.median(done):.1f} ms, "
              f"p99 {percentile(done, 0.99):.1f} ms")
    finally:
        agent.stop()
        collector.stop.set()
        conn.close()
        delete_prefix(args.amqp_url, prefix, [f"{prefix}.assign.local", f"{prefix}.status"])
        shutil.rmtree(state, ignore_errors=True)
        work_root = agent.site.work_root
        if args.work_root and work_root:
            shutil.rmtree(work_root, ignore_errors=True)
    print(speed_line("machine after"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
