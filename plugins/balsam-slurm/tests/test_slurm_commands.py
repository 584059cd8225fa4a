"""Argv builders and the batch script: directives only for set values, quoting, refused arguments."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from pathlib import Path

import pytest
from balsam_slurm.commands import (
    check_scheduler_args,
    directive_value,
    format_walltime,
    launch_argv,
    render_script,
    sacct_argv,
    sbatch_argv,
    squeue_argv,
)
from balsam_slurm.profiles import EDISON, PERLMUTTER, SLURM_LOCAL

from balsam_agent.scheduler import LaunchSpec, SchedulerError


def make_spec(workdir: Path, **fields: object) -> LaunchSpec:
    values: dict[str, object] = dict(job_name="argo-j1-0-a1", argv=("/apps/alpgen", "-n", "10"), workdir=workdir,
                                     nodes=2, processes_per_node=4, wall_minutes=90)
    values.update(fields)
    return LaunchSpec(**values)  # type: ignore[arg-type]


def directives(script: str) -> dict[str, str]:
    found = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            option, _, value = line[len("#SBATCH "):].partition("=")
            found[option] = value
    return found


def test_directives_for_set_values_only(tmp_path: Path) -> None:
    script = render_script(make_spec(tmp_path), SLURM_LOCAL)
    found = directives(script)
    assert found["--job-name"] == "argo-j1-0-a1"
    assert (found["--nodes"], found["--ntasks"], found["--ntasks-per-node"]) == ("2", "8", "4")
    assert found["--time"] == "01:30:00"
    assert found["--partition"] == "debug"
    assert found["--chdir"] == str(tmp_path)
    assert "--account" not in found and "--qos" not in found and "--constraint" not in found


def test_unset_walltime_and_layout_give_no_directive(tmp_path: Path) -> None:
    found = directives(render_script(make_spec(tmp_path, wall_minutes=0, nodes=0, processes_per_node=0),
                                     SLURM_LOCAL))
    assert "--time" not in found and "--nodes" not in found and "--ntasks-per-node" not in found
    assert found["--ntasks"] == "1"


def test_profile_account_qos_constraint(tmp_path: Path) -> None:
    site = dataclasses.replace(PERLMUTTER, project="m1234")
    found = directives(render_script(make_spec(tmp_path), site))
    assert (found["--account"], found["--qos"], found["--constraint"]) == ("m1234", "regular", "cpu")
    assert "--partition" not in found
    assert directives(render_script(make_spec(tmp_path), EDISON))["--partition"] == "regular"


def test_program_runs_under_srun_with_the_ranks(tmp_path: Path) -> None:
    last = render_script(make_spec(tmp_path), SLURM_LOCAL).splitlines()[-1]
    assert shlex.split(last) == ["exec", "srun", "--ntasks=8", "--nodes=2", "--ntasks-per-node=4", "--",
                                 "/apps/alpgen", "-n", "10"]


def test_plain_launch_style_and_unknown_style(tmp_path: Path) -> None:
    plain = dataclasses.replace(SLURM_LOCAL, launch_style="plain")
    assert launch_argv(make_spec(tmp_path), plain) == ["/apps/alpgen", "-n", "10"]
    with pytest.raises(SchedulerError, match="launch style"):
        launch_argv(make_spec(tmp_path), dataclasses.replace(SLURM_LOCAL, launch_style="runjob"))


def test_hostile_words_stay_words_in_the_script(tmp_path: Path) -> None:
    """bash itself reads back the program's argv and the environment unchanged."""
    argv = ("printf", "%s\\n", "a b", "$(touch pwned)", "'quoted'", "`x`;rm -rf /", "\\")
    env = {"ARGO_JOB_ID": "j'1\"$HOME", "ARGO_NUM_EVTS": "10 20"}
    site = dataclasses.replace(SLURM_LOCAL, launch_style="plain")
    script = render_script(make_spec(tmp_path, argv=argv, env=env), site)
    shell = script.replace("exec printf", 'printf "%s\\n" "$ARGO_JOB_ID" "$ARGO_NUM_EVTS"; exec printf')
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=tmp_path, timeout=10)
    assert out.stdout.splitlines() == [env["ARGO_JOB_ID"], env["ARGO_NUM_EVTS"], *argv[2:]]
    assert not (tmp_path / "pwned").exists()


def test_bad_environment_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchedulerError, match="not valid"):
        render_script(make_spec(tmp_path, env={"A;B": "1"}), SLURM_LOCAL)


@pytest.mark.parametrize(("value", "expected"), [
    ("debug", "debug"), ("/w/a b", '"/w/a b"'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("x#y", '"x#y"')])
def test_directive_values_are_quoted_for_sbatch(value: str, expected: str) -> None:
    assert directive_value(value) == expected


def test_directive_value_with_a_newline_is_refused() -> None:
    with pytest.raises(SchedulerError):
        directive_value("a\n#SBATCH --uid=0")


def test_output_paths_escape_the_percent_pattern(tmp_path: Path) -> None:
    workdir = tmp_path / "100%j"
    found = directives(render_script(make_spec(workdir), SLURM_LOCAL))
    assert found["--output"].endswith('100%%j/argo-j1-0-a1.out"') or found["--output"].endswith(
        "100%%j/argo-j1-0-a1.out")
    assert "%%" not in found["--chdir"]


def test_walltime_format() -> None:
    assert format_walltime(5) == "00:05:00"
    assert format_walltime(36 * 60 + 1) == "36:01:00"


def test_scheduler_args_pass_through_before_the_script() -> None:
    assert sbatch_argv("s.sbatch", ("--time=0:30", "-C", "cpu")[:1]) == [
        "sbatch", "--parsable", "--time=0:30", "s.sbatch"]
    assert check_scheduler_args(["--exclusive", "-t5", "--begin=now+1hour"]) == [
        "--exclusive", "-t5", "--begin=now+1hour"]


@pytest.mark.parametrize("word", ["/bin/evil.sh", "cpu", "--", "-", "--wrap=rm -rf ~", "--uid=0",
                                  "--job-name=other", "-Jother", "--chdir=/", "--output=/etc/x", "a\nb"])
def test_scheduler_args_that_could_subvert_the_job_are_refused(word: str) -> None:
    with pytest.raises(SchedulerError) as info:
        check_scheduler_args([word])
    assert not info.value.transient


def test_status_commands_are_batched() -> None:
    assert squeue_argv(["1", "2", "3"])[1] == "--jobs=1,2,3"
    argv = sacct_argv(["4", "5"], days=3)
    assert "--jobs=4,5" in argv and "--starttime=now-3days" in argv and "--parsable2" in argv
    assert "--allocations" in argv
