"""State store of the PBS simulator: one JSON file under ``$PBS_SIM_DIR``, guarded by ``flock``."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class SimulatorError(Exception):
    """The simulator is misconfigured."""


def sim_dir() -> Path:
    """The simulator's state directory."""
    value = os.environ.get("PBS_SIM_DIR", "")
    if not value:
        raise SimulatorError("PBS_SIM_DIR is not set")
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def server() -> str:
    """The simulated server name (the id suffix)."""
    return os.environ.get("PBS_SIM_SERVER", "polaris-pbs-01")


def owner() -> str:
    """``Job_Owner``: user@host."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def seconds_per_minute() -> float:
    """Walltime scale."""
    try:
        return float(os.environ.get("PBS_SIM_SECONDS_PER_MINUTE", "60"))
    except ValueError:
        return 60.0


@contextlib.contextmanager
def locked_state() -> Iterator[dict[str, Any]]:
    """Yields the state (``{"next_id": int, "jobs": {id: job}}``) under an exclusive lock, then saves it."""
    directory = sim_dir()
    with open(directory / "state.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = directory / "state.json"
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            state = {"next_id": 4000, "jobs": {}}
        yield state
        tmp = directory / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, path)
