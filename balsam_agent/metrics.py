"""Metrics of the agent (OpenTelemetry metrics API; ``balsam-agent`` pushes them over OTLP when
configured, see :mod:`balsam_agent.telemetry`).

| instrument | kind | attributes |
| --- | --- | --- |
| ``balsam.scheduler.command.duration`` | histogram, s | ``site``, ``command`` (program name), ``outcome`` (ok, failed) |
| ``balsam.scheduler.command.failures`` | counter | ``site``, ``command``, ``final`` (false: retried, true: given up) |
| ``balsam.transfer.bytes`` | counter, By | ``site``, ``scheme``, ``direction`` (in, out) |
| ``balsam.transfer.duration`` | histogram, s | ``site``, ``scheme``, ``direction``, ``outcome`` |
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import metrics

if TYPE_CHECKING:
    from balsam_agent.transfer import TransferItem

meter = metrics.get_meter("balsam_agent")

command_duration = meter.create_histogram("balsam.scheduler.command.duration", unit="s",
                                          description="Scheduler commands (qsub, sbatch, squeue, ...) with retries")
command_failures = meter.create_counter("balsam.scheduler.command.failures", unit="{failure}",
                                        description="Failed scheduler commands (final: after the last retry)")
transfer_bytes = meter.create_counter("balsam.transfer.bytes", unit="By", description="Bytes staged in and out")
transfer_duration = meter.create_histogram("balsam.transfer.duration", unit="s",
                                           description="Duration of one transfer call (a group of files)")

F = TypeVar("F", bound=Callable[..., Any])


def _command(argv: Sequence[str]) -> str:
    return os.path.basename(argv[0]) if argv else ""


def timed_command(run: F) -> F:
    """Decorates ``BatchScheduler.run(self, argv, ...)``: its duration and final failures."""

    @functools.wraps(run)
    def wrapper(self: Any, argv: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        attributes = {"site": getattr(getattr(self, "site", None), "name", ""), "command": _command(argv)}
        started = time.monotonic()
        outcome = "failed"
        try:
            result = run(self, argv, *args, **kwargs)
            outcome = "ok"
            return result
        except Exception:
            command_failures.add(1, {**attributes, "final": True})
            raise
        finally:
            command_duration.record(time.monotonic() - started, {**attributes, "outcome": outcome})

    return wrapper  # type: ignore[return-value]


def command_retried(site: str, argv: Sequence[str]) -> None:
    """Counts one failed try of a command that is retried."""
    command_failures.add(1, {"site": site, "command": _command(argv), "final": False})


def _size(items: Sequence[TransferItem]) -> int:
    total = 0
    for item in items:
        try:
            total += item.path.stat().st_size
        except OSError:
            pass  # a missing file is the transfer's error to report, not the metric's
    return total


@contextmanager
def transfer(site: str, scheme: str, direction: str, items: Sequence[TransferItem]) -> Iterator[None]:
    """Times one transfer call and counts its bytes (local sizes: after a fetch, before a store)."""
    attributes = {"site": site, "scheme": scheme, "direction": direction}
    size = _size(items) if direction == "out" else 0
    started = time.monotonic()
    outcome = "failed"
    try:
        yield
        outcome = "ok"
    finally:
        transfer_duration.record(time.monotonic() - started, {**attributes, "outcome": outcome})
        if outcome == "ok":
            transfer_bytes.add(size if direction == "out" else _size(items), attributes)
