"""Benchmark: ListJobs first page with a state + site filter over 1,000,000 jobs, and server memory.

    .venv/bin/python bench/server_list.py [--jobs 1000000] [--backend sqlite|postgresql|both]

Target (issue 2): p99 < 20 ms on SQLite and PostgreSQL; the server's memory does not grow with the
number of jobs (RSS of a server on an empty database vs. on the full one, after the same queries).
The jobs are bulk-inserted directly (not through the API) so that generating them takes seconds.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import sqlalchemy as sa
from argobalsam.argo.v1 import argo_service_pb2 as api
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2

from argo_server.db import make_engine
from argo_server.schema import upgrade

sys.path.insert(0, str(Path(__file__).parent))
from server_common import ServerChild, delete_broker_objects  # noqa: E402

POSTGRES_URL = os.environ.get("ARGO_TEST_POSTGRES_URL",
                              "postgresql+psycopg2://postgres:postgres@127.0.0.1:5432/argo_test")
SITES = ["local", "mira", "vesta", "tukey", "edison", "argo_cluster"]
STATES = [job_pb2.JOB_STATE_SUCCEEDED] * 12 + [job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_RUNNING,
                                               job_pb2.JOB_STATE_PENDING, job_pb2.JOB_STATE_CANCELLED]
JOB_SPEC = job_pb2.Job(owner="bench", group_identifier="g").SerializeToString()
STEP_SPEC = job_pb2.Step(executable="/bin/true", input_files=["in"], output_files=["out"]).SerializeToString()


def rows(count: int, seed: int = 7):
    """Yields (job, step, job_site) value tuples of ``count`` jobs, oldest first."""
    rng = random.Random(seed)
    start_ms = int(time.time() * 1000) - count
    for number in range(count):
        millis = start_ms + number
        job_id = f"{millis:012x}{number:012x}"
        state = rng.choice(STATES)
        site = rng.choice(SITES)
        micros = millis * 1000
        yield ((job_id, "bench", "g", "", JOB_SPEC, 1, state, "", 0, micros, micros, None, f"file:///d/{job_id}/",
                None, None),
               (job_id, 0, site, STEP_SPEC, 11 if state == job_pb2.JOB_STATE_SUCCEEDED else 8, "", 0, 1, 0, 1, "",
                None, micros, None, None, micros),
               (job_id, site, state))


JOB_COLUMNS = ("id", "owner", "group_identifier", "email_address", "spec", "step_count", "state", "state_reason",
               "current_step", "create_time", "update_time", "end_time", "data_url", "request_id", "request_digest")
STEP_COLUMNS = ("job_id", "index", "target_site", "spec", "state", "state_reason", "failed_phase", "attempt",
                "report_sequence", "envelope_sequence", "scheduler_id", "exit_code", "dispatch_time", "start_time",
                "end_time", "update_time")
SITE_COLUMNS = ("job_id", "site", "state")


def fill_sqlite(url: str, count: int) -> None:
    """Bulk insert with sqlite3 executemany in one transaction."""
    engine = make_engine(url)
    upgrade(engine)
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("BEGIN")
    for job_rows in _chunks(rows(count), 50_000):
        jobs, steps, sites = zip(*job_rows, strict=True)
        for table, columns, values in (("jobs", JOB_COLUMNS, jobs), ("steps", STEP_COLUMNS, steps),
                                       ("job_sites", SITE_COLUMNS, sites)):
            quoted = ", ".join(f'"{column}"' for column in columns)
            cursor.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({','.join('?' * len(columns))})", values)
    cursor.execute("COMMIT")
    cursor.execute("ANALYZE")
    raw.close()
    engine.dispose()


def _copy_text(values: tuple) -> str:
    out = []
    for value in values:
        if value is None:
            out.append("\\N")
        elif isinstance(value, bytes):
            out.append("\\\\x" + value.hex())
        else:
            out.append(str(value))
    return "\t".join(out)


def fill_postgresql(url: str, count: int) -> None:
    """Bulk insert with COPY."""
    engine = make_engine(url)
    upgrade(engine)
    raw = engine.raw_connection()
    cursor = raw.cursor()
    for job_rows in _chunks(rows(count), 100_000):
        jobs, steps, sites = zip(*job_rows, strict=True)
        for table, columns, values in (("jobs", JOB_COLUMNS, jobs), ("steps", STEP_COLUMNS, steps),
                                       ("job_sites", SITE_COLUMNS, sites)):
            buffer = io.StringIO("\n".join(_copy_text(v) for v in values) + "\n")
            quoted = ", ".join(f'"{column}"' for column in columns)
            cursor.copy_expert(f"COPY {table} ({quoted}) FROM STDIN", buffer)
    raw.commit()
    cursor.execute("ANALYZE")
    raw.commit()
    raw.close()
    engine.dispose()


def _chunks(iterable, size: int):  # type: ignore[no-untyped-def]
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def measure(server: ServerChild, calls: int) -> tuple[float, float, int]:
    """p50 and p99 (ms) of the filtered first page, and the page's length."""
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    argo = argo_service_pb2_grpc.ArgoServiceStub(channel)
    request = api.ListJobsRequest(states=[job_pb2.JOB_STATE_RUNNING], site="mira", page_size=50)
    for _ in range(50):
        argo.ListJobs(request)
    latencies = []
    length = 0
    for _ in range(calls):
        started = time.perf_counter()
        length = len(argo.ListJobs(request).jobs)
        latencies.append((time.perf_counter() - started) * 1000)
    channel.close()
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1], length


def run(backend: str, count: int, calls: int, state: str) -> None:
    """Fills a database of ``backend`` and measures a server on it (and one on an empty database)."""
    prefix = f"benchl{uuid.uuid4().hex[:6]}"
    schema = f"bench_list_{uuid.uuid4().hex[:8]}"
    admin = None
    if backend == "sqlite":
        full_url, empty_url = f"sqlite:///{state}/full.db", f"sqlite:///{state}/empty.db"
        fill = fill_sqlite
    else:
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}_e")
        full_url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        empty_url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}_e"
        fill = fill_postgresql
    try:
        started = time.perf_counter()
        fill(full_url, count)
        print(f"[{backend}] generated {count} jobs in {time.perf_counter() - started:.1f}s")
        results = {}
        for label, url in (("empty", empty_url), ("full", full_url)):
            server = ServerChild("--database-url", url, "--amqp-prefix", prefix, "--data-root", "file:///d")
            try:
                rss_start = server.rss_mib()
                p50, p99, length = measure(server, calls)
                results[label] = (p50, p99, length, rss_start, server.rss_mib())
            finally:
                server.stop()
        p50, p99, length, _, _ = results["full"]
        print(f"[{backend}] ListJobs(state=RUNNING, site=mira, page_size=50) over {count} jobs: "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms ({length} jobs per page, {calls} calls; target p99 < 20 ms)")
        for label in ("empty", "full"):
            _, _, _, rss_start, rss_end = results[label]
            print(f"[{backend}] server RSS on {label:5} database: {rss_start:.0f} MiB at start, "
                  f"{rss_end:.0f} MiB after {calls} queries")
    finally:
        delete_broker_objects(prefix)
        if admin is not None:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
                connection.exec_driver_sql(f"DROP SCHEMA {schema}_e CASCADE")
            admin.dispose()


def main() -> None:
    """Runs the benchmark and prints its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory() as state:
        for backend in backends:
            run(backend, args.jobs, args.calls, state)


if __name__ == "__main__":
    main()
