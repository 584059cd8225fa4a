"""``argo demo``: the quick start. Runs the seed's two-step ALPGEN workflow on this machine.

It starts an embedded ``argo-server`` (SQLite) and a ``balsam-agent`` for the ``local`` site against
the local RabbitMQ broker, submits the seed's own submission (both steps retargeted to ``local``, the
only site on a laptop), shows progress until the job ends, prints where the outputs are, and stops
everything it started. ``zjetgen90_mpi`` is a small stand-in that reads the declared inputs and writes
the declared outputs (``argo_client/demo_programs``); step 2 gets step 1's grids through the job's data
area, exactly as on the production sites.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from argo_client.local_stack import DEFAULT_AMQP_URL, LocalStack, broker_answers

#: Input files of the seed workflow that the user would have put at the job's input_url.
SEED_INPUTS = {
    "alpout.input.0": "zjet grid-phase parameters (demo)\n",
    "alpout.input.1": "zjet event-phase parameters (demo)\n",
    "alpout.input.2": "zjet event-phase seeds (demo)\n",
    "cteq6l1.tbl": "CTEQ6L1 parton distribution table (demo)\n",
}


def seed_submission() -> dict:
    """The seed's submission JSON, as shipped in ``argo_client/examples``."""
    text = resources.files("argo_client").joinpath("examples/seed_submission.json").read_text()
    return json.loads(text)


def prepare(state_dir: Path) -> tuple[Path, Path, dict]:
    """Puts the stand-in program in the site's allowed directory and the inputs at the input URL."""
    bin_dir = state_dir / "site-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    program = resources.files("argo_client").joinpath("demo_programs/zjetgen90_mpi")
    target = bin_dir / "zjetgen90_mpi"
    target.write_bytes(program.read_bytes())
    target.chmod(0o755)
    inputs = state_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for name, text in SEED_INPUTS.items():
        (inputs / name).write_text(text)
    submission = seed_submission()
    submission["input_url"] = inputs.as_uri() + "/"
    submission["output_url"] = (state_dir / "outputs").as_uri() + "/"
    for step in submission["jobs"]:
        step["target_site"] = "local"  # the seed's argo_cluster and vesta are not on this machine
    return bin_dir, inputs, submission


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``argo demo``; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="argo demo", description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL, help="RabbitMQ broker (default: %(default)s)")
    parser.add_argument("--state-dir", type=Path, help="keep state here (default: a temporary directory)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the job")
    args = parser.parse_args(argv)

    from argo_client.client import ArgoClient
    from argo_client.legacy import job_from_legacy

    if not broker_answers(args.amqp_url):
        print(f"argo demo: no RabbitMQ broker answers at {args.amqp_url}; scripts/demo.sh installs and "
              "starts one", file=sys.stderr)
        return 4
    keep = args.state_dir is not None
    state_dir = (args.state_dir or Path(tempfile.mkdtemp(prefix="argo-demo-"))).resolve()
    bin_dir, _, submission = prepare(state_dir)
    print(f"state directory: {state_dir}")
    with LocalStack(state_dir, amqp_url=args.amqp_url, sites=["local"]) as stack:
        stack.start_server()
        print(f"argo-server listening on {stack.address} (SQLite {state_dir / 'argo.db'})")
        stack.start_agent("local", site_options={"allowed_exec_dir": str(bin_dir),
                                                 "work_root": str(state_dir / "work")})
        print("balsam-agent started for site 'local'")
        client = ArgoClient(stack.address)
        job = client.create_job(job_from_legacy(submission))
        print(f"submitted {job.name}: {len(job.steps)} steps (seed ALPGEN workflow)")
        job = follow(client, job.name, args.timeout)
    outcome = job_state_name(job.state)
    print(f"{job.name} {outcome}")
    if outcome != "SUCCEEDED":
        for step in job.steps:
            if step.state_reason:
                print(f"  step {step.index}: {step.state_reason}", file=sys.stderr)
        return 1
    print(f"outputs in the job's data area: {job.data_url}")
    print(f"and at its output_url:          {submission['output_url']}")
    for name in job.steps[-1].output_files:
        print(f"  {name}")
    if not keep:
        print("(the state directory is temporary: pass --state-dir to keep it)")
        shutil.rmtree(state_dir / "agents", ignore_errors=True)
    return 0


def job_state_name(state: int) -> str:
    """``JOB_STATE_SUCCEEDED`` → ``SUCCEEDED``."""
    from argobalsam.argo.v1 import job_pb2

    return job_pb2.JobState.Name(state).removeprefix("JOB_STATE_")


def follow(client, name: str, timeout: float):  # type: ignore[no-untyped-def]
    """Prints every step's state change (from the WatchJobs stream) until the job ends; returns the job."""
    from argobalsam.argo.v1 import job_pb2

    for update in client.watch(name, timeout=timeout):
        event = update.event
        if not update.HasField("event"):  # the snapshot the stream starts with
            for step in update.job.steps:
                state = job_pb2.StepState.Name(step.state).removeprefix("STEP_STATE_")
                print(f"  step {step.index} ({step.target_site}): {state}")
        elif event.step_index >= 0:
            state = job_pb2.StepState.Name(event.step_state).removeprefix("STEP_STATE_")
            site = f" ({event.site})" if event.site else ""
            why = f": {event.reason}" if event.reason else ""
            print(f"  step {event.step_index}{site}: {state}{why}")
    return client.get_job(name)  # the stream ended at the terminal state
