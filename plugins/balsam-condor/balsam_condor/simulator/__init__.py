"""A faithful command-line SIMULATOR of HTCondor, for tests (this is not HTCondor).

HTCondor's daemons cannot run here, so ``bin/`` holds stand-ins for ``condor_submit``,
``condor_submit_dag``, ``condor_q``, ``condor_history``, ``condor_rm``, ``condor_hold`` and
``condor_release`` that take the same options the backend uses, print what the real tools print
(``1 job(s) submitted to cluster N.``, ClassAd JSON, the real error wording), keep the queue and the
history in ``$CONDOR_SIM_DIR/state.json`` under a file lock, really run each job in the background in
its ``initialdir``, write the job event log, enforce ``periodic_remove``, and run a DAG's node jobs
one after another in dependency order. Not simulated: matchmaking, file transfer (state 6),
suspension (state 7), DAG retries and rescue DAGs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from balsam_condor.simulator.state import locked

#: Directory holding the simulated tools; put it first on PATH.
BIN_DIR = Path(__file__).parent / "bin"


def environment(sim_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which ``condor_*`` resolve to the simulator, keeping state in ``sim_dir``."""
    env = dict(os.environ if base is None else base)
    # The tools are Python scripts: the interpreter running this code (with this package) first.
    path = [str(BIN_DIR), str(Path(sys.executable).parent), env.get("PATH", os.defpath)]
    env["PATH"] = os.pathsep.join(path)
    env["CONDOR_SIM_DIR"] = str(sim_dir)
    return env


def inject_fault(sim_dir: Path, command: str, mode: str, count: int = 1) -> None:
    """Makes the next ``count`` runs of ``command`` fail: ``fail`` (exit 1 with the real tools'
    connection error), ``garbage`` (exit 0, unparsable output) or ``hang`` (never answers)."""
    if mode not in ("fail", "garbage", "hang"):
        raise ValueError(f"unknown fault mode {mode!r}")
    with locked(sim_dir) as state:
        state.setdefault("faults", {})[command] = {"mode": mode, "count": count}


def shutdown(sim_dir: Path) -> None:
    """Kills every background runner and job of a simulated pool (test teardown)."""
    if not (sim_dir / "state.json").exists():
        return
    with locked(sim_dir) as state:
        pids = list(state.get("runners", {}).values())
        pids += [p["pid"] for p in state.get("private", {}).values() if p.get("pid")]
        state["runners"] = {}
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def read_state(sim_dir: Path) -> dict:
    """The simulator's state (queue, history), for tests."""
    path = sim_dir / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}
