"""The agent's database does not grow without bound: confirmed updates and old ended attempts go."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from balsam_agent.config import AgentConfig, ConfigError


def _count(database: Path, sql: str, *args: object) -> int:
    conn = sqlite3.connect(database)
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


def test_confirmed_updates_and_ended_attempts_past_retention_are_deleted(local_agent, tmp_path: Path) -> None:
    harness = local_agent(retention_days=1.5 / 86400)  # 1.5 s
    database = harness.agent.config.database_path
    old = harness.assign(job_id="old", executable="true")
    harness.reports.wait_state(old, "SUCCEEDED")
    assert harness.agent.wait_idle(10)
    # Every update the broker confirmed is gone from the outbox; the attempt itself is still kept.
    assert _count(database, "SELECT COUNT(*) FROM outbox") == 0
    assert _count(database, "SELECT COUNT(*) FROM steps WHERE step_id = ?", old) == 1
    running = harness.assign(job_id="running", executable="sleep", args=["4"])
    harness.reports.wait_state(running, "RUNNING")
    time.sleep(2.0)
    # A batch of the engine once the purge is due (at most a second apart here; the running step's polls
    # make batches): the old attempt and its envelopes go, the running one stays.
    new = harness.assign(job_id="new", executable="true")
    harness.reports.wait_state(new, "SUCCEEDED")
    deadline = time.monotonic() + 10
    while _count(database, "SELECT COUNT(*) FROM steps WHERE step_id = ?", old):
        assert time.monotonic() < deadline, "the ended attempt was not purged"
        time.sleep(0.05)
    assert _count(database, "SELECT COUNT(*) FROM envelopes WHERE step_id = ?", old) == 0
    assert _count(database, "SELECT COUNT(*) FROM steps WHERE step_id = ?", running) == 1
    assert _count(database, "SELECT COUNT(*) FROM envelopes WHERE step_id = ?", running) == 1
    assert _count(database, "SELECT COUNT(*) FROM steps WHERE step_id = ?", new) == 1
    harness.reports.wait_state(running, "SUCCEEDED", timeout=20)


def test_retention_days_is_checked(tmp_path: Path) -> None:
    for bad in (-1, "week", True):
        try:
            AgentConfig.from_mapping("local", {"retention_days": bad})
        except ConfigError as exc:
            assert "retention_days" in str(exc)
        else:
            raise AssertionError(f"retention_days={bad!r} was accepted")
    assert AgentConfig.from_mapping("local", {"retention_days": 30}).retention_days == 30


def _accepted_to_succeeded(harness, job_id: str) -> float:
    """Seconds between the arrivals of a step's ACCEPTED and SUCCEEDED reports."""
    step = harness.assign(job_id=job_id, executable="true")
    harness.reports.wait_state(step, "ACCEPTED", timeout=5)
    accepted = time.monotonic()
    harness.reports.wait_state(step, "SUCCEEDED", timeout=10)
    return time.monotonic() - accepted


def test_report_linger_holds_later_updates_together(local_agent) -> None:
    """After a quiet spell an update goes at once; updates within ``report_linger`` of the last status
    message wait and travel together in the next one."""
    lingering = local_agent(report_linger=1.0)
    assert _accepted_to_succeeded(lingering, "slow") > 0.7  # its first report after a quiet spell
    lingering.agent.stop()  # the next agent consumes the same queue, and reports to the same collector
    quick = local_agent(report_linger=0.0, reports=lingering.reports)
    _accepted_to_succeeded(quick, "warm")  # starts the agent's spawner
    assert _accepted_to_succeeded(quick, "quick") < 0.7
