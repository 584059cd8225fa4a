"""Pure builders of Cobalt command lines (argv lists, never shell strings) and batch scripts.

Cobalt's ``qsub`` (man page ``qsub(1)`` of Cobalt, ALCF "Cobalt Job Control on BG/Q") takes its options
first and then either the program and its arguments (``--mode cN``: Cobalt starts ``runjob`` with N ranks
per node itself) or, with ``--mode script``, a script that calls ``runjob``/``mpirun`` on its own. Every
word of a generated script is quoted with :func:`shlex.quote`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from balsam_agent.records import SiteProfile
from balsam_agent.scheduler import LaunchSpec, SchedulerError

#: ``--mode`` values of BG/Q (``c1`` … ``c64``: ranks per node).
BGQ_MODES = frozenset(f"c{n}" for n in (1, 2, 4, 8, 16, 32, 64))

#: Columns the backend asks ``qstat`` for (``--header``); order does not matter to the parser.
STATUS_HEADER: tuple[str, ...] = ("JobID", "JobName", "User", "State", "Queue", "Nodes", "WallTime")


def normalise_scheduler_args(args: Sequence[str]) -> list[str]:
    """Splits ``--mode=script`` into ``--mode script`` (the seed's steps write it with ``=``).

    Other arguments pass through unchanged: Cobalt's option parser accepts both spellings for them.
    """
    out: list[str] = []
    for arg in args:
        if arg.startswith("--mode="):
            out.extend(["--mode", arg.split("=", 1)[1]])
        else:
            out.append(arg)
    return out


def requested_mode(args: Sequence[str]) -> str | None:
    """Returns the ``--mode`` value in (normalised) scheduler arguments, or None."""
    for index, arg in enumerate(args):
        if arg == "--mode" and index + 1 < len(args):
            return args[index + 1]
    return None


def without_mode(args: Sequence[str]) -> list[str]:
    """Removes ``--mode X`` from (normalised) scheduler arguments: the backend sets the mode itself."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--mode":
            skip = True
            continue
        out.append(arg)
    return out


def escape_env_value(value: str) -> str:
    """Escapes ``:`` and ``=`` in a value of qsub's ``--env`` list, as ``qsub(1)`` asks."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def env_option(env: Mapping[str, str]) -> str:
    """Renders ``--env``'s value: ``VAR1=value1:VAR2=value2`` with escaped values."""
    for name in env:
        if not name.isidentifier():
            raise SchedulerError(f"environment variable name {name!r} is not valid", transient=False)
    return ":".join(f"{name}={escape_env_value(value)}" for name, value in sorted(env.items()))


def bgq_mode(processes_per_node: int) -> str:
    """Returns ``cN`` for N ranks per node; BG/Q only offers powers of two up to 64."""
    mode = f"c{max(1, processes_per_node)}"
    if mode not in BGQ_MODES:
        raise SchedulerError(
            f"processes_per_node={processes_per_node} is not a BG/Q mode (one of 1, 2, 4, ..., 64)",
            transient=False,
        )
    return mode


def qsub_argv(spec: LaunchSpec, site: SiteProfile, *, mode: str, program: Sequence[str],
              debuglog: Path, extra_args: Sequence[str] = ()) -> list[str]:
    """Builds ``qsub`` for one step: resources, names, output files, environment, then the program.

    :param mode: ``cN`` (Cobalt starts runjob) or ``script`` (``program`` is a generated script).
    :param program: the argv Cobalt runs (the step's program, or the script's path).
    :param debuglog: where Cobalt writes the job's ``.cobaltlog`` (``$jobid`` is expanded by qsub).
    :param extra_args: the step's scheduler arguments (normalised, without ``--mode``).
    """
    argv = ["qsub", "-n", str(max(1, spec.nodes)), "-t", str(max(1, spec.wall_minutes))]
    if site.project:
        argv += ["-A", site.project]
    if site.queue:
        argv += ["-q", site.queue]
    argv += ["--mode", mode, "--jobname", spec.job_name,
             "-O", str(spec.workdir / spec.job_name), "--cwd", str(spec.workdir),
             "--debuglog", str(debuglog)]
    if spec.stdout_path is not None:
        argv += ["-o", str(spec.stdout_path)]
    if spec.stderr_path is not None:
        argv += ["-e", str(spec.stderr_path)]
    if spec.env:
        argv += ["--env", env_option(spec.env)]
    argv += list(extra_args)
    argv += list(program)
    return argv


def runjob_script(spec: LaunchSpec) -> str:
    """Renders a ``--mode script`` job for BG/Q: ``runjob`` on the job's block with the step's ranks."""
    words = ["runjob", "--np", str(spec.ranks), "-p", str(max(1, spec.processes_per_node)),
             "--block", "$COBALT_PARTNAME", "--cwd", str(spec.workdir)]
    if spec.env:
        words += ["--envs", *(f"{name}={value}" for name, value in sorted(spec.env.items()))]
    words += [":", *spec.argv]
    # $COBALT_PARTNAME is the one word the shell must expand; everything else is quoted.
    line = " ".join('"$COBALT_PARTNAME"' if w == "$COBALT_PARTNAME" else shlex.quote(w) for w in words)
    return _script(spec, line)


def mpirun_script(spec: LaunchSpec) -> str:
    """Renders a ``--mode script`` job for an x86 cluster (Tukey): an explicit ``mpirun``."""
    words = ["mpirun", "-n", str(spec.ranks), *spec.argv]
    return _script(spec, " ".join(shlex.quote(w) for w in words))


def plain_script(spec: LaunchSpec) -> str:
    """Renders a ``--mode script`` job that runs the program once (launch style ``plain``)."""
    return _script(spec, " ".join(shlex.quote(w) for w in spec.argv))


def _script(spec: LaunchSpec, launch_line: str) -> str:
    return "\n".join([
        "#!/bin/bash",
        f"# Cobalt job {shlex.quote(spec.job_name)}, generated by balsam-cobalt",
        f"cd {shlex.quote(str(spec.workdir))} || exit 1",
        launch_line,
        "",
    ])


def qstat_argv(scheduler_ids: Sequence[str]) -> list[str]:
    """``qstat`` for the given jobs with the columns the parser needs (``--header``, see ``qstat(1)``)."""
    return ["qstat", "--header", ":".join(STATUS_HEADER), *scheduler_ids]


def qstat_user_argv(user: str) -> list[str]:
    """``qstat`` of every job of one user (re-adoption by job name)."""
    return ["qstat", "--header", ":".join(STATUS_HEADER), "-u", user]


def qdel_argv(scheduler_id: str) -> list[str]:
    """``qdel`` of one job."""
    return ["qdel", scheduler_id]


def qhold_argv(scheduler_id: str) -> list[str]:
    """``qhold`` of one job (a user hold)."""
    return ["qhold", scheduler_id]


def qrls_argv(scheduler_id: str) -> list[str]:
    """``qrls`` of one job (removes the user hold)."""
    return ["qrls", scheduler_id]
