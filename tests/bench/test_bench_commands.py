"""The commands BENCHMARKS.md records still run and print their figures (tiny sizes: a smoke test of the
benchmarks, never a timing threshold)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def run_bench(*args: str, timeout: float = 300) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_machine_speed_line() -> None:
    out = run_bench("bench/machine.py")
    match = re.fullmatch(rf"machine: python (3\.\d+\.\d+\S*) \((/.+)\) ({NUMBER}) ns/loop, "
                         rf"/bin/true launch ({NUMBER}) ms\n", out)
    assert match, out
    assert match.group(1) == sys.version.split()[0] and Path(match.group(2)) == Path(sys.executable).resolve()
    assert float(match.group(3)) > 0 and float(match.group(4)) > 0


def test_e2e_throughput_prints_its_figures(amqp_url: str) -> None:
    out = run_bench("bench/e2e_throughput.py", "--jobs", "40", "--batch", "20", "--latency-seconds", "1",
                    "--latency-rate", "20", "--amqp-url", amqp_url)
    assert re.search(rf"^throughput: 40 one-step no-op jobs in {NUMBER} s = {NUMBER} steps/s .*failed: 0\)$",
                     out, re.M), out
    latency = re.search(rf"^dispatch latency .* at {NUMBER} jobs/s \(asked 20/s\): p50 ({NUMBER}) ms, "
                        rf"p99 ({NUMBER}) ms, max {NUMBER} ms, n=(\d+)$", out, re.M)
    assert latency, out
    assert float(latency.group(1)) <= float(latency.group(2))
    assert int(latency.group(3)) == 20  # every paced job was accepted and measured
    assert out.count("machine before: python") == 1 and out.count("machine after: python") == 1, out


def test_server_create_prints_its_figures() -> None:
    out = run_bench("bench/server_create.py", "--seconds", "1")
    check = re.search(rf"^health Check: +({NUMBER}) calls/s$", out, re.M)
    create = re.search(rf"^CreateJob: +({NUMBER}) calls/s +ratio ({NUMBER}) \(target >= 0\.5\)$", out, re.M)
    assert check and create, out
    assert abs(float(create.group(2)) - float(create.group(1)) / float(check.group(1))) < 0.006, out
    assert re.search(rf"^BatchCreateJobs: +{NUMBER} jobs/s \(20 batches of 1000, target >= 10000\)$", out, re.M), out


def test_create_breakdown_prints_a_row_per_mode() -> None:
    out = run_bench("bench/create_breakdown.py", "--seconds", "0.5", "--rounds", "1")
    rows = re.findall(rf"^(\w+) +({NUMBER})/s +({NUMBER})/s +({NUMBER})$", out, re.M)
    assert [row[0] for row in rows] == ["noop", "prepare", "durable"], out
    for _, checks, creates, ratio in rows:
        assert float(checks) > 0 and float(creates) > 0
        assert abs(float(ratio) - float(creates) / float(checks)) < 0.006, out
