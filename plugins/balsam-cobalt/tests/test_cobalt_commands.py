"""Cobalt argv builders and script renderers: mira (--mode cN / script), vesta (runjob), tukey (mpirun)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from balsam_cobalt import commands
from balsam_cobalt.backend import CobaltScheduler
from balsam_cobalt.profiles import MIRA, TUKEY, VESTA

from balsam_agent.records import SiteProfile
from balsam_agent.scheduler import LaunchSpec, SchedulerError


def _spec(tmp_path: Path, **fields: object) -> LaunchSpec:
    base: dict[str, object] = dict(
        job_name="argo-j1-1-a1", argv=("/opt/alpgen/bin/zjetgen", "--events", "1000"), workdir=tmp_path,
        nodes=4, processes_per_node=16, wall_minutes=60, env={"ARGO_JOB_ID": "j1"},
    )
    base.update(fields)
    return LaunchSpec(**base)  # type: ignore[arg-type]


def _site(base: SiteProfile, tmp_path: Path) -> SiteProfile:
    return replace(base, project="ATLAS-HEP", queue="prod", options={"cobaltlog_dir": str(tmp_path / "logs")})


def test_mira_lets_cobalt_start_runjob_with_mode_cn(tmp_path: Path) -> None:
    argv, script = CobaltScheduler(_site(MIRA, tmp_path)).build_submit(_spec(tmp_path))
    assert script is None
    assert argv[:10] == ["qsub", "-n", "4", "-t", "60", "-A", "ATLAS-HEP", "-q", "prod", "--mode"]
    assert argv[10] == "c16"
    assert argv[argv.index("--jobname") + 1] == "argo-j1-1-a1"
    assert argv[argv.index("-O") + 1] == str(tmp_path / "argo-j1-1-a1")
    assert argv[argv.index("--cwd") + 1] == str(tmp_path)
    assert argv[argv.index("--debuglog") + 1] == str(tmp_path / "logs" / "$jobid.cobaltlog")
    assert argv[argv.index("--env") + 1] == "ARGO_JOB_ID=j1"
    assert argv[-3:] == ["/opt/alpgen/bin/zjetgen", "--events", "1000"]


def test_mira_uses_script_mode_when_the_step_asks_with_the_seeds_spelling(tmp_path: Path) -> None:
    spec = _spec(tmp_path, scheduler_args=("--mode=script",))
    argv, script = CobaltScheduler(_site(MIRA, tmp_path)).build_submit(spec)
    assert argv[argv.index("--mode") + 1] == "script"
    assert argv.count("--mode") == 1
    assert argv[-1] == str(tmp_path / "argo-j1-1-a1.cobalt.sh")
    assert script is not None and "runjob --np 64 -p 16 --block \"$COBALT_PARTNAME\"" in script


def test_vesta_always_runs_a_runjob_script(tmp_path: Path) -> None:
    argv, script = CobaltScheduler(_site(VESTA, tmp_path)).build_submit(_spec(tmp_path))
    assert argv[argv.index("--mode") + 1] == "script"
    assert script is not None
    assert "--envs ARGO_JOB_ID=j1 : /opt/alpgen/bin/zjetgen --events 1000" in script


def test_tukey_runs_an_explicit_mpirun(tmp_path: Path) -> None:
    argv, script = CobaltScheduler(_site(TUKEY, tmp_path)).build_submit(_spec(tmp_path, processes_per_node=3))
    assert argv[argv.index("--mode") + 1] == "script"
    assert script is not None and "mpirun -n 12 /opt/alpgen/bin/zjetgen --events 1000" in script


def test_ranks_per_node_must_be_a_bgq_mode(tmp_path: Path) -> None:
    with pytest.raises(SchedulerError, match="BG/Q mode") as info:
        CobaltScheduler(_site(MIRA, tmp_path)).build_submit(_spec(tmp_path, processes_per_node=3))
    assert not info.value.transient


def test_seed_scheduler_args_are_normalised_and_others_kept() -> None:
    args = commands.normalise_scheduler_args(["--mode=script", "--attrs", "mcdram=cache"])
    assert args == ["--mode", "script", "--attrs", "mcdram=cache"]
    assert commands.requested_mode(args) == "script"
    assert commands.without_mode(args) == ["--attrs", "mcdram=cache"]


def test_env_values_escape_colons_and_equals() -> None:
    assert commands.env_option({"B": "x=1:y=2", "A": "plain"}) == "A=plain:B=x\\=1\\:y\\=2"
    with pytest.raises(SchedulerError):
        commands.env_option({"BAD NAME": "1"})


def test_script_words_are_quoted_so_hostile_arguments_reach_the_program_intact(tmp_path: Path) -> None:
    hostile = ("/bin/prog", "a b", "$(touch pwned)", "'; rm -rf ~ #", "*")
    spec = _spec(tmp_path, argv=hostile, nodes=1, processes_per_node=1, env={"V": "$HOME x"})
    script = commands.runjob_script(spec)
    fake = tmp_path / "bin"
    fake.mkdir()
    runjob = fake / "runjob"
    runjob.write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n")
    runjob.chmod(0o755)
    script_path = tmp_path / "job.sh"
    script_path.write_text(script)
    out = subprocess.run(["bash", str(script_path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "COBALT_PARTNAME": "BLK-1"})
    words = out.stdout.splitlines()
    assert words[words.index("--block") + 1] == "BLK-1"
    assert words[words.index(":") + 1:] == list(hostile)
    assert "V=$HOME x" in words
    assert not (tmp_path / "pwned").exists()
