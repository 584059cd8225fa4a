"""A step's life at the agent: success, a failing program, a missing input, outputs stored."""

from __future__ import annotations

from pathlib import Path

from argobalsam.argo.v1 import job_pb2


def test_step_runs_and_succeeds_with_every_phase_reported(local_agent, exec_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "data" / "in.txt"
    source.parent.mkdir()
    source.write_text("hello\n")
    store = tmp_path / "area"
    harness = local_agent()
    step_id = harness.assign(job_id="j1", executable="transform", num_evts=500, nodes=2, processes_per_node=4,
                             inputs={"in.txt": source.as_uri()},
                             outputs={"out.txt": [(store / "out.txt").as_uri()]})
    done = harness.reports.wait_state(step_id, "SUCCEEDED")
    states = harness.reports.states(step_id)
    assert states[0] == "ACCEPTED"
    assert states[-1] == "SUCCEEDED"
    for expected in ("STAGING_IN", "SUBMITTED", "STAGING_OUT"):
        assert expected in states
    sequences = [u.sequence for u in harness.reports.for_step(step_id)]
    assert sequences == list(range(1, len(sequences) + 1))
    assert done.exit_code == 0 and done.scheduler_id
    assert (store / "out.txt").read_text() == "HELLO\n"
    workdir = harness.agent.site.work_root
    env = (Path(workdir) / "j1" / "0" / "1" / "env.txt").read_text().split()
    assert env == ["j1", "0", "1", "500", "8"]


def test_failing_program_reports_run_phase_and_exit_code(local_agent) -> None:
    harness = local_agent()
    step_id = harness.assign(job_id="jf", executable="fail", args=["7"])
    failed = harness.reports.wait_state(step_id, "FAILED")
    assert failed.failed_phase == job_pb2.STEP_PHASE_RUN
    assert failed.exit_code == 7
    assert "exited with code 7" in failed.reason
    stderr = Path(harness.agent.site.work_root) / "jf" / "0" / "1" / "stderr.txt"
    assert stderr.read_text() == "failing\n"


def test_missing_input_fails_stage_in_naming_the_file(local_agent, tmp_path: Path) -> None:
    harness = local_agent()
    missing = tmp_path / "nowhere" / "events.lhe"
    step_id = harness.assign(job_id="jm", executable="true", inputs={"events.lhe": missing.as_uri()})
    failed = harness.reports.wait_state(step_id, "FAILED")
    assert failed.failed_phase == job_pb2.STEP_PHASE_STAGE_IN
    assert str(missing) in failed.reason


def test_seed_form_uses_first_argument_as_program(local_agent, tmp_path: Path) -> None:
    harness = local_agent()
    counter = tmp_path / "count.txt"
    step_id = harness.assign(job_id="js", args=["count", str(counter)])
    harness.reports.wait_state(step_id, "SUCCEEDED")
    assert counter.read_text() == "js 0 1\n"


def test_missing_outputs_fail_stage_out_naming_every_missing_file(local_agent, tmp_path: Path) -> None:
    harness = local_agent()
    step_id = harness.assign(job_id="jo", executable="true",
                             outputs={name: [(tmp_path / "area" / name).as_uri()]
                                      for name in ("never.txt", "nor.dat")})
    failed = harness.reports.wait_state(step_id, "FAILED")
    assert failed.failed_phase == job_pb2.STEP_PHASE_STAGE_OUT
    assert "never.txt" in failed.reason and "nor.dat" in failed.reason
    assert not (tmp_path / "area").exists(), "nothing may be stored when an output is missing"


def test_heartbeat_reports_plugins_and_capacity(local_agent) -> None:
    harness = local_agent(site_options={"max_nodes": 4}, heartbeat_interval=0.2)
    assert harness.reports.wait_for(lambda _: len(harness.reports.heartbeats) >= 2, timeout=10)
    beat = harness.reports.heartbeats[-1]
    assert beat.scheduler == "local"
    assert beat.capacity.max_nodes == 4
    names = {p.name: list(p.hooks) for p in beat.plugins}
    assert "balsam_schedulers" in names["local"] and "balsam_transfers" in names["file"]
