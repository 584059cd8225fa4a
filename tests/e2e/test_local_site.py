"""End to end on the local site: a real argo-server, RabbitMQ and balsam-agent as separate processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from argo_client.local_stack import LocalStack
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2

from tests.e2e.e2e_helpers import BROKER_RESTART_ALLOWED, one_step_job, step_in, wait_job, wait_terminal

Stub = argo_service_pb2_grpc.ArgoServiceStub


def start_local_agent(stack: LocalStack, site_bin: Path) -> None:
    stack.start_agent("local", site_options={"allowed_exec_dir": str(site_bin),
                                             "work_root": str(stack.state_dir / "work")})


def create(stub: Stub, job: job_pb2.Job) -> str:
    return stub.CreateJob(svc.CreateJobRequest(job=job)).job.name


def test_seed_workflow_through_argo_demo(tmp_path: Path, amqp_url: str) -> None:
    """The quick start: `argo demo` runs the seed's two-step workflow and step 2 sees step 1's outputs."""
    state = tmp_path / "demo"
    queues_before = _broker_queues()
    proc = subprocess.run([sys.executable, "-m", "argo_client.cli", "demo", "--state-dir", str(state),
                           "--amqp-url", amqp_url, "--timeout", "120"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCEEDED" in proc.stdout
    outputs = state / "outputs"
    for name in ("alpout.unw", "alpout_unw.par", "directoryList_before.txt", "directoryList_after.txt",
                 "alpgen_postsubmit.err", "alpgen_postsubmit.out"):
        assert (outputs / name).is_file(), f"{name} missing from the output_url"
    # step 2 listed its working directory before running: step 1's grids arrived through the data area
    before = (outputs / "directoryList_before.txt").read_text().split()
    assert {"alpout.grid1", "alpout.grid2", "alpout.input.1", "alpout.input.2", "cteq6l1.tbl"} <= set(before)
    grids = sorted((state / "data").rglob("alpout.grid1"))
    assert grids, "step 1's output is not in the job's data area"
    assert (outputs / "alpout.unw").read_text().count("event ") == 32
    # everything the demo started, it stopped: no process still refers to its state directory, and no
    # queue of its own is left on the broker
    assert not _processes_mentioning(str(state))
    assert not {q for q in _broker_queues() - queues_before if q.startswith("argo-")}


def _broker_queues() -> set[str]:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True,
                         timeout=60).stdout
    return set(out.split())


def _processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line and "ps -eo" not in line]


def test_failing_step_reports_phase_reason_and_exit_code(stack: LocalStack, stub: Stub, site_bin: Path) -> None:
    start_local_agent(stack, site_bin)
    name = create(stub, one_step_job("fail3"))
    job = wait_terminal(stub, name)
    assert job.state == job_pb2.JOB_STATE_FAILED
    step = job.steps[0]
    assert step.state == job_pb2.STEP_STATE_FAILED
    assert step.failed_phase == job_pb2.STEP_PHASE_RUN
    assert step.exit_code == 3
    assert "3" in step.state_reason


def test_missing_input_fails_stage_in_naming_the_file(stack: LocalStack, stub: Stub, site_bin: Path,
                                                      tmp_path: Path) -> None:
    start_local_agent(stack, site_bin)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    job = one_step_job("ok", input_files=["present.txt", "absent.dat"])
    job.input_url = inputs.as_uri() + "/"
    (inputs / "present.txt").write_text("here\n")
    job = wait_terminal(stub, create(stub, job))
    assert job.state == job_pb2.JOB_STATE_FAILED
    assert job.steps[0].failed_phase == job_pb2.STEP_PHASE_STAGE_IN
    assert "absent.dat" in job.steps[0].state_reason


def test_executable_outside_allowed_directory_is_rejected(stack: LocalStack, stub: Stub, site_bin: Path) -> None:
    start_local_agent(stack, site_bin)
    job = wait_terminal(stub, create(stub, one_step_job("/bin/true")))
    assert job.state == job_pb2.JOB_STATE_REJECTED
    assert job.steps[0].state == job_pb2.STEP_STATE_REJECTED
    assert job.steps[0].state_reason


def test_cancel_kills_the_running_program(stack: LocalStack, stub: Stub, site_bin: Path, tmp_path: Path) -> None:
    start_local_agent(stack, site_bin)
    marker = tmp_path / "ran"
    name = create(stub, one_step_job("count", str(marker), "120"))
    wait_job(stub, name, step_in(job_pb2.STEP_STATE_RUNNING))
    started = time.monotonic()
    stub.CancelJob(svc.CancelJobRequest(name=name, reason="test"))
    job = wait_job(stub, name, step_in(job_pb2.STEP_STATE_CANCELLED), timeout=30)
    assert job.state == job_pb2.JOB_STATE_CANCELLED
    assert time.monotonic() - started < 30
    assert not _program_running(str(marker)), "the cancelled program is still running"


def _program_running(marker: str) -> bool:
    return any("count" in line for line in _processes_mentioning(marker))


def test_hold_and_release_a_running_step(stack: LocalStack, stub: Stub, site_bin: Path, tmp_path: Path) -> None:
    start_local_agent(stack, site_bin)
    name = create(stub, one_step_job("sleeper", "2"))
    wait_job(stub, name, step_in(job_pb2.STEP_STATE_RUNNING))
    stub.HoldJob(svc.HoldJobRequest(name=name, reason="test"))
    job = wait_job(stub, name, step_in(job_pb2.STEP_STATE_HELD), timeout=30)
    assert job.state == job_pb2.JOB_STATE_HELD
    time.sleep(3)  # longer than the program's own run time: it must not finish while held
    assert stub.GetJob(svc.GetJobRequest(name=name)).job.steps[0].state == job_pb2.STEP_STATE_HELD
    stub.ReleaseJob(svc.ReleaseJobRequest(name=name))
    job = wait_terminal(stub, name)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED


def test_retry_runs_a_new_attempt(stack: LocalStack, stub: Stub, site_bin: Path, tmp_path: Path) -> None:
    flaky = site_bin / "flaky"
    flaky.write_text("#!/bin/sh\nif [ -e \"$1\" ]; then exit 0; fi\ntouch \"$1\"\nexit 7\n")
    flaky.chmod(0o755)
    start_local_agent(stack, site_bin)
    name = create(stub, one_step_job("flaky", str(tmp_path / "second-time")))
    job = wait_terminal(stub, name)
    assert job.state == job_pb2.JOB_STATE_FAILED and job.steps[0].exit_code == 7
    stub.RetryJob(svc.RetryJobRequest(name=name))
    job = wait_terminal(stub, name)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED
    assert job.steps[0].attempt == 2


def test_agent_kill9_every_step_finishes_exactly_once(stack: LocalStack, stub: Stub, site_bin: Path,
                                                      tmp_path: Path) -> None:
    start_local_agent(stack, site_bin)
    counters = [tmp_path / f"count-{i}" for i in range(12)]
    names = [create(stub, one_step_job("count", str(c), "0.5" if i % 2 else "0")) for i, c in enumerate(counters)]
    for _ in range(3):  # kill at whatever phases the steps are in, three times
        time.sleep(0.4)
        stack.kill_agent("local")
        start_local_agent(stack, site_bin)
    jobs = [wait_terminal(stub, n, timeout=90) for n in names]
    assert [j.state for j in jobs] == [job_pb2.JOB_STATE_SUCCEEDED] * len(jobs)
    for counter in counters:
        assert counter.read_text().count("run") == 1, f"{counter.name} ran {counter.read_text()!r}"


@pytest.mark.slow
@pytest.mark.skipif(not BROKER_RESTART_ALLOWED,
                    reason="restarts the shared RabbitMQ node; .ci/run sets ARGO_TEST_BROKER_RESTART=1")
def test_broker_restart_during_a_run_loses_nothing(stack: LocalStack, stub: Stub, site_bin: Path,
                                                   tmp_path: Path) -> None:
    start_local_agent(stack, site_bin)
    names = [create(stub, one_step_job("sleeper", "3")) for _ in range(5)]
    wait_job(stub, names[0], step_in(job_pb2.STEP_STATE_RUNNING))
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120)
    # work created while the broker is down must wait in the outbox, not fail
    names += [create(stub, one_step_job("ok")) for _ in range(5)]
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
    jobs = [wait_terminal(stub, n, timeout=120) for n in names]
    assert [j.state for j in jobs] == [job_pb2.JOB_STATE_SUCCEEDED] * len(jobs)
