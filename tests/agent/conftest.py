"""Fixtures of the agent tests: a site whose allowed directory holds small test programs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from balsam_agent.testing import AgentHarness


@pytest.fixture(autouse=True)
def _only_builtin_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every agent in these tests loads only the built-ins and the plugins a test names (per test, so the
    setting does not leak into other test directories)."""
    monkeypatch.setenv("BALSAM_DISABLE_PLUGIN_AUTOLOAD", "1")

PROGRAMS = {
    # Appends one line per run to count.txt: tests check a program ran exactly once.
    "count": "#!/bin/sh\necho \"$ARGO_JOB_ID $ARGO_STEP_INDEX $ARGO_ATTEMPT\" >> \"$1\"\n",
    "fail": "#!/bin/sh\necho failing >&2\nexit ${1:-3}\n",
    "sleep": "#!/bin/sh\nexec sleep \"$1\"\n",
    # Reads in.txt, writes out.txt, reports its environment.
    "transform": ("#!/bin/sh\ntr a-z A-Z < in.txt > out.txt\n"
                  "echo \"$ARGO_JOB_ID $ARGO_STEP_INDEX $ARGO_ATTEMPT $ARGO_NUM_EVTS $ARGO_RANKS\" > env.txt\n"),
    "true": "#!/bin/sh\nexit 0\n",
}


@pytest.fixture
def exec_dir(tmp_path: Path) -> Path:
    """The site's allowed executable directory with the test programs."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, text in PROGRAMS.items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
    return directory


@pytest.fixture
def local_agent(balsam_agent: Callable[..., AgentHarness], exec_dir: Path) -> Callable[..., AgentHarness]:
    """Factory of a local-site agent allowed to run the test programs."""

    def start(site_options: dict[str, Any] | None = None, **kwargs: Any) -> AgentHarness:
        options = {"allowed_exec_dir": str(exec_dir), "poll_interval": 0.2}
        options.update(site_options or {})
        return balsam_agent("local", site_options=options, **kwargs)

    return start


@pytest.fixture
def python_exe() -> str:
    """The interpreter running the tests (for subprocess agents)."""
    return sys.executable
