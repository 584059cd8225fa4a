"""Fixtures of the HTCondor plugin's tests: a simulated pool and a backend bound to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from balsam_condor import simulator
from balsam_condor.backend import CondorScheduler

from balsam_agent.records import SiteProfile

DATA = Path(__file__).parent / "data"


def sample(name: str) -> str:
    """A captured sample without its leading ``#`` source comment."""
    lines = (DATA / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


@pytest.fixture
def condor_sample() -> Callable[[str], str]:
    """Reads a captured sample from tests/data (without its source comment)."""
    return sample


@pytest.fixture
def condor_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A simulated HTCondor pool: its tools first on PATH, its state under tmp_path."""
    sim_dir = tmp_path / "condor-sim"
    for name, value in simulator.environment(sim_dir).items():
        if name in ("PATH", "CONDOR_SIM_DIR"):
            monkeypatch.setenv(name, value)
    yield sim_dir
    simulator.shutdown(sim_dir)


@pytest.fixture
def condor(condor_pool: Path) -> CondorScheduler:
    """The backend with short timeouts and backoff, so failure tests stay fast."""
    site = SiteProfile(name="argo_cluster", scheduler="condor", launch_style="condor",
                       options={"command_timeout": 5, "command_attempts": 3, "command_backoff": 0.05})
    return CondorScheduler(site)
