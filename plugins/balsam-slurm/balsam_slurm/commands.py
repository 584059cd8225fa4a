"""Pure builders of Slurm command lines (argv lists, never shell strings) and of the batch script.

Options follow ``sbatch(1)``, ``srun(1)``, ``squeue(1)``, ``sacct(1)``, ``scancel(1)`` and ``scontrol(1)``
of Slurm 22.05. Every shell word of the generated script is quoted with :func:`shlex.quote`; ``#SBATCH``
values are quoted the way sbatch's own directive parser reads them (quotes group, backslash escapes).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from balsam_agent.records import SiteProfile
from balsam_agent.scheduler import LaunchSpec, SchedulerError

#: Separator of the fields of our ``squeue``/``sacct`` formats (never part of an id, state or reason).
FIELD_SEP = "|"
#: ``squeue -o``: job id, long state name, reason (squeue(1) "-o <output_format>": %i, %T, %r).
SQUEUE_FORMAT = "%i|%T|%r"
#: ``sacct --format`` fields, parsed from ``-P`` (pipe-separated) output.
SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Reason")

#: Launch styles this backend renders: ``srun`` (ranks started by srun) or ``plain`` (one process).
LAUNCH_STYLES = ("srun", "plain")

#: sbatch options a step may not pass in ``scheduler_args``: they would replace the script, change the
#: user, or move the files and the job name the agent relies on (re-adoption looks jobs up by name).
FORBIDDEN_SBATCH_OPTIONS = frozenset({
    "--wrap", "--uid", "--gid", "--job-name", "-J", "--chdir", "-D", "--output", "-o", "--error", "-e",
    "--input", "-i", "--export-file", "--get-user-env", "--parsable",
})

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLAIN_DIRECTIVE_VALUE = re.compile(r"[A-Za-z0-9_.,:=+/@%-]+\Z")


def check_scheduler_args(args: Sequence[str]) -> list[str]:
    """Returns a step's ``scheduler_args`` as sbatch argv words, refusing what could subvert the job.

    Every word must be one option (``--time=0:30``, ``--qos=debug``, ``-t5``, ``--exclusive``): a bare
    word would be taken by sbatch as the script to run, so values go after ``=`` or glued to a short
    option. Raises a permanent :class:`SchedulerError` naming the offending word.
    """
    words = []
    for word in args:
        if "\n" in word or "\0" in word:
            raise SchedulerError(f"scheduler_args: {word!r} contains a newline or NUL", transient=False)
        if not word.startswith("-") or word in ("-", "--"):
            raise SchedulerError(
                f"scheduler_args: {word!r} is not an sbatch option; write values as --option=value",
                transient=False)
        name = word.split("=", 1)[0] if word.startswith("--") else word[:2]
        if name in FORBIDDEN_SBATCH_OPTIONS:
            raise SchedulerError(f"scheduler_args: {name} is set by the agent and may not be overridden",
                                 transient=False)
        words.append(word)
    return words


def format_walltime(minutes: int) -> str:
    """``90`` → ``01:30:00`` (sbatch ``--time`` accepts ``hours:minutes:seconds``)."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def directive_value(value: str) -> str:
    """Quotes one ``#SBATCH`` value so that sbatch reads it back unchanged.

    sbatch groups quoted characters and treats a backslash as an escape inside and outside quotes, so
    a double-quoted value with ``\\`` and ``"`` escaped is exact; newlines cannot be expressed at all.
    """
    if "\n" in value or "\r" in value or "\0" in value:
        raise SchedulerError(f"#SBATCH value {value!r} contains a line break or NUL", transient=False)
    if _PLAIN_DIRECTIVE_VALUE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filename_pattern(path: str) -> str:
    """Escapes ``%`` in an --output/--error path: sbatch expands ``%j``, ``%x``... in file names."""
    return path.replace("%", "%%")


def sbatch_directives(spec: LaunchSpec, site: SiteProfile) -> list[tuple[str, str]]:
    """The ``#SBATCH`` options of a step as (option, value) pairs, only for values that are set."""
    pairs: list[tuple[str, str]] = [("--job-name", spec.job_name)]
    if spec.nodes > 0:
        pairs.append(("--nodes", str(spec.nodes)))
    pairs.append(("--ntasks", str(spec.ranks)))
    if spec.processes_per_node > 0:
        pairs.append(("--ntasks-per-node", str(spec.processes_per_node)))
    if spec.wall_minutes > 0:
        pairs.append(("--time", format_walltime(spec.wall_minutes)))
    if site.project:
        pairs.append(("--account", site.project))
    if site.queue:
        pairs.append(("--partition", site.queue))
    if site.qos:
        pairs.append(("--qos", site.qos))
    constraint = str(site.options.get("constraint", ""))
    if constraint:
        pairs.append(("--constraint", constraint))
    stdout = spec.stdout_path or spec.workdir / f"{spec.job_name}.out"
    stderr = spec.stderr_path or spec.workdir / f"{spec.job_name}.err"
    pairs.append(("--output", filename_pattern(str(stdout))))
    pairs.append(("--error", filename_pattern(str(stderr))))
    pairs.append(("--chdir", str(spec.workdir)))
    return pairs


def launch_argv(spec: LaunchSpec, site: SiteProfile) -> list[str]:
    """The command the batch script runs: the program under ``srun`` with the step's ranks, or alone."""
    style = site.launch_style or "srun"
    if style == "plain":
        return list(spec.argv)
    if style != "srun":
        raise SchedulerError(f"launch style {style!r} is not one of {', '.join(LAUNCH_STYLES)} for Slurm",
                             transient=False)
    argv = ["srun", f"--ntasks={spec.ranks}"]
    if spec.nodes > 0:
        argv.append(f"--nodes={spec.nodes}")
    if spec.processes_per_node > 0:
        argv.append(f"--ntasks-per-node={spec.processes_per_node}")
    argv.extend(str(word) for word in site.options.get("srun_args", ()))
    # "--" ends srun's options: a program whose name starts with "-" is still the program
    return [*argv, "--", *spec.argv]


def render_script(spec: LaunchSpec, site: SiteProfile) -> str:
    """The sbatch batch script of one step attempt.

    Directives for the values that are set, the step's environment exported, then ``exec`` of the
    launch command so that the job's exit code is the program's.
    """
    if not spec.argv:
        raise SchedulerError("the step has no program to run", transient=False)
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH {option}={directive_value(value)}" for option, value in sbatch_directives(spec, site)]
    lines += [f"#SBATCH {directive_value(str(word))}" for word in site.options.get("extra_directives", ())]
    lines.append("# generated by the Balsam agent (balsam-slurm) for one step attempt")
    lines += env_exports(spec.env)
    lines.append("exec " + shlex.join(launch_argv(spec, site)))
    return "\n".join(lines) + "\n"


def env_exports(env: Mapping[str, str]) -> list[str]:
    """``export NAME=value`` lines, values quoted; a name that is not a shell identifier is refused."""
    lines = []
    for name, value in sorted(env.items()):
        if not _ENV_NAME.match(name):
            raise SchedulerError(f"environment variable name {name!r} is not valid", transient=False)
        lines.append(f"export {name}={shlex.quote(str(value))}")
    return lines


def sbatch_argv(script_path: str, scheduler_args: Sequence[str] = ()) -> list[str]:
    """``sbatch --parsable [scheduler_args] script``: options on the command line beat ``#SBATCH`` lines."""
    return ["sbatch", "--parsable", *check_scheduler_args(scheduler_args), script_path]


def squeue_argv(scheduler_ids: Sequence[str]) -> list[str]:
    """One ``squeue`` for all active jobs (pending, running, completing...), no header."""
    return ["squeue", f"--jobs={','.join(scheduler_ids)}", "--noheader", f"--format={SQUEUE_FORMAT}"]


def sacct_argv(scheduler_ids: Sequence[str], days: int = 7) -> list[str]:
    """``sacct`` for finished jobs: allocations only (-X), parsable (-P), no header, ``days`` back."""
    return ["sacct", "--allocations", "--parsable2", "--noheader", f"--starttime=now-{days}days",
            f"--jobs={','.join(scheduler_ids)}", f"--format={','.join(SACCT_FIELDS)}"]


def squeue_name_argv(job_name: str) -> list[str]:
    """``squeue --name=...``: ids of active jobs with this name."""
    return ["squeue", f"--name={job_name}", "--noheader", "--format=%i"]


def sacct_name_argv(job_name: str, days: int = 7) -> list[str]:
    """``sacct --name=...``: jobs with this name that already left the queue."""
    return ["sacct", "--allocations", "--parsable2", "--noheader", f"--starttime=now-{days}days",
            f"--name={job_name}", f"--format={','.join(SACCT_FIELDS)}"]


def scancel_argv(scheduler_id: str) -> list[str]:
    """``scancel <id>``."""
    return ["scancel", scheduler_id]


def hold_argv(scheduler_id: str) -> list[str]:
    """``scontrol hold <id>`` (a pending job only)."""
    return ["scontrol", "hold", scheduler_id]


def release_argv(scheduler_id: str) -> list[str]:
    """``scontrol release <id>``."""
    return ["scontrol", "release", scheduler_id]
