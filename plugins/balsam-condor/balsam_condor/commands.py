"""Pure builders: HTCondor command lines (argv lists, never shell strings) and submit descriptions.

Quoting follows the HTCondor Manual, ``condor_submit``: in the "new syntax" of ``arguments`` and
``environment`` the value is surrounded by double quotes, words are separated by spaces, a word in
single quotes keeps its spaces, a literal single quote inside one is written twice (``''``) and a
literal double quote anywhere is written twice (``""``). Every ``$`` is written ``$(DOLLAR)`` so that
``condor_submit`` does not expand a user's text as a submit macro. Two texts cannot be carried that
way and are refused by name (checked against the real expander of the ``htcondor2`` bindings): ``$$``
(after the first ``$(DOLLAR)`` is expanded, ``$$(`` is taken for a match-time macro) and a literal
``$(DOLLAR)`` (the expander rescans the ``$`` it inserted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from balsam_agent.scheduler import LaunchSpec, SchedulerError

#: Job ad attributes the status commands ask for (``-attributes``): all the parsers read.
STATUS_ATTRIBUTES: tuple[str, ...] = (
    "ClusterId", "ProcId", "JobStatus", "ExitCode", "ExitBySignal", "ExitSignal", "HoldReason",
    "HoldReasonCode", "RemoveReason", "ArgoJobName", "EnteredCurrentStatus",
)

#: Custom job attribute carrying the step attempt's job name, used to re-adopt a job after a crash.
JOB_NAME_ATTRIBUTE = "ArgoJobName"

#: Submit commands a step's ``scheduler_args`` may set (``name=value``). Commands that choose what
#: runs, where, or with which files (executable, arguments, environment, initialdir, universe,
#: output, ...) are the agent's and are refused.
ALLOWED_SUBMIT_COMMANDS: frozenset[str] = frozenset({
    "request_memory", "request_disk", "request_gpus", "requirements", "rank", "priority",
    "accounting_group", "accounting_group_user", "concurrency_limits", "max_retries",
    "notification", "notify_user", "job_max_vacate_time", "batch_name",
})

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CLUSTER_ID = re.compile(r"[0-9]+\Z")
_FORBIDDEN_CHARS = ("\n", "\r", "\x00")
#: Texts the ``$(DOLLAR)`` escape cannot carry (see the module documentation).
_UNREPRESENTABLE = ("$$", "$(DOLLAR)")


def submit_value(value: str) -> str:
    """Escapes one value for a submit description line: no line breaks, ``$`` as ``$(DOLLAR)``."""
    if any(ch in value for ch in _FORBIDDEN_CHARS):
        raise SchedulerError(f"value {value[:40]!r} holds a line break, which HTCondor cannot pass",
                             transient=False)
    for text in _UNREPRESENTABLE:
        if text in value:
            raise SchedulerError(f"value {value[:40]!r} holds {text!r}, which HTCondor's submit language "
                                 "cannot pass literally (give the job its own condor_job_file)", transient=False)
    return value.replace("$", "$(DOLLAR)")


def _quote_word(word: str) -> str:
    return "'" + word.replace("'", "''").replace('"', '""') + "'"


def quote_arguments(argv: Sequence[str]) -> str:
    """Renders argv as the value of ``arguments`` in the new quoted syntax (each word single-quoted)."""
    return submit_value('"' + " ".join(_quote_word(word) for word in argv) + '"')


def quote_environment(env: Mapping[str, str]) -> str:
    """Renders an environment as the value of ``environment`` in the new quoted syntax."""
    words = []
    for name, value in sorted(env.items()):
        if not _ENV_NAME.match(name):
            raise SchedulerError(f"environment variable name {name!r} is not valid", transient=False)
        words.append(_quote_word(f"{name}={value}"))
    return submit_value('"' + " ".join(words) + '"')


def classad_string(text: str) -> str:
    """A ClassAd string literal for ``text`` (backslash and double quote escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def job_name_command(job_name: str) -> str:
    """The submit command that tags a job with its step attempt's name (``+ArgoJobName = "..."``)."""
    return submit_value(f"+{JOB_NAME_ATTRIBUTE} = {classad_string(job_name)}")


def walltime_policy(wall_minutes: int) -> str:
    """A ``periodic_remove`` expression removing a job that has run longer than its walltime."""
    return f"(JobStatus == 2) && (time() - JobCurrentStartDate > {int(wall_minutes) * 60})"


def submit_commands_from_args(scheduler_args: Iterable[str]) -> list[tuple[str, str]]:
    """Turns a step's ``scheduler_args`` (``name=value`` words) into allowed submit commands.

    Raises a non-transient :class:`SchedulerError` naming the allowed commands for anything else.
    """
    commands = []
    for word in scheduler_args:
        name, sep, value = word.partition("=")
        name = name.strip().lower()
        if not sep or name not in ALLOWED_SUBMIT_COMMANDS:
            allowed = ", ".join(sorted(ALLOWED_SUBMIT_COMMANDS))
            raise SchedulerError(
                f"scheduler argument {word!r} is not an allowed HTCondor submit command "
                f"(name=value with name one of: {allowed})", transient=False)
        commands.append((name, submit_value(value.strip())))
    return commands


def render_submit_description(spec: LaunchSpec, *, log_file: str,
                              extra: Sequence[tuple[str, str]] = ()) -> str:
    """Renders the submit description of one step attempt: a vanilla-universe job of one process.

    Paths are absolute; output, error and the job event log live in the step's working directory.
    """
    if not spec.argv:
        raise SchedulerError("the step has no program to run", transient=False)
    workdir = spec.workdir
    stdout = spec.stdout_path or workdir / f"{spec.job_name}.out"
    stderr = spec.stderr_path or workdir / f"{spec.job_name}.err"
    lines = [
        f"# Generated by the Balsam agent for {submit_value(spec.job_name)}",
        "universe = vanilla",
        f"executable = {submit_value(spec.argv[0])}",
    ]
    if len(spec.argv) > 1:
        lines.append(f"arguments = {quote_arguments(spec.argv[1:])}")
    lines += [
        f"initialdir = {submit_value(str(workdir))}",
        f"output = {submit_value(str(stdout))}",
        f"error = {submit_value(str(stderr))}",
        f"log = {submit_value(str(workdir / log_file))}",
        f"request_cpus = {spec.ranks}",
        # The program runs in place on a shared filesystem: its inputs are already staged in.
        "should_transfer_files = NO",
        "getenv = False",
    ]
    if spec.env:
        lines.append(f"environment = {quote_environment(spec.env)}")
    if spec.wall_minutes > 0:
        lines.append(f"periodic_remove = {walltime_policy(spec.wall_minutes)}")
    lines += [f"{name} = {value}" for name, value in extra]
    lines += [job_name_command(spec.job_name), "queue 1", ""]
    return "\n".join(lines)


def condor_submit_argv(submit_file: Path | str, *, appends: Sequence[str] = ()) -> list[str]:
    """``condor_submit [-append command]... <file>``; appended commands go before ``queue``."""
    argv = ["condor_submit"]
    for command in appends:
        argv += ["-append", command]
    return [*argv, str(submit_file)]


def condor_submit_dag_argv(dag_file: Path | str, *, job_name: str,
                           appends: Sequence[str] = ()) -> list[str]:
    """``condor_submit_dag -force -batch-name NAME -append ... <dag>``.

    ``-force`` because a retried attempt finds the previous attempt's ``.condor.sub`` and rescue
    files; ``-append`` puts the job name on the DAGMan job itself, which is what the agent tracks.
    """
    argv = ["condor_submit_dag", "-force", "-batch-name", job_name]
    for command in (job_name_command(job_name), *appends):
        argv += ["-append", command]
    return [*argv, str(dag_file)]


def check_cluster_id(scheduler_id: str) -> str:
    """Returns the id if it is an HTCondor cluster id (digits), else raises a non-transient error."""
    if not _CLUSTER_ID.match(scheduler_id):
        raise SchedulerError(f"{scheduler_id!r} is not an HTCondor cluster id", transient=False)
    return scheduler_id


def condor_q_argv(cluster_ids: Sequence[str]) -> list[str]:
    """One ``condor_q -json`` for all given clusters (each cluster id is a restriction)."""
    return ["condor_q", "-json", "-attributes", ",".join(STATUS_ATTRIBUTES),
            *[check_cluster_id(cid) for cid in cluster_ids]]


def clusters_constraint(cluster_ids: Sequence[str]) -> str:
    """A ClassAd constraint matching any of the given clusters."""
    return " || ".join(f"ClusterId == {check_cluster_id(cid)}" for cid in cluster_ids)


def condor_history_argv(cluster_ids: Sequence[str]) -> list[str]:
    """One ``condor_history -json`` for all given clusters (jobs that left the queue)."""
    return ["condor_history", "-json", "-attributes", ",".join(STATUS_ATTRIBUTES),
            "-constraint", clusters_constraint(cluster_ids)]


def job_name_constraint(job_name: str) -> str:
    """A ClassAd constraint matching jobs tagged with this step attempt's name."""
    return f"{JOB_NAME_ATTRIBUTE} == {classad_string(job_name)}"


def find_in_queue_argv(job_name: str) -> list[str]:
    """``condor_q`` for the jobs tagged with a job name."""
    return ["condor_q", "-json", "-attributes", ",".join(STATUS_ATTRIBUTES),
            "-constraint", job_name_constraint(job_name)]


def find_in_history_argv(job_name: str) -> list[str]:
    """``condor_history`` for the jobs tagged with a job name (the newest one is enough)."""
    return ["condor_history", "-json", "-attributes", ",".join(STATUS_ATTRIBUTES), "-match", "1",
            "-constraint", job_name_constraint(job_name)]


def condor_rm_argv(scheduler_id: str) -> list[str]:
    """``condor_rm <cluster>``."""
    return ["condor_rm", check_cluster_id(scheduler_id)]


def condor_hold_argv(scheduler_id: str) -> list[str]:
    """``condor_hold <cluster>``."""
    return ["condor_hold", check_cluster_id(scheduler_id)]


def condor_release_argv(scheduler_id: str) -> list[str]:
    """``condor_release <cluster>``."""
    return ["condor_release", check_cluster_id(scheduler_id)]
