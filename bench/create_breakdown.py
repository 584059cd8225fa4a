"""Benchmark: where a durable CreateJob's time goes, against a health Check on the same server.

    .venv/bin/python bench/create_breakdown.py [--seconds 3] [--rounds 2] [--callers 8]

Serves CreateJob from a bare synchronous gRPC server (16 worker threads, as ``argo-server``'s, and no
interceptors, relay or broker) in a child process, in three modes, each measured against a health Check
on the same server (alternating half-second slices, ``--seconds`` each):

* ``noop``: replies with a Job prepared once at start (the cost of the RPC's shape: its request and
  reply messages through gRPC);
* ``prepare``: validates the request and builds every row of the job and the Job it returns
  (``validation.validate_create`` and ``JobStore._prepare``) but writes nothing;
* ``durable``: validates and creates the job as the server does (``JobStore.create_job``: group commit
  with its outbox row, SQLite on ``/dev/shm``).

Issue 2 asks for a durable CreateJob at >= 0.5x the Check's rate (``bench/server_create.py`` measures
the whole server). The ``prepare`` row bounds what any database or commit scheme could reach in this
server: it writes nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from argobalsam.argo.v1 import argo_service_pb2 as api
from argobalsam.argo.v1 import argo_service_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).parent))
from machine import speed_line  # noqa: E402
from server_create import interleaved_rates, job, rate  # noqa: E402

MODES = ("noop", "prepare", "durable")


def serve(mode: str, state: str, ports: Any) -> None:
    """The child: a gRPC server whose CreateJob does ``mode``'s work; puts its port on ``ports``."""
    from argo_server import schema, validation
    from argo_server.db import Database
    from argo_server.ids import now_micros
    from argo_server.store import JobStore

    db = Database(f"sqlite:///{state}/argo.db")
    schema.upgrade(db.engine)
    store = JobStore(db, Path(state, "data").as_uri())
    prepared = api.CreateJobResponse(job=store._prepare(api.CreateJobRequest(job=job(0)), now_micros()).message)

    class Service(argo_service_pb2_grpc.ArgoServiceServicer):
        def CreateJob(self, request: api.CreateJobRequest, context: grpc.ServicerContext  # noqa: N802
                      ) -> api.CreateJobResponse:
            if mode == "noop":
                return prepared
            if validation.validate_create(request):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid")
            if mode == "prepare":
                return api.CreateJobResponse(job=store._prepare(request, now_micros()).message)
            return api.CreateJobResponse(job=store.create_job(request))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    checks = health.HealthServicer(experimental_non_blocking=True)
    checks.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    argo_service_pb2_grpc.add_ArgoServiceServicer_to_server(Service(), server)
    ports.put(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    server.wait_for_termination()


def measure(mode: str, callers: int, seconds: float) -> tuple[float, float]:
    """(Check calls/s, CreateJob calls/s) of a fresh server in ``mode``."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as state:
        ports = context.Queue()
        child = context.Process(target=serve, args=(mode, state, ports), daemon=True)
        child.start()
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{ports.get(timeout=60)}")
            check_stub, argo = health_pb2_grpc.HealthStub(channel), argo_service_pb2_grpc.ArgoServiceStub(channel)
            check = health_pb2.HealthCheckRequest()
            counter = iter(range(1, 10**9))
            rate(callers, 1.0, lambda: check_stub.Check(check))  # warm up
            rates = interleaved_rates(callers, seconds, {
                "check": lambda: check_stub.Check(check),
                "create": lambda: argo.CreateJob(api.CreateJobRequest(job=job(next(counter)),
                                                                      request_id=uuid.uuid4().hex))})
            channel.close()
            return rates["check"], rates["create"]
        finally:
            child.terminate()
            child.join()


def main() -> None:
    """Runs the benchmark and prints its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--callers", type=int, default=8)
    args = parser.parse_args()
    print(speed_line("machine before"))
    print(f"{'mode':8}  {'health Check':>13}  {'CreateJob':>10}  ratio   ({args.callers} callers)")
    for _ in range(args.rounds):
        for mode in MODES:
            checks, creates = measure(mode, args.callers, args.seconds)
            print(f"{mode:8}  {checks:11.0f}/s  {creates:8.0f}/s  {creates / checks:5.2f}", flush=True)
    print(speed_line("machine after"))


if __name__ == "__main__":
    main()
