"""Identifiers: time-ordered job ids, step ids and resource names, and time conversions."""

from __future__ import annotations

import os
import random
import threading
import time

from google.protobuf.timestamp_pb2 import Timestamp

_id_lock = threading.Lock()
_last_id = (0, 0)
# The random part only spreads the ids of replicas apart (job ids grant nothing: every call checks the
# owner), so a generator seeded from the system's randomness serves; os.urandom per id was a system call
# per job (8 % of a batch create).
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def new_job_id(now_us: int | None = None) -> str:
    """A 24-hex-digit id: 6 bytes of milliseconds since the epoch, then 6 random bytes.

    Lowercase hex of a fixed width sorts like the number, so job ids sort by creation time. Within one
    process, ids made in the same millisecond increment the random part, so they are strictly increasing;
    across replicas, ids of the same millisecond are in random order."""
    global _last_id
    millis = (now_us if now_us is not None else now_micros()) // 1000
    random_part = _random.getrandbits(40)  # of 48 bits: leaves room to count up
    with _id_lock:
        last_millis, last_random = _last_id
        if millis <= last_millis:
            millis, random_part = last_millis, last_random + 1
        _last_id = (millis, random_part)
    return f"{millis:012x}{random_part:012x}"


def job_id_floor(micros: int) -> str:
    """The smallest job id created at or after ``micros`` (for time filters on the id order)."""
    return f"{micros // 1000:012x}" + "0" * 12


def step_id(job_id: str, index: int) -> str:
    """The step id used on the wire: ``<job id>/<index>``."""
    return f"{job_id}/{index}"


def parse_step_id(value: str) -> tuple[str, int] | None:
    """Splits a step id into (job id, index), or None when it is malformed."""
    job_id, _, index = value.rpartition("/")
    if not job_id or not index.isdigit():
        return None
    return job_id, int(index)


def job_name(job_id: str) -> str:
    """Resource name ``jobs/{job}``."""
    return f"jobs/{job_id}"


def parse_job_name(name: str) -> str | None:
    """The job id of ``jobs/{job}``, or None when ``name`` is not a job name."""
    prefix, _, job_id = name.partition("/")
    if prefix != "jobs" or not job_id or "/" in job_id or len(job_id) > 32:
        return None
    return job_id


def now_micros() -> int:
    """Current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def to_timestamp(micros: int | None) -> Timestamp | None:
    """A protobuf Timestamp for ``micros`` (None stays None)."""
    if micros is None:
        return None
    stamp = Timestamp()
    set_timestamp(stamp, micros)
    return stamp


def set_timestamp(stamp: Timestamp, micros: int | None) -> None:
    """Sets a message's Timestamp field to ``micros`` in place (None leaves it unset)."""
    if micros is not None:
        stamp.seconds, rest = divmod(micros, 1_000_000)
        stamp.nanos = rest * 1000
