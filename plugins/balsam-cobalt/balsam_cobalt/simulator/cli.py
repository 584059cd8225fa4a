"""The Cobalt simulator's commands. Output formats follow Cobalt's clients (see the package docstring)."""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from balsam_cobalt.simulator.engine import (
    QUEUE_ENV,
    SimulatorError,
    append_cobaltlog,
    current_user,
    locked_state,
    utc_stamp,
)

BGQ_MODES = {"c1", "c2", "c4", "c8", "c16", "c32", "c64", "script"}
DEFAULT_HEADER = ["JobID", "User", "WallTime", "Nodes", "State", "Location"]
FULL_HEADER = ["JobID", "JobName", "User", "WallTime", "QueuedTime", "RunTime", "TimeRemaining", "Nodes",
               "State", "Location", "Mode", "Procs", "Preemptable", "Queue", "StartTime", "Index"]

_VALUE_OPTIONS = {
    "-n": "nodecount", "--nodecount": "nodecount", "-t": "time", "--time": "time",
    "-A": "project", "--project": "project", "-q": "queue", "--queue": "queue", "--mode": "mode",
    "--jobname": "jobname", "-O": "outputprefix", "--outputprefix": "outputprefix",
    "-o": "output", "--output": "output", "-e": "error", "--error": "error", "--cwd": "cwd",
    "--env": "env", "--debuglog": "debuglog", "--proccount": "proccount", "-i": "inputfile",
    "--inputfile": "inputfile", "-M": "notify", "--notify": "notify", "--dependencies": "dependencies",
    "--attrs": "attrs", "-u": "umask", "--umask": "umask", "--geometry": "geometry",
    "--kernel": "kernel", "-K": "kerneloptions", "--kerneloptions": "kerneloptions",
    "--run_users": "user_list", "--user_list": "user_list",
}
_FLAG_OPTIONS = {"-h": "held", "--held": "held", "--disable_preboot": "disable_preboot",
                 "--run_project": "run_project", "-d": "debug", "--debug": "debug"}


class UsageError(Exception):
    """A command-line error: printed to stderr, exit status 1."""


def main(command: str, args: Sequence[str]) -> int:
    """Runs one simulated command; returns its exit status."""
    handlers: dict[str, Callable[[list[str]], int]] = {
        "qsub": qsub, "qstat": qstat, "qdel": qdel, "qhold": lambda a: hold_release("qhold", a),
        "qrls": lambda a: hold_release("qrls", a), "runjob": runjob, "mpirun": mpirun,
    }
    try:
        return handlers[command](list(args))
    except (UsageError, SimulatorError) as exc:
        print(str(exc), file=sys.stderr)
        return 1


# --- qsub ---

def _parse_minutes(value: str) -> int:
    """``-t``: minutes, or HH:MM:SS (``qsub(1)``)."""
    if re.fullmatch(r"\d+", value):
        return int(value)
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d)", value)
    if not match:
        raise UsageError(f"invalid time specification: {value}")
    hours, minutes, seconds = (int(g) for g in match.groups())
    return hours * 60 + minutes + math.ceil(seconds / 60)


def _parse_env(value: str) -> dict[str, str]:
    """``--env A=B:C=x\\=1``: ``:`` and ``=`` inside values are escaped with a backslash."""
    placeholder_colon, placeholder_equal, placeholder_slash = "\x00c", "\x00e", "\x00s"
    raw = value.replace("\\\\", placeholder_slash).replace("\\:", placeholder_colon)
    raw = raw.replace("\\=", placeholder_equal)
    env: dict[str, str] = {}
    for item in re.split(r":(?=\w+=)", raw):
        if "=" not in item:
            raise UsageError(f"Improperly formatted argument to env : {item!r}")
        key, val = item.split("=", 1)
        env[key] = val.replace(placeholder_colon, ":").replace(placeholder_equal, "=").replace(
            placeholder_slash, "\\")
    return env


def _split_options(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    options: dict[str, Any] = {"env": []}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-") or arg == "-":
            break
        name, inline = (arg.split("=", 1) + [None])[:2] if arg.startswith("--") else (arg, None)
        if name in _FLAG_OPTIONS:
            options[_FLAG_OPTIONS[name]] = True
            index += 1
            continue
        if name not in _VALUE_OPTIONS:
            raise UsageError(f"qsub: error: no such option: {name}")
        if inline is None:
            if index + 1 >= len(args):
                raise UsageError(f"qsub: error: {name} option requires an argument")
            inline = args[index + 1]
            index += 2
        else:
            index += 1
        key = _VALUE_OPTIONS[name]
        if key == "env":
            options["env"].append(inline)
        else:
            options[key] = inline
    return options, args[index:]


def _expand(value: str, job_id: str) -> str:
    return value.replace("$COBALT_JOBID", job_id).replace("$jobid", job_id)


def qsub(args: list[str]) -> int:
    """Submits a job and prints its id (the only thing Cobalt's qsub prints on stdout)."""
    options, program = _split_options(args)
    if not program:
        raise UsageError("No executable or script specified")
    if "nodecount" not in options:
        raise UsageError("'nodecount' not provided")
    if "time" not in options:
        raise UsageError("'time' not provided")
    try:
        nodes = int(options["nodecount"])
    except ValueError as exc:
        raise UsageError(f"option -n: invalid integer value: {options['nodecount']!r}") from exc
    if nodes <= 0:
        raise UsageError("node count out of realistic range")
    walltime = _parse_minutes(options["time"])
    if walltime <= 0:
        raise UsageError(f"-t is {walltime} which is greater <= to zero")
    mode = options.get("mode", "c1")
    if mode not in BGQ_MODES:
        raise UsageError(f"Specifed mode '{mode}' not valid, valid modes are\n" + "\n".join(sorted(BGQ_MODES)))
    cwd = options.get("cwd") or os.getcwd()
    if not os.path.isdir(cwd):
        raise UsageError(f"directory {cwd} does not exist")
    executable = program[0] if os.path.isabs(program[0]) else os.path.join(cwd, program[0])
    if not os.path.isfile(executable):
        raise UsageError(f"command {executable} not found, or is not a file")
    if mode == "script" and not os.access(executable, os.X_OK):
        raise UsageError(f"command {executable} is not executable")
    env_items: dict[str, str] = {}
    for value in options["env"]:
        env_items.update(_parse_env(value))

    with locked_state() as state:
        job_id = str(state["next_id"])
        state["next_id"] += 1
        prefix = _expand(options.get("outputprefix", ""), job_id) or os.path.join(cwd, job_id)
        if not os.path.isabs(prefix):
            prefix = os.path.join(cwd, prefix)
        partname = f"SIM-{job_id}-{nodes}"
        job_env = dict(os.environ)
        job_env.update({k: _expand(v, job_id) for k, v in env_items.items()})
        job_env.update({"COBALT_JOBID": job_id, "COBALT_PARTNAME": partname,
                        "COBALT_PARTSIZE": str(nodes), "COBALT_JOBSIZE": str(nodes)})
        procs = int(options.get("proccount") or nodes * (int(mode[1:]) if mode != "script" else 1))
        if mode == "script":
            command = [executable, *program[1:]]
        else:
            runjob_path = shutil.which("runjob", path=job_env.get("PATH")) or "runjob"
            command = [runjob_path, "--np", str(procs), "-p", mode[1:], "--block", partname, "--cwd", cwd]
            if env_items:
                command += ["--envs", *(f"{k}={_expand(v, job_id)}" for k, v in env_items.items())]
            command += [":", executable, *program[1:]]

        def path_of(option: str, suffix: str) -> str:
            value = _expand(options.get(option, ""), job_id)
            if value and not os.path.isabs(value):
                value = os.path.join(cwd, value)
            return value or prefix + suffix

        job = {
            "jobid": job_id, "jobname": _expand(options.get("jobname", ""), job_id) or "N/A",
            "user": current_user(), "nodes": nodes, "walltime": walltime, "procs": procs,
            "mode": mode, "queue": options.get("queue", "default"), "project": options.get("project", ""),
            "cwd": cwd, "command": command, "env": job_env, "state": "queued",
            "user_hold": bool(options.get("held")), "submit_time": time.time(), "start_time": None,
            "eligible_at": time.time() + float(os.environ.get(QUEUE_ENV, "0") or 0),
            "location": partname, "output": path_of("output", ".output"),
            "error": path_of("error", ".error"), "cobaltlog": path_of("debuglog", ".cobaltlog"),
        }
        if job["user_hold"]:
            job["state"] = "user_hold"
        with open(job["cobaltlog"], "w") as handle:
            handle.write(f"Jobid: {job_id}\nqsub {shlex.join(args)}\n")
        append_cobaltlog(job, f"submitted with cwd set to: {cwd}")
        state["jobs"][job_id] = job
        runner = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("runner.py")), job_id],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        job["runner_pid"] = runner.pid
    print(job_id)
    return 0


# --- qstat ---

def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _field(job: dict[str, Any], name: str, now: float) -> str:
    started = job.get("start_time")
    values: dict[str, Callable[[], object]] = {
        "jobid": lambda: job["jobid"], "jobname": lambda: job["jobname"], "user": lambda: job["user"],
        "walltime": lambda: f"{job['walltime'] // 60:02d}:{job['walltime'] % 60:02d}:00",
        "queuedtime": lambda: _hms((started or now) - job["submit_time"]),
        "runtime": lambda: _hms(now - started) if started else "N/A",
        "timeremaining": lambda: _hms(job["walltime"] * 60 - (now - started)) if started else "N/A",
        "nodes": lambda: job["nodes"], "state": lambda: job["state"],
        "location": lambda: job["location"] if started else "None", "mode": lambda: job["mode"],
        "procs": lambda: job["procs"], "preemptable": lambda: "False", "queue": lambda: job["queue"],
        "starttime": lambda: utc_stamp(started) if started else "N/A", "index": lambda: "None",
        "project": lambda: job["project"] or "None", "score": lambda: "  0.0  ",
        "command": lambda: job["command"][0] if job["mode"] == "script" else job["command"][-1],
        "user_hold": lambda: str(job["user_hold"]), "admin_hold": lambda: "False",
        "outputpath": lambda: job["output"], "errorpath": lambda: job["error"],
    }
    getter = values.get(name.lower())
    return str(getter()) if getter else "-"


def _print_tabular(rows: list[list[str]]) -> None:
    """Cobalt.Util.print_tabular: left-justified columns, two spaces after each, a rule of '='."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("".join(value.ljust(width) + "  " for value, width in zip(row, widths, strict=True)))
        if index == 0:
            print("=" * (sum(widths) + 2 * len(widths)))


def _print_vertical(rows: list[list[str]]) -> None:
    """Cobalt.Util.print_vertical (``qstat -l``)."""
    width = max(len(h) for h in rows[0]) + 1
    for row in rows[1:]:
        for index, value in enumerate(row):
            if index == 0:
                print(f"{rows[0][0]}: {value}")
            else:
                print(f"    {rows[0][index]:<{width}}: {value}")
        print()


def qstat(args: list[str]) -> int:
    """Lists jobs; with ids given and none of them queued, exits 1 and prints nothing (as Cobalt does)."""
    header: list[str] | None = None
    full = long = False
    user = "*"
    names: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("--header",) and index + 1 < len(args):
            header = args[index + 1].split(":")
            index += 2
            continue
        if arg.startswith("--header="):
            header = arg.split("=", 1)[1].split(":")
        elif arg in ("-f", "--full"):
            full = True
        elif arg in ("-l", "--long"):
            long = True
        elif arg in ("-lf", "-fl"):
            full = long = True
        elif arg in ("-u", "--user") and index + 1 < len(args):
            user = args[index + 1]
            index += 1
        elif arg.startswith("-"):
            raise UsageError(f"qstat: error: no such option: {arg}")
        else:
            names.append(arg)
        index += 1
    if full:
        header = FULL_HEADER
    elif header is None:
        header = os.environ.get("QSTAT_HEADER", "").split(":") if os.environ.get("QSTAT_HEADER") else DEFAULT_HEADER
    with locked_state() as state:
        jobs = list(state["jobs"].values())
    wanted_ids: set[str] = set()
    wanted_queues: set[str] = set()
    queues = {job["queue"] for job in jobs} | {"default"}
    for name in names:
        if name in queues:
            wanted_queues.add(name)
        elif name.isdigit():
            wanted_ids.add(str(int(name)))
        else:
            raise UsageError(f"{name} is not a valid jobid or queue name")
    selected = [
        job for job in jobs
        if (not names or job["jobid"] in wanted_ids or job["queue"] in wanted_queues)
        and (user == "*" or job["user"] == user)
    ]
    if names and not selected:
        return 1
    now = time.time()
    selected.sort(key=lambda job: int(job["jobid"]))
    rows = [list(header)] + [[_field(job, name, now) for name in header] for job in selected]
    if long:
        _print_vertical(rows)
    else:
        _print_tabular(rows)
    return 0


# --- qdel ---

def qdel(args: list[str]) -> int:
    """Deletes jobs: queued ones leave at once, running ones are signalled (SIGTERM)."""
    ids = [a for a in args if not a.startswith("-")]
    if not ids:
        print("Usage:\nqdel [--version] [-f] <jobid> <jobid>")
        return 1
    for value in ids:
        if not value.isdigit():
            print("jobid must be an integer", file=sys.stderr)
            return 1
    deleted: list[tuple[str, str]] = []
    with locked_state() as state:
        for value in ids:
            job = state["jobs"].get(str(int(value)))
            if job is None or job["user"] != current_user():
                continue
            append_cobaltlog(job, f"user delete requested with signal SIGTERM by user {current_user()}")
            if job.get("start_time") is None:
                state["jobs"].pop(job["jobid"])
            else:
                job["deleting"] = True
                job["state"] = "killing"
            deleted.append((job["jobid"], job["user"]))
    if deleted:
        print("      Deleted Jobs")
        _print_tabular([["JobID", "User"]] + [list(row) for row in deleted])
    else:
        print(f"qdel: Job {args[-1]} not found")
    return 0


# --- qhold / qrls ---

def hold_release(command: str, args: list[str]) -> int:
    """Sets or clears a user hold, reporting per job as Cobalt's ``hold_release_command`` does."""
    ids = [a for a in args if not a.startswith("-")]
    if not ids:
        raise UsageError("No Jobid(s) given")
    for value in ids:
        if not value.isdigit():
            raise UsageError(f"jobid must be an integer: {value}")
    changed: list[str] = []
    failed: list[str] = []
    found_any = False
    with locked_state() as state:
        for value in ids:
            job_id = str(int(value))
            job = state["jobs"].get(job_id)
            if job is None or job["user"] != current_user():
                failed.append(f"      job {job_id} not found")
                continue
            found_any = True
            active = job.get("start_time") is not None
            if command == "qhold":
                if job["user_hold"]:
                    failed.append(f"      job {job_id} already in state 'user hold'")
                elif active:
                    failed.append(f"      job {job_id} is already active")
                else:
                    job["user_hold"] = True
                    job["state"] = "user_hold"
                    changed.append(job_id)
            else:
                if not job["user_hold"]:
                    failed.append(f"      job {job_id} does not have a 'user hold'")
                else:
                    job["user_hold"] = False
                    job["state"] = "queued"
                    changed.append(job_id)
    if not found_any:
        print("   No jobs found.", file=sys.stderr)
        print("Failed to match any jobs", file=sys.stderr)
    if failed:
        print("   Failed to place user hold on jobs: " if command == "qhold"
              else "   Failed to remove user hold on jobs: ")
        for line in failed:
            print(line)
    if changed:
        print("Placed user hold on jobs: " if command == "qhold" else "   Removed user hold on jobs: ")
        for job_id in changed:
            print(f"      {job_id}")
    return 0


# --- runjob / mpirun stand-ins ---

def _exec(program: list[str], env: dict[str, str], cwd: str | None) -> int:
    if not program:
        raise UsageError("no program given")
    if cwd:
        os.chdir(cwd)
    try:
        os.execvpe(program[0], program, env)
    except OSError as exc:
        print(f"cannot run {program[0]}: {exc}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - exec does not return


def runjob(args: list[str]) -> int:
    """``runjob --np N -p P --block B [--cwd D] [--envs K=V ...] : program args`` (starts rank 0 only)."""
    if ":" not in args:
        raise UsageError("runjob: missing ':' before the program")
    split = args.index(":")
    options, program = args[:split], args[split + 1:]
    env = dict(os.environ)
    cwd = None
    index = 0
    while index < len(options):
        option = options[index]
        if option == "--envs":
            index += 1
            while index < len(options) and not options[index].startswith("-"):
                key, _, value = options[index].partition("=")
                env[key] = value
                index += 1
            continue
        if option in ("--np", "-n"):
            env["COBALT_SIM_RANKS"] = options[index + 1] if index + 1 < len(options) else "1"
        if option == "--cwd" and index + 1 < len(options):
            cwd = options[index + 1]
        index += 2 if option in ("--np", "-n", "-p", "--ranks-per-node", "--block", "--cwd") else 1
    return _exec(program, env, cwd)


def mpirun(args: list[str]) -> int:
    """``mpirun -n N program args`` (starts rank 0 only)."""
    env = dict(os.environ)
    index = 0
    while index < len(args) and args[index].startswith("-"):
        if args[index] in ("-n", "-np") and index + 1 < len(args):
            env["COBALT_SIM_RANKS"] = args[index + 1]
            index += 2
        else:
            index += 1
    return _exec(args[index:], env, None)
