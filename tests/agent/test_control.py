"""Cancel, hold, release and retry reach the agent through envelopes and act at the scheduler."""

from __future__ import annotations

from pathlib import Path

from balsam_agent.builtin.local_scheduler import group_alive, parse_scheduler_id


def _stat_letter(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rfind(")") + 2]


def test_cancel_kills_the_running_program(local_agent) -> None:
    harness = local_agent(site_options={"options": {"kill_grace": 1}})
    step_id = harness.assign(job_id="jc", executable="sleep", args=["60"])
    submitted = harness.reports.wait_state(step_id, "RUNNING")
    pid, _, _ = parse_scheduler_id(submitted.scheduler_id)
    harness.control("cancel", step_id, reason="user asked")
    harness.reports.wait_state(step_id, "CANCELLED")
    assert not _group_alive(pid)


def _group_alive(pgid: int) -> bool:
    return group_alive(pgid)


def test_hold_stops_and_release_resumes_the_program(local_agent, tmp_path: Path) -> None:
    harness = local_agent()
    step_id = harness.assign(job_id="jh", executable="sleep", args=["1"])
    running = harness.reports.wait_state(step_id, "RUNNING")
    pid, _, _ = parse_scheduler_id(running.scheduler_id)
    harness.control("hold", step_id, sequence=2)
    harness.reports.wait_state(step_id, "HELD")
    assert _stat_letter(pid) == "T"
    harness.control("release", step_id, sequence=3)
    harness.reports.wait_state(step_id, "SUCCEEDED")
    states = harness.reports.states(step_id)
    held = states.index("HELD")
    assert states[held + 1] == "RUNNING"


def test_hold_before_submit_pauses_and_release_continues(local_agent, tmp_path: Path) -> None:
    slow = _SlowTransferPlugin(delay=0.5)
    harness = local_agent(plugins=[slow])
    counter = tmp_path / "count.txt"
    source = tmp_path / "in.txt"
    source.write_text("x")
    step_id = harness.assign(job_id="jp", executable="count", args=[str(counter)],
                             inputs={"in.txt": f"slow://{source}"})
    harness.reports.wait_state(step_id, "STAGING_IN")
    harness.control("hold", step_id)
    harness.reports.wait_state(step_id, "HELD")
    slow.done.wait(5)
    harness.agent.wait_idle(0.5)
    assert not counter.exists(), "a held step must not be submitted"
    harness.control("release", step_id, sequence=3)
    harness.reports.wait_state(step_id, "SUCCEEDED")
    assert counter.read_text() == "jp 0 1\n"


def test_cancel_before_submit_never_runs_the_program(local_agent, tmp_path: Path) -> None:
    slow = _SlowTransferPlugin(delay=0.5)
    harness = local_agent(plugins=[slow])
    counter = tmp_path / "count.txt"
    step_id = harness.assign(job_id="jb", executable="count", args=[str(counter)],
                             inputs={"in.txt": f"slow://{tmp_path}/x"})
    harness.reports.wait_state(step_id, "STAGING_IN")
    harness.control("cancel", step_id)
    harness.reports.wait_state(step_id, "CANCELLED")
    assert harness.agent.wait_idle(5)
    assert not counter.exists()


def test_retry_is_a_fresh_run_in_a_new_workdir(local_agent, tmp_path: Path) -> None:
    harness = local_agent()
    step_id = harness.assign(job_id="jt", executable="fail", args=["1"])
    harness.reports.wait_state(step_id, "FAILED", attempt=1)
    counter = tmp_path / "count.txt"
    harness.assign(job_id="jt", executable="count", args=[str(counter)], attempt=2, sequence=1)
    done = harness.reports.wait_state(step_id, "SUCCEEDED", attempt=2)
    assert done.sequence > 1
    assert counter.read_text() == "jt 0 2\n"
    assert [u.sequence for u in harness.reports.for_step(step_id, 2)][0] == 1
    workroot = Path(harness.agent.site.work_root) / "jt" / "0"
    assert sorted(p.name for p in workroot.iterdir()) == ["1", "2"]


def test_duplicate_and_stale_envelopes_are_ignored(local_agent, tmp_path: Path) -> None:
    harness = local_agent()
    counter = tmp_path / "count.txt"
    fields = {"job_id": "jd", "executable": "count", "args": [str(counter)], "attempt": 2}
    harness.assign(**fields)
    harness.assign(**fields)  # same (step, attempt, sequence): a redelivery
    harness.reports.wait_state("jd/0", "SUCCEEDED", attempt=2)
    harness.assign(**{**fields, "attempt": 1})  # an older attempt
    harness.assign(**{**fields, "sequence": 7})  # the same attempt again, as a new envelope
    harness.control("cancel", "jd/0", attempt=1, sequence=9)
    assert harness.agent.wait_idle(5)
    assert counter.read_text() == "jd 0 2\n"
    assert {u.attempt for u in harness.reports.updates} == {2}
    assert harness.reports.states("jd/0").count("SUCCEEDED") == 1


def test_a_batch_message_is_taken_envelope_by_envelope_in_order(local_agent, tmp_path: Path) -> None:
    from argobalsam.balsam.v1 import assignment_pb2

    from balsam_agent.testing import make_assignment, make_control

    harness = local_agent(site_options={"options": {"kill_grace": 1}})
    counter = tmp_path / "count.txt"
    runs = [make_assignment(job_id=f"jb{n}", site=harness.site, executable="count", args=[str(counter)])
            for n in range(3)]
    cancelled = make_assignment(job_id="jbx", site=harness.site, executable="sleep", args=["60"])
    batch = assignment_pb2.AssignmentBatch(envelopes=[
        *runs, runs[0],  # a duplicate inside the batch
        assignment_pb2.AssignmentEnvelope(site=harness.site, attempt=1),  # no step id: skipped, not fatal
        cancelled, make_control("cancel", step_id=cancelled.step_id, site=harness.site)])  # in order
    harness.publisher.publish(batch)
    for envelope in runs:
        harness.reports.wait_state(envelope.step_id, "SUCCEEDED")
    harness.reports.wait_state(cancelled.step_id, "CANCELLED")
    assert harness.agent.wait_idle(5)
    assert sorted(counter.read_text().splitlines()) == ["jb0 0 1", "jb1 0 1", "jb2 0 1"]
    assert "RUNNING" not in harness.reports.states(cancelled.step_id)


def test_a_malformed_batch_is_dead_lettered_and_the_agent_goes_on(local_agent) -> None:
    harness = local_agent()
    harness.publisher.publish(b"\xff\xffnot a protobuf", site=harness.site,
                              message_type="argobalsam.balsam.v1.AssignmentBatch")
    step_id = harness.assign(job_id="jh", executable="true")
    harness.reports.wait_state(step_id, "SUCCEEDED")


def test_malformed_envelope_is_dead_lettered_and_the_agent_goes_on(local_agent) -> None:
    harness = local_agent()
    harness.publisher.publish(b"\xff\xffnot a protobuf", site=harness.site)
    step_id = harness.assign(job_id="jg", executable="true")
    harness.reports.wait_state(step_id, "SUCCEEDED")


class _SlowTransferPlugin:
    """A ``slow://`` transfer that sleeps, then copies a local path (or creates an empty file)."""

    def __init__(self, delay: float) -> None:
        import threading

        from balsam_agent.transfer import TransferBackend

        self.delay = delay
        self.done = threading.Event()
        plugin = self

        class Slow(TransferBackend):
            schemes = ("slow",)

            def fetch(self, items, cancelled) -> None:
                cancelled.wait(plugin.delay)
                for item in items:
                    item.path.write_text("slow")
                plugin.done.set()

            def store(self, items, cancelled) -> None:
                cancelled.wait(plugin.delay)

        self.backend = Slow

    def balsam_transfers(self):
        from balsam_agent.records import TransferRecord

        return [TransferRecord(scheme="slow", backend=self.backend)]


# pluggy needs the marker on the method: applied here so the class stays readable.
from balsam_agent import hookimpl  # noqa: E402

_SlowTransferPlugin.balsam_transfers = hookimpl(_SlowTransferPlugin.balsam_transfers)  # type: ignore[method-assign]
