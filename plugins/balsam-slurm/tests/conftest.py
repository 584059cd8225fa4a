"""Fixtures of the Slurm plugin's tests: whether the real single-node Slurm of this machine works."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(scope="session")
def require_slurm() -> None:
    """Skips the test, saying why, unless ``srun -N1 -n1 true`` works (``scripts/services/slurm start``)."""
    try:
        probe = subprocess.run(["srun", "-N1", "-n1", "-J", "argo-slurm-probe", "true"],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no working Slurm here (srun -N1 -n1 true: {exc}); run scripts/services/slurm start")
    if probe.returncode != 0:
        pytest.skip(f"no working Slurm here (srun -N1 -n1 true exited {probe.returncode}: "
                    f"{probe.stderr.strip()[:200]}); run scripts/services/slurm start")
