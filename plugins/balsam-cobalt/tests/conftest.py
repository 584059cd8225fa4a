"""Fixtures of the Cobalt plugin's tests: the Cobalt simulator on PATH, a site profile, launch specs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from balsam_cobalt.profiles import MIRA, TUKEY, VESTA
from balsam_cobalt.simulator import install

from balsam_agent.records import SiteProfile
from balsam_agent.scheduler import LaunchSpec


@dataclass
class CobaltSim:
    """The simulator installed for one test."""

    bin_dir: Path
    state_dir: Path
    root: Path

    def profile(self, base: SiteProfile, **options: object) -> SiteProfile:
        """The given site profile with a work root and log directory inside the test's tmp_path."""
        merged = {"cobaltlog_dir": str(self.root / "logs"), "command_backoff": 0.05, **options}
        return replace(base, work_root=str(self.root / "work"), options=merged)

    def spec(self, name: str, argv: list[str], **fields: object) -> LaunchSpec:
        """A launch spec with its working directory created."""
        workdir = self.root / "work" / name
        workdir.mkdir(parents=True, exist_ok=True)
        defaults: dict[str, object] = dict(
            job_name=name, argv=tuple(argv), workdir=workdir, nodes=1, processes_per_node=1,
            wall_minutes=5, stdout_path=workdir / "stdout.txt", stderr_path=workdir / "stderr.txt",
        )
        defaults.update(fields)
        return LaunchSpec(**defaults)  # type: ignore[arg-type]


@pytest.fixture
def cobalt_sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CobaltSim]:
    """Puts the Cobalt simulator first on PATH with its state under tmp_path; kills leftovers after."""
    sim = CobaltSim(install(tmp_path / "bin"), tmp_path / "cobalt-state", tmp_path)
    monkeypatch.setenv("PATH", f"{sim.bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("COBALT_SIM_DIR", str(sim.state_dir))
    monkeypatch.setenv("COBALT_SIM_SECONDS_PER_MINUTE", "60")
    monkeypatch.setenv("COBALT_SIM_QUEUE_SECONDS", "0")
    yield sim
    # Only processes this test started: the runners and tasks the simulator recorded.
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((sim.state_dir / "state.json").read_text())
        for job in state["jobs"].values():
            if job.get("task_pid"):
                with contextlib.suppress(OSError):
                    os.killpg(job["task_pid"], signal.SIGKILL)
            if job.get("runner_pid"):
                with contextlib.suppress(OSError):
                    os.kill(job["runner_pid"], signal.SIGKILL)


@pytest.fixture
def profiles() -> dict[str, SiteProfile]:
    """The plugin's profiles by name."""
    return {p.name: p for p in (MIRA, VESTA, TUKEY)}
