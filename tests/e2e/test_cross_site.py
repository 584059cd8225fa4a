"""The seed's workflow across sites, end to end: a real argo-server, RabbitMQ and one balsam-agent
process per site, each with its own working root (issues 4 and 5).

- step 1 on ``argo_cluster`` (HTCondor simulator), step 2 on ``vesta`` (Cobalt simulator);
- both steps on the real single-node Slurm;
- two sites whose data area is on the real GridFTP server;
- file names that try to leave the working directory or the data area are refused before any byte moves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from argo_client.local_stack import LocalStack
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2
from argobalsam.balsam.v1 import status_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from balsam_agent.testing import AssignmentPublisher, ReportCollector, make_assignment
from tests.e2e.cross_site_helpers import (
    GRIDS,
    SEED_EVENTS,
    STEP2_INPUTS,
    SeedFiles,
    cobalt_environment,
    cobalt_logs,
    condor_cluster_ids,
    condor_environment,
    event_digest,
    job_id,
    prepare_seed,
    seed_job,
    step_failures,
    step_workdir,
    stop_cobalt,
    stop_condor,
)
from tests.e2e.e2e_helpers import wait_terminal

Stub = argo_service_pb2_grpc.ArgoServiceStub

#: A loaded machine (two cores shared with other test runs) makes every phase slow; the seed workflow
#: takes a few seconds when idle.
JOB_TIMEOUT = 150.0
#: Agents poll their scheduler this often (the seed's Vesta polled every 5 minutes).
FAST_POLL = 0.3


@pytest.fixture
def seed(tmp_path: Path) -> SeedFiles:
    """The stand-in program, the seed's inputs (the job's input_url) and its output_url."""
    return prepare_seed(tmp_path / "seed")


def start_stack(tmp_path: Path, amqp_url: str, amqp_prefix: str, sites: list[str],
                data_root: str | None = None) -> LocalStack:
    """A started server that knows exactly ``sites`` (a job for any other site is refused)."""
    stack = LocalStack(tmp_path / "stack", amqp_url=amqp_url, amqp_prefix=amqp_prefix, sites=sites,
                       data_root=data_root)
    try:
        stack.start_server()
    except BaseException:
        stack.stop()
        raise
    return stack


def site_options(seed: SeedFiles, work_root: Path, **more: object) -> dict[str, object]:
    """Site overrides every agent here gets: the stand-in's directory, its own working root, fast polls."""
    return {"allowed_exec_dir": str(seed.bin_dir), "work_root": str(work_root), "poll_interval": FAST_POLL,
            **more}


def create(stub: Stub, job: job_pb2.Job) -> job_pb2.Job:
    return stub.CreateJob(svc.CreateJobRequest(job=job, request_id=uuid.uuid4().hex)).job


def assert_step2_saw_exactly_step1_outputs(job: job_pb2.Job, seed: SeedFiles, step1_dir: Path,
                                           step2_dir: Path, data_area: Path) -> None:
    """The grids step 1 wrote went through the data area and arrived byte for byte in step 2's
    working directory, and step 2's program read exactly those bytes."""
    for grid in GRIDS:
        written = (step1_dir / grid).read_bytes()
        assert written.startswith(grid.encode()), f"{grid} was not written by step 1: {written!r}"
        assert (data_area / grid).read_bytes() == written, f"{grid} in the data area differs from step 1's"
        assert (step2_dir / grid).read_bytes() == written, f"{grid} in step 2's working directory differs"
    # (with file:// data areas step 1's file and the data area's are one hard-linked file; step 2 has a copy)
    # step 2 listed its working directory before it ran: every input was staged in ahead of the run
    before = set((seed.outputs / "directoryList_before.txt").read_text().split())
    assert set(STEP2_INPUTS) <= before, before
    # the program hashed the bytes it read; the same hash over step 1's files proves it read those
    events = (seed.outputs / "alpout.unw").read_text().splitlines()
    assert len(events) == SEED_EVENTS
    expected = event_digest(step2_dir)
    assert {line.split("sha=")[1] for line in events} == {expected}
    for name in job.steps[1].output_files:
        assert (seed.outputs / name).read_bytes() == (data_area / name).read_bytes(), name


# --- 1. HTCondor (argo_cluster) then Cobalt (vesta) ------------------------------------------------


@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """State directories of the HTCondor and the Cobalt simulator; whatever they still run is killed after."""
    condor, cobalt = tmp_path / "condor-sim", tmp_path / "cobalt-sim"
    yield condor, cobalt
    stop_condor(condor)
    stop_cobalt(cobalt)


def test_seed_workflow_step1_on_argo_cluster_condor_step2_on_vesta_cobalt(
        tmp_path: Path, amqp_url: str, amqp_prefix: str, seed: SeedFiles,
        simulators: tuple[Path, Path]) -> None:
    condor_dir, cobalt_dir = simulators
    condor_work, vesta_work = tmp_path / "work-argo_cluster", tmp_path / "work-vesta"
    with start_stack(tmp_path, amqp_url, amqp_prefix, ["argo_cluster", "vesta"]) as stack:
        stack.start_agent("argo_cluster", site_options=site_options(seed, condor_work),
                          env=condor_environment(condor_dir))
        stack.start_agent("vesta", site_options=site_options(seed, vesta_work),
                          env=cobalt_environment(cobalt_dir))
        with grpc.insecure_channel(stack.address) as channel:
            stub = Stub(channel)
            # the seed's submission unchanged: step 1 on argo_cluster, step 2 on vesta (2 nodes x 32 ranks,
            # --mode=script), both as the seed wrote them
            job = create(stub, seed_job(seed, "argo_cluster", "vesta"))
            job = wait_terminal(stub, job.name, timeout=JOB_TIMEOUT)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, step_failures(job)
    step1, step2 = job.steps
    assert (step1.target_site, step2.target_site) == ("argo_cluster", "vesta")
    # scheduler ids on the job are the ones each scheduler issued: an HTCondor cluster id, a Cobalt job id
    assert step1.scheduler_id.isdigit() and step2.scheduler_id.isdigit(), (step1.scheduler_id, step2.scheduler_id)
    assert condor_cluster_ids(condor_dir) == [int(step1.scheduler_id)]
    logs = cobalt_logs(vesta_work)
    assert list(logs) == [step2.scheduler_id]
    log = logs[step2.scheduler_id]
    assert f"Jobid: {step2.scheduler_id}\n" in log and "--mode script" in log, log
    assert "task completed normally with an exit code of 0" in log, log
    # each agent worked only in its own working root
    step1_dir = step_workdir(condor_work, job, 0)
    step2_dir = step_workdir(vesta_work, job, 1)
    assert not (vesta_work / job_id(job) / "0").exists() and not (condor_work / job_id(job) / "1").exists()
    data_area = stack.state_dir / "data" / job_id(job)
    assert job.data_url == data_area.as_uri() + "/"
    assert_step2_saw_exactly_step1_outputs(job, seed, step1_dir, step2_dir, data_area)
    # Vesta's step ran through the generated --mode script and runjob with the seed's rank count
    assert (seed.outputs / "alpgen_postsubmit.out").read_text() == f"unweighted {SEED_EVENTS} events on 64 rank(s)\n"


# --- 2. the real Slurm ----------------------------------------------------------------------------

#: Stand-in for an MPI program's rank-0 I/O: ``zjetgen90_mpi`` is not an MPI program, so every rank says
#: where it runs and only rank 0 runs the stand-in (two copies writing the same files would race).
RANK0_WRAPPER = """#!/bin/sh
echo "rank ${SLURM_PROCID:-?} of ${SLURM_NTASKS:-?} in job ${SLURM_JOB_ID:-?}"
if [ "${SLURM_PROCID:-0}" != 0 ]; then exit 0; fi
exec "$(dirname "$0")/zjetgen90_mpi.standin" "$@"
"""


def srun_problem() -> str | None:
    """Why the single-node test Slurm cannot run a task, or None when ``srun -N1 -n1 true`` works."""
    if shutil.which("srun") is None:
        return "no srun on PATH (start the test cluster with scripts/services/slurm start)"
    try:
        proc = subprocess.run(["srun", "-N1", "-n1", "true"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "srun -N1 -n1 true did not finish within 60 s"
    if proc.returncode != 0:
        return f"srun -N1 -n1 true exited with {proc.returncode}: {proc.stderr.strip()[:300]}"
    return None


def slurm_accounting(ids: list[str], expected: dict[str, list[str]], timeout: float = 60.0) -> dict[str, list[str]]:
    """``sacct``'s JobName, State and ExitCode of each job id, polled until they equal ``expected`` or
    ``timeout`` passes (slurmdbd records a job's name and end a moment after squeue forgets it)."""
    deadline = time.monotonic() + timeout
    while True:
        listing = subprocess.run(
            ["sacct", "--allocations", "--parsable2", "--noheader", f"--jobs={','.join(ids)}",
             "--format=JobID,JobName,State,ExitCode"], capture_output=True, text=True, timeout=60, check=True)
        rows = {line.split("|")[0]: line.split("|")[1:] for line in listing.stdout.splitlines() if line}
        if rows == expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_seed_workflow_on_the_real_slurm(tmp_path: Path, amqp_url: str, amqp_prefix: str,
                                         seed: SeedFiles) -> None:
    problem = srun_problem()
    if problem:
        pytest.skip(problem)
    standin = seed.bin_dir / "zjetgen90_mpi"
    standin.rename(seed.bin_dir / "zjetgen90_mpi.standin")
    standin.write_text(RANK0_WRAPPER)
    standin.chmod(0o755)
    work = tmp_path / "work-slurm-local"
    # The seed's step 2 asks for 2 nodes x 32 ranks on Vesta and Cobalt's --mode=script; the test cluster
    # has 1 node with 8 CPUs and sbatch knows no --mode: 1 node x 2 ranks, no scheduler_args, 10 minutes.
    step2 = {"nodes": 1, "processes_per_node": 2, "scheduler_args": None, "wall_minutes": 10}
    with start_stack(tmp_path, amqp_url, amqp_prefix, ["slurm-local"]) as stack:
        stack.start_agent("slurm-local", site_options=site_options(seed, work, poll_interval=0.5))
        with grpc.insecure_channel(stack.address) as channel:
            stub = Stub(channel)
            job = seed_job(seed, "slurm-local", "slurm-local", step2)
            job.steps[0].wall_minutes = 10
            job = create(stub, job)
            job = wait_terminal(stub, job.name, timeout=JOB_TIMEOUT)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, step_failures(job)
    step1_dir, step2_dir = step_workdir(work, job, 0), step_workdir(work, job, 1)
    # Slurm job ids, both known to Slurm's accounting as completed jobs named after their step attempt
    ids = [step.scheduler_id for step in job.steps]
    assert all(i.isdigit() for i in ids) and ids[0] != ids[1], ids
    expected = {i: [f"argo-{job_id(job)}-{index}-a1", "COMPLETED", "0:0"] for index, i in enumerate(ids)}
    assert slurm_accounting(ids, expected) == expected
    # step 2 ran under srun with two tasks in its Slurm job; rank 0 did the work
    ranks = sorted(line for line in (step2_dir / "stdout.txt").read_text().splitlines() if line.startswith("rank "))
    assert ranks == [f"rank 0 of 2 in job {ids[1]}", f"rank 1 of 2 in job {ids[1]}"], ranks
    assert (seed.outputs / "alpgen_postsubmit.out").read_text() == f"unweighted {SEED_EVENTS} events on 2 rank(s)\n"
    data_area = stack.state_dir / "data" / job_id(job)
    assert_step2_saw_exactly_step1_outputs(job, seed, step1_dir, step2_dir, data_area)


# --- 3. two sites, the data area on the real GridFTP server -----------------------------------------


def gridftp_server() -> tuple[str, Path]:
    """The anonymous ftp:// GridFTP server and the directory it serves (``.ci/services.env``)."""
    url, root = os.environ.get("ARGO_TEST_GRIDFTP_FTP", ""), os.environ.get("ARGO_TEST_GRIDFTP_FTP_ROOT", "")
    if not (url and root):
        pytest.skip("ARGO_TEST_GRIDFTP_FTP / ARGO_TEST_GRIDFTP_FTP_ROOT not set: no GridFTP server "
                    "(scripts/services/gridftp start, then source .ci/services.env)")
    return url.rstrip("/"), Path(root)


@pytest.fixture
def gridftp_area() -> Iterator[tuple[str, Path]]:
    """A fresh directory in the GridFTP server's world-writable data dir: its ftp:// URL and local path."""
    url, root = gridftp_server()
    name = f"cross-site-{uuid.uuid4().hex[:10]}"
    yield f"{url}{root}/{name}/", root / name
    # the server writes as its own unprivileged user: what we may not delete stays (as in the plugin's tests)
    shutil.rmtree(root / name, ignore_errors=True)


def test_two_sites_exchange_data_through_the_gridftp_data_area(
        tmp_path: Path, amqp_url: str, amqp_prefix: str, seed: SeedFiles,
        gridftp_area: tuple[str, Path]) -> None:
    data_root, data_dir = gridftp_area
    local_work, other_work = tmp_path / "work-local", tmp_path / "work-othersite"
    # short backoff so a transient server hiccup retries quickly instead of stalling the test
    gridftp = {"gridftp": {"retries": 3, "backoff_seconds": 0.5, "parallel_streams": 2}}
    with start_stack(tmp_path, amqp_url, amqp_prefix, ["local", "othersite"], data_root=data_root) as stack:
        stack.start_agent("local", site_options=site_options(seed, local_work, options=gridftp))
        # no plugin offers "othersite": the configuration gives its whole profile, a local scheduler
        stack.start_agent("othersite", site_options=site_options(
            seed, other_work, scheduler="local", launch_style="plain", options=gridftp))
        with grpc.insecure_channel(stack.address) as channel:
            stub = Stub(channel)
            job = create(stub, seed_job(seed, "local", "othersite"))
            assert job.data_url == f"{data_root}{job_id(job)}/"
            job = wait_terminal(stub, job.name, timeout=JOB_TIMEOUT)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, step_failures(job)
    assert [s.target_site for s in job.steps] == ["local", "othersite"]
    step1_dir, step2_dir = step_workdir(local_work, job, 0), step_workdir(other_work, job, 1)
    assert not (other_work / job_id(job) / "0").exists() and not (local_work / job_id(job) / "1").exists()
    data_area = data_dir / job_id(job)
    # the data area is the GridFTP server's directory: every output of both steps was stored there
    stored = sorted(p.name for p in data_area.iterdir())
    assert stored == sorted([*job.steps[0].output_files, *job.steps[1].output_files]), stored
    for grid in GRIDS:
        # separate copies (not links to one file): the bytes really went through the server
        assert not os.path.samefile(step1_dir / grid, step2_dir / grid)
    assert_step2_saw_exactly_step1_outputs(job, seed, step1_dir, step2_dir, data_area)


# --- 4. names that leave the working directory or the data area --------------------------------------

ESCAPING_NAMES = ["../../etc/passwd", "/etc/passwd", "grids/../../../outside.txt"]


def bad_request_fields(error: grpc.RpcError) -> dict[str, str]:
    """Field path → description of the BadRequest detail of a refused call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    fields: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.update({v.field: v.description for v in bad.field_violations})
    return fields


def test_server_refuses_escaping_file_names_before_anything_is_dispatched(
        tmp_path: Path, amqp_url: str, amqp_prefix: str, seed: SeedFiles) -> None:
    work = tmp_path / "work-local"
    secret = tmp_path / "secret.txt"
    secret.write_text("nobody may stage this\n")
    with start_stack(tmp_path, amqp_url, amqp_prefix, ["local"]) as stack:
        stack.start_agent("local", site_options=site_options(seed, work))
        with grpc.insecure_channel(stack.address) as channel:
            stub = Stub(channel)
            job = seed_job(seed, "local", "local")
            job.input_url = tmp_path.as_uri() + "/inputs/"
            del job.steps[0].input_files[:]
            job.steps[0].input_files.extend(["alpout.input.0", *ESCAPING_NAMES])
            job.steps[1].output_files.append("../../secret.txt")
            with pytest.raises(grpc.RpcError) as refused:
                stub.CreateJob(svc.CreateJobRequest(job=job))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            fields = bad_request_fields(refused.value)
            # every offending name at once, each under its own field path; the good one is not named
            offending = {f"job.steps[0].input_files[{i}]" for i in (1, 2, 3)}
            offending.add(f"job.steps[1].output_files[{len(job.steps[1].output_files) - 1}]")
            assert set(fields) == offending, fields
            assert stub.ListJobs(svc.ListJobsRequest()).jobs == []
            # a good job afterwards runs: the agent was there and would have received the bad one
            good = wait_terminal(stub, create(stub, seed_job(seed, "local", "local")).name, timeout=JOB_TIMEOUT)
            assert good.state == job_pb2.JOB_STATE_SUCCEEDED, step_failures(good)
    assert [p.name for p in work.iterdir() if not p.name.startswith(".")] == [job_id(good)]
    assert secret.read_text() == "nobody may stage this\n"
    assert not (tmp_path / "outside.txt").exists()


# The agent is the site's last line of defence: an assignment that did not come through the server's
# validation (a compromised or buggy server, a forged message) is refused by the agent process itself.


@pytest.fixture
def lone_agent(tmp_path: Path, amqp_url: str, amqp_prefix: str, seed: SeedFiles
               ) -> Iterator[tuple[LocalStack, AssignmentPublisher, ReportCollector]]:
    """A ``local`` agent process with no server: the test publishes assignments and reads the reports."""
    stack = LocalStack(tmp_path / "stack", amqp_url=amqp_url, amqp_prefix=amqp_prefix)
    # the collector's queue exists before the agent reports anything, so no report is lost
    reports = ReportCollector(amqp_url, amqp_prefix)
    publisher = AssignmentPublisher(amqp_url, amqp_prefix)
    try:
        stack.start_agent("local", site_options=site_options(
            seed, tmp_path / "work-local",
            options={"gridftp": {"retries": 0, "backoff_seconds": 0.1}}))
        # a heartbeat means the agent declared its assignment queue: publishing now cannot be lost
        assert reports.wait_for(lambda _: bool(reports.heartbeats), timeout=60), "the agent never reported"
        yield stack, publisher, reports
    finally:
        stack.stop()
        publisher.close()
        reports.close()


def test_agent_refuses_names_that_leave_the_working_directory(
        tmp_path: Path, seed: SeedFiles, lone_agent: tuple[LocalStack, AssignmentPublisher, ReportCollector]) -> None:
    _, publisher, reports = lone_agent
    work = tmp_path / "work-local"
    secret = tmp_path / "secret.txt"
    secret.write_text("nobody may stage this\n")
    outside = tmp_path / "data" / "leak.txt"
    # attempt's job id → (the escaping name, the assignment's files)
    cases: dict[str, tuple[str, dict[str, object]]] = {
        "in-escape": ("../../stolen.txt", {"inputs": {"../../stolen.txt": secret.as_uri()}}),
        "in-absolute": (str(tmp_path / "stolen.txt"), {"inputs": {str(tmp_path / "stolen.txt"): secret.as_uri()}}),
        "out-escape": ("../../../leak.txt", {"outputs": {"../../../leak.txt": [outside.as_uri()]}}),
    }
    for name, (_, files) in cases.items():
        publisher.publish(make_assignment(job_id=name, site="local", executable="zjetgen90_mpi",
                                          args=["alpout.input.0"], **files))  # type: ignore[arg-type]
    for name, (bad, _) in cases.items():
        refused = reports.wait_state(f"{name}/0", "REJECTED", timeout=60)
        assert bad in refused.reason and "refused" in refused.reason, refused.reason
        # refused before any byte moved: the attempt never got a working directory
        assert not (work / name).exists()
        assert "STAGING_IN" not in reports.states(f"{name}/0")
    assert not (work / "stolen.txt").exists() and not (tmp_path / "stolen.txt").exists()
    assert not outside.exists()


def wait_refused(reports: ReportCollector, step_id: str) -> status_pb2.StatusUpdate:
    """The REJECTED or FAILED update of ``step_id`` (fails the test when it succeeds or times out)."""
    ended = ("REJECTED", "FAILED", "SUCCEEDED", "CANCELLED")
    assert reports.wait_for(lambda _: any(s in ended for s in reports.states(step_id)), timeout=60), \
        f"{step_id} never ended: {reports.states(step_id)}"
    last = reports.for_step(step_id)[-1]
    assert reports.states(step_id)[-1] in ("REJECTED", "FAILED"), (reports.states(step_id), last.reason)
    return last


def test_agent_refuses_urls_that_leave_the_gridftp_data_area(
        tmp_path: Path, seed: SeedFiles, gridftp_area: tuple[str, Path],
        lone_agent: tuple[LocalStack, AssignmentPublisher, ReportCollector]) -> None:
    area_url, area_dir = gridftp_area
    _, publisher, reports = lone_agent
    work = tmp_path / "work-local"
    # a real file two levels above the job's data area on the server, which a '..' URL would reach
    upload = subprocess.run(["globus-url-copy", "-cd", (seed.inputs / "cteq6l1.tbl").as_uri(),
                             f"{area_url}secret.tbl"], capture_output=True, text=True, timeout=60)
    assert upload.returncode == 0, upload.stderr
    assert (area_dir / "secret.tbl").is_file()
    publisher.publish(make_assignment(
        job_id="url-in", site="local", executable="zjetgen90_mpi", args=["alpout.input.0"],
        inputs={"alpout.input.0": f"{area_url}url-in/../secret.tbl"}))
    publisher.publish(make_assignment(
        job_id="url-out", site="local", executable="zjetgen90_mpi", args=["alpout.input.0"],
        inputs={"alpout.input.0": (seed.inputs / "alpout.input.0").as_uri(),
                "cteq6l1.tbl": (seed.inputs / "cteq6l1.tbl").as_uri()},
        outputs={"alpout.grid1": [f"{area_url}url-out/%2e%2e/escaped.grid1"]}))
    # refused at acceptance (REJECTED) or by the transfer before it starts (FAILED in that phase)
    fetch = wait_refused(reports, "url-in/0")
    assert fetch.failed_phase in (job_pb2.STEP_PHASE_UNSPECIFIED, job_pb2.STEP_PHASE_STAGE_IN), fetch
    assert "data area" in fetch.reason, fetch.reason
    assert not (work / "url-in" / "0" / "1" / "alpout.input.0").exists()
    assert "SUBMITTED" not in reports.states("url-in/0")
    store = wait_refused(reports, "url-out/0")
    assert store.failed_phase in (job_pb2.STEP_PHASE_UNSPECIFIED, job_pb2.STEP_PHASE_STAGE_OUT), store
    assert "data area" in store.reason, store.reason
    # not one byte of the step's output reached the server
    assert sorted(p.name for p in area_dir.iterdir()) == ["secret.tbl"]


def test_agent_refuses_file_urls_that_leave_the_data_area(
        tmp_path: Path, seed: SeedFiles, lone_agent: tuple[LocalStack, AssignmentPublisher, ReportCollector]) -> None:
    _, publisher, reports = lone_agent
    area = tmp_path / "data" / "url-file"
    area.mkdir(parents=True)
    escaped = tmp_path / "escaped.grid1"
    publisher.publish(make_assignment(
        job_id="url-file", site="local", executable="zjetgen90_mpi", args=["alpout.input.0"],
        inputs={"alpout.input.0": (seed.inputs / "alpout.input.0").as_uri(),
                "cteq6l1.tbl": (seed.inputs / "cteq6l1.tbl").as_uri()},
        outputs={"alpout.grid1": [f"{area.as_uri()}/../../escaped.grid1"]}))
    wait_refused(reports, "url-file/0")
    assert not escaped.exists(), "stage-out wrote outside the job's data area"
