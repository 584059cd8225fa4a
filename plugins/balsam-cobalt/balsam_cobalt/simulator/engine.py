"""State store of the Cobalt simulator: one JSON file under ``$COBALT_SIM_DIR``, guarded by ``flock``."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DIR_ENV = "COBALT_SIM_DIR"
SCALE_ENV = "COBALT_SIM_SECONDS_PER_MINUTE"
QUEUE_ENV = "COBALT_SIM_QUEUE_SECONDS"
USER_ENV = "COBALT_SIM_USER"
FIRST_JOB_ID = 100000


class SimulatorError(Exception):
    """The simulator is misconfigured (no ``$COBALT_SIM_DIR``)."""


def sim_dir() -> Path:
    """The simulator's state directory."""
    value = os.environ.get(DIR_ENV, "")
    if not value:
        raise SimulatorError(f"{DIR_ENV} is not set")
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def current_user() -> str:
    """The owner of submitted jobs."""
    return os.environ.get(USER_ENV) or getpass.getuser()


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
            state = {"next_id": FIRST_JOB_ID, "jobs": {}}
        yield state
        tmp = directory / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, path)


def utc_stamp(when: float | None = None) -> str:
    """A timestamp as Cobalt writes it in ``.cobaltlog`` files."""
    return time.strftime("%a %b %d %H:%M:%S %Y +0000 (UTC)", time.gmtime(when))


def append_cobaltlog(job: dict[str, Any], message: str) -> None:
    """Appends one ``Info:`` line to the job's ``.cobaltlog``."""
    path = Path(job["cobaltlog"])
    with contextlib.suppress(OSError), open(path, "a") as handle:
        handle.write(f"{utc_stamp()} Info: {message}\n")


def seconds_per_minute() -> float:
    """Walltime scale: how many real seconds one requested minute lasts."""
    try:
        return float(os.environ.get(SCALE_ENV, "60"))
    except ValueError:
        return 60.0
