"""Job event log ("user log") events in HTCondor's text format (readable by ``htcondor2.JobEventLog``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

HOST = "<127.0.0.1:9618?addrs=127.0.0.1-9618&noUDP&sock=simulator>"


def write_event(log_path: str | None, code: int, cluster: int, proc: int, text: str,
                body: Sequence[str] = ()) -> None:
    """Appends one event: ``NNN (cluster.proc.000) date time text``, body lines, then ``...``."""
    if not log_path:
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    lines = [f"{code:03d} ({cluster:03d}.{proc:03d}.000) {stamp} {text}", *body, "..."]
    with Path(log_path).open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def submitted(log_path: str | None, cluster: int, proc: int) -> None:
    """Event 000."""
    write_event(log_path, 0, cluster, proc, f"Job submitted from host: {HOST}")


def executing(log_path: str | None, cluster: int, proc: int) -> None:
    """Event 001."""
    write_event(log_path, 1, cluster, proc, f"Job executing on host: {HOST}")


def terminated(log_path: str | None, cluster: int, proc: int, *, exit_code: int | None,
               signal: int | None) -> None:
    """Event 005, normal termination (return value) or abnormal (signal)."""
    how = (f"\t(1) Normal termination (return value {exit_code})" if signal is None
           else f"\t(0) Abnormal termination (signal {signal})")
    usage = "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  "
    body = [how, f"{usage}Run Remote Usage", f"{usage}Run Local Usage", f"{usage}Total Remote Usage",
            f"{usage}Total Local Usage", "\t0  -  Run Bytes Sent By Job",
            "\t0  -  Run Bytes Received By Job", "\t0  -  Total Bytes Sent By Job",
            "\t0  -  Total Bytes Received By Job"]
    write_event(log_path, 5, cluster, proc, "Job terminated.", body)


def aborted(log_path: str | None, cluster: int, proc: int, reason: str) -> None:
    """Event 009."""
    write_event(log_path, 9, cluster, proc, "Job was aborted.", [f"\t{reason}"])


def held(log_path: str | None, cluster: int, proc: int, reason: str, code: int) -> None:
    """Event 012."""
    write_event(log_path, 12, cluster, proc, "Job was held.", [f"\t{reason}", f"\tCode {code} Subcode 0"])


def released(log_path: str | None, cluster: int, proc: int, reason: str) -> None:
    """Event 013."""
    write_event(log_path, 13, cluster, proc, "Job was released.", [f"\t{reason}"])
