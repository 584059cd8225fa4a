"""Pure parsers of HTCondor's output. Never ``assert``: garbage raises :class:`SchedulerError`.

``condor_q -json`` and ``condor_history -json`` print a JSON array of job ads (attributes by name;
expressions as ``"/Expr(...)/"`` strings) and print nothing at all when no job matches.
``condor_submit`` and ``condor_submit_dag`` end with ``N job(s) submitted to cluster C.``
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from balsam_agent.scheduler import SchedulerError, SchedulerJobStatus, SchedulerState
from balsam_condor import states

log = logging.getLogger(__name__)

_SUBMITTED = re.compile(r"^\s*(\d+) job\(s\) submitted to cluster (\d+)\.\s*$", re.MULTILINE)
# condor_rm / condor_hold / condor_release when no job matched:
# "Couldn't find/remove all jobs in cluster 999" (and find/hold, find/release).
_UNKNOWN_JOB = re.compile(r"Couldn't find/\w+ all jobs|[Jj]ob \d+(\.\d+)? not found")

JobAd = dict[str, Any]


def parse_submit_output(text: str) -> str:
    """Returns the cluster id printed by ``condor_submit`` / ``condor_submit_dag``."""
    matches = _SUBMITTED.findall(text or "")
    if not matches:
        raise SchedulerError(f"no cluster id in condor_submit output: {(text or '').strip()[:300]!r}")
    count, cluster = matches[-1]
    if int(count) < 1:
        raise SchedulerError(f"condor_submit queued no job: {(text or '').strip()[:300]!r}",
                             transient=False)
    return str(int(cluster))


def parse_job_ads(text: str) -> list[JobAd]:
    """Parses ``-json`` output into job ads; no output means no job matched."""
    if not text or not text.strip():
        return []
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SchedulerError(f"unreadable HTCondor JSON output: {text.strip()[:200]!r}") from exc
    if not isinstance(data, list) or not all(isinstance(ad, dict) for ad in data):
        raise SchedulerError(f"HTCondor JSON output is not a list of ads: {text.strip()[:200]!r}")
    return data


def cluster_of(ad: Mapping[str, Any]) -> str | None:
    """The ad's cluster id as a string, or None when missing or malformed."""
    cluster = ad.get("ClusterId")
    if isinstance(cluster, int) and not isinstance(cluster, bool) and cluster >= 0:
        return str(cluster)
    return None


def group_by_cluster(ads: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Groups job ads by cluster id, skipping (and logging) ads without a usable ``ClusterId``."""
    clusters: dict[str, list[Mapping[str, Any]]] = {}
    for ad in ads:
        cluster = cluster_of(ad)
        if cluster is None:
            log.warning("HTCondor job ad without a usable ClusterId ignored: %.200r", ad)
            continue
        clusters.setdefault(cluster, []).append(ad)
    return clusters


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def proc_status(cluster: str, ad: Mapping[str, Any]) -> SchedulerJobStatus:
    """The status of one job (one process of a cluster) from its ad."""
    code = ad.get("JobStatus")
    state = states.translate(code)
    native = states.status_name(code)
    if state is SchedulerState.HELD:
        return SchedulerJobStatus(cluster, state, reason=_text(ad.get("HoldReason")) or "held",
                                  native_state=native)
    if state is SchedulerState.CANCELLED:
        reason = _text(ad.get("RemoveReason"))
        if "PeriodicRemove" in reason:
            # Our generated descriptions enforce the walltime with periodic_remove.
            return SchedulerJobStatus(cluster, SchedulerState.FAILED,
                                      reason=f"walltime exceeded: {reason}", native_state=native)
        return SchedulerJobStatus(cluster, state, reason=reason or "removed", native_state=native)
    if state is SchedulerState.COMPLETED:
        if ad.get("ExitBySignal") is True:
            signal = _int(ad.get("ExitSignal"))
            return SchedulerJobStatus(cluster, SchedulerState.FAILED,
                                      reason=f"killed by signal {signal if signal is not None else '?'}",
                                      native_state=native)
        exit_code = _int(ad.get("ExitCode"))
        if exit_code is None:
            return SchedulerJobStatus(cluster, SchedulerState.FAILED,
                                      reason="HTCondor recorded no exit code", native_state=native)
        if exit_code != 0:
            return SchedulerJobStatus(cluster, SchedulerState.FAILED, exit_code=exit_code,
                                      reason=f"exited with code {exit_code}", native_state=native)
        return SchedulerJobStatus(cluster, SchedulerState.COMPLETED, exit_code=0, native_state=native)
    reason = "suspended" if code == states.SUSPENDED else ""
    return SchedulerJobStatus(cluster, state, reason=reason, native_state=native)


def summarize_cluster(cluster: str, ads: Iterable[Mapping[str, Any]]) -> SchedulerJobStatus:
    """One status for a whole cluster (a step may queue several processes, or be a DAG).

    While any process is active the cluster is active (held first, since it needs a person, then
    running, then queued); once all have ended it failed if any failed, was cancelled if any was
    removed, and completed otherwise.
    """
    procs = sorted(ads, key=lambda ad: _int(ad.get("ProcId")) or 0)
    statuses = [proc_status(cluster, ad) for ad in procs]
    if not statuses:
        return SchedulerJobStatus(cluster, SchedulerState.UNKNOWN, reason="no job ads")
    for wanted in (SchedulerState.HELD, SchedulerState.RUNNING, SchedulerState.QUEUED,
                   SchedulerState.UNKNOWN, SchedulerState.FAILED, SchedulerState.CANCELLED):
        for status in statuses:
            if status.state is wanted:
                return status
    return statuses[0]


def summarize(ads: Iterable[Mapping[str, Any]]) -> dict[str, SchedulerJobStatus]:
    """Statuses of every cluster found in the ads."""
    return {cluster: summarize_cluster(cluster, procs)
            for cluster, procs in group_by_cluster(ads).items()}


def is_unknown_job_message(text: str) -> bool:
    """Whether ``condor_rm``/``condor_hold``/``condor_release`` said that no such job exists."""
    return bool(_UNKNOWN_JOB.search(text or ""))
