"""Helpers of the cross-site end-to-end tests: the seed workflow, simulated schedulers, the GridFTP area.

Every site runs in its own ``balsam-agent`` process started by :class:`LocalStack`; what differs per
site is the environment handed to that process (a simulator's commands first on PATH) and its site
options (its own working root, a short poll interval).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from argo_client.demo import SEED_INPUTS, seed_submission
from argo_client.legacy import job_from_legacy
from argobalsam.argo.v1 import job_pb2

#: Step 1 of the seed writes these; step 2 reads them.
GRIDS = ("alpout.grid1", "alpout.grid2")
#: Everything step 2 must find in its working directory before it runs.
STEP2_INPUTS = ("alpout.input.1", "alpout.input.2", "cteq6l1.tbl", *GRIDS)
#: Events the seed's step 2 asks for (its last executable argument).
SEED_EVENTS = 32


@dataclass(frozen=True)
class SeedFiles:
    """Where one test keeps the seed workflow's program, inputs and outputs."""

    bin_dir: Path
    inputs: Path
    outputs: Path


def prepare_seed(root: Path) -> SeedFiles:
    """Installs the stand-in ``zjetgen90_mpi`` into ``root/site-bin`` and the seed's inputs into
    ``root/inputs``; ``root/outputs`` is the job's output_url."""
    files = SeedFiles(root / "site-bin", root / "inputs", root / "outputs")
    for directory in (files.bin_dir, files.inputs):
        directory.mkdir(parents=True, exist_ok=True)
    program = resources.files("argo_client").joinpath("demo_programs/zjetgen90_mpi")
    target = files.bin_dir / "zjetgen90_mpi"
    target.write_bytes(program.read_bytes())
    target.chmod(0o755)
    for name, text in SEED_INPUTS.items():
        (files.inputs / name).write_text(text)
    return files


def seed_job(files: SeedFiles, site1: str, site2: str,
             step2_overrides: Mapping[str, Any] | None = None) -> job_pb2.Job:
    """The seed's own submission (``argo_client/examples/seed_submission.json``) mapped as the client
    maps it, with step 1 on ``site1``, step 2 on ``site2`` and the test's input and output URLs."""
    submission = seed_submission()
    submission["input_url"] = files.inputs.as_uri() + "/"
    submission["output_url"] = files.outputs.as_uri() + "/"
    submission["jobs"][0]["target_site"] = site1
    submission["jobs"][1]["target_site"] = site2
    submission["jobs"][1].update(step2_overrides or {})
    return job_from_legacy(submission)


def job_id(job: job_pb2.Job) -> str:
    """``jobs/abc`` → ``abc``."""
    return job.name.removeprefix("jobs/")


def step_workdir(work_root: Path, job: job_pb2.Job, index: int) -> Path:
    """The working directory the agent made for a step's current attempt (``<root>/<job>/<step>/<attempt>``)."""
    return work_root / job_id(job) / str(index) / str(job.steps[index].attempt)


def event_digest(directory: Path) -> str:
    """The digest the stand-in writes into every event of ``alpout.unw``: a hash of exactly the bytes of
    step 2's inputs (``zjetgen90_mpi``'s ``digest``), recomputed here from the files in ``directory``."""
    h = hashlib.sha256()
    for name in ("alpout.input.1", "alpout.input.2", "cteq6l1.tbl", *GRIDS):
        h.update((directory / name).read_bytes())
    return h.hexdigest()[:16]


def step_failures(job: job_pb2.Job) -> str:
    """The steps' states and reasons, for assertion messages."""
    return "; ".join(f"step {s.index} on {s.target_site}: {job_pb2.StepState.Name(s.state)} {s.state_reason!r}"
                     for s in job.steps)


# --- simulated schedulers -------------------------------------------------------------------------


def condor_environment(sim_dir: Path) -> dict[str, str]:
    """Environment of an ``argo_cluster`` agent process: the HTCondor simulator's tools first on PATH."""
    from balsam_condor import simulator

    env = simulator.environment(sim_dir)
    return {"PATH": env["PATH"], "CONDOR_SIM_DIR": env["CONDOR_SIM_DIR"]}


def condor_cluster_ids(sim_dir: Path) -> list[int]:
    """ClusterIds of the jobs the HTCondor simulator ran to completion (its history)."""
    from balsam_condor import simulator

    return [int(ad["ClusterId"]) for ad in simulator.read_state(sim_dir).get("history", [])]


def stop_condor(sim_dir: Path) -> None:
    """Kills whatever the HTCondor simulator still runs (teardown)."""
    from balsam_condor import simulator

    simulator.shutdown(sim_dir)


def cobalt_environment(root: Path) -> dict[str, str]:
    """Environment of a Cobalt (``vesta``) agent process: the Cobalt simulator's commands first on PATH,
    its state in ``root/state``, walltime minutes as real minutes and no queue wait."""
    from balsam_cobalt.simulator import install

    bin_dir = install(root / "bin")
    return {"PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "COBALT_SIM_DIR": str(root / "state"), "COBALT_SIM_SECONDS_PER_MINUTE": "60",
            "COBALT_SIM_QUEUE_SECONDS": "0"}


def cobalt_logs(work_root: Path) -> dict[str, str]:
    """Cobalt job id → its ``.cobaltlog`` text, for every job the site's agent submitted.

    Cobalt forgets a job once it ended (as the simulator does); its ``.cobaltlog`` (written where the
    agent's ``--debuglog`` put it, by default ``<work_root>/.cobaltlogs``) is the record that stays.
    """
    return {path.stem: path.read_text() for path in sorted((work_root / ".cobaltlogs").glob("*.cobaltlog"))}


def stop_cobalt(root: Path) -> None:
    """Kills the runners and tasks the Cobalt simulator recorded (teardown; only what this test started)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        state = json.loads((root / "state" / "state.json").read_text())
        for job in state["jobs"].values():
            if job.get("task_pid"):
                with contextlib.suppress(OSError):
                    os.killpg(job["task_pid"], signal.SIGKILL)
            if job.get("runner_pid"):
                with contextlib.suppress(OSError):
                    os.kill(job["runner_pid"], signal.SIGKILL)
