"""Pinning the server's threads to CPUs (the ``cpu_affinity`` setting).

The server's Python threads (gRPC workers, group commit, relay wake-ups, the status consumer) take turns
on one interpreter lock. When the kernel runs them on different CPUs, each hand-over of the lock is a
wake-up across CPUs, which costs far more than one on the same CPU (on this machine a thread ping-pong
took 40 µs a round trip across its two vCPUs and 13 µs on one). Pinned to one CPU, the same server
served 50 % more health Checks and CreateJobs (BENCHMARKS.md). It is off by default: the right CPU
depends on what else the machine runs, which the operator knows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def available_cpus() -> set[int]:
    """The CPUs this process may run on."""
    return set(os.sched_getaffinity(0))


def check_cpu_affinity(value: object) -> None:
    """Raises ValueError, naming the setting, unless ``value`` is a list of CPUs this process may use
    (an empty list: no pinning)."""
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(cpu, int) and not isinstance(cpu, bool) for cpu in value):
        raise ValueError(f"cpu_affinity: must be a list of CPU numbers, not {value!r}")
    unavailable = sorted(set(value) - available_cpus())
    if unavailable:
        raise ValueError(f"cpu_affinity: CPUs {unavailable} are not available to this process "
                         f"(available: {sorted(available_cpus())})")


def pin_threads(cpus: Iterable[int]) -> set[int]:
    """Pins every thread of this process to ``cpus`` (threads started later inherit it from the thread
    that starts them) and returns the CPUs the calling thread could use before."""
    before = available_cpus()
    wanted = set(cpus)
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), wanted)
        except ProcessLookupError:
            pass  # a thread that ended meanwhile
    return before
