"""The simulated pool's state: one JSON file under an exclusive file lock."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def empty_state() -> dict[str, Any]:
    """A fresh pool: no jobs, cluster ids from 1."""
    return {"next_cluster": 1, "queue": {}, "history": [], "private": {}, "runners": {},
            "faults": {}}


@contextmanager
def locked(sim_dir: Path) -> Iterator[dict[str, Any]]:
    """Yields the state under the lock and writes it back atomically unless the block raised."""
    sim_dir.mkdir(parents=True, exist_ok=True)
    with open(sim_dir / "state.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = sim_dir / "state.json"
        state = json.loads(path.read_text()) if path.exists() else empty_state()
        yield state
        tmp = path.with_name("state.json.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)
