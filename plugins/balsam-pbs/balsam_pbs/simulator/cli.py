"""The PBS simulator's commands; formats and exit statuses follow PBS Professional (see the package)."""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from balsam_pbs.simulator.engine import SimulatorError, locked_state, owner, server

EXIT_UNKNOWN = 153   # PBSE_UNKJOBID (15001) modulo 256
EXIT_HISTORY = 35    # PBSE_HISTJOBID (15139) modulo 256
EXIT_BADSTATE = 170  # PBSE_BADSTATE (15018) modulo 256
_TIME = "%a %b %d %H:%M:%S %Y"


class UsageError(Exception):
    """Printed to stderr with exit status 2."""


def main(command: str, args: Sequence[str]) -> int:
    """Runs one simulated command; returns its exit status."""
    handlers: dict[str, Callable[[list[str]], int]] = {
        "qsub": qsub, "qstat": qstat, "qdel": qdel, "qhold": lambda a: hold_release("qhold", a),
        "qrls": lambda a: hold_release("qrls", a), "qselect": qselect, "mpiexec": mpiexec,
    }
    try:
        return handlers[command](list(args))
    except (UsageError, SimulatorError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2


def _walltime_minutes(value: str) -> int:
    parts = [int(p) for p in value.split(":")] if re.fullmatch(r"\d+(:\d+){0,2}", value) else None
    if parts is None:
        raise UsageError(f"illegal -l value walltime={value}")
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return max(1, hours * 60 + minutes + (1 if seconds else 0))


def qsub(args: list[str]) -> int:
    """Queues a job script and prints ``<seq>.<server>``."""
    options: dict[str, Any] = {"l": {}}
    index = 0
    while index < len(args) and args[index].startswith("-"):
        flag = args[index]
        if flag in ("-h", "-V"):
            options[flag[1]] = True
            index += 1
            continue
        if flag not in ("-N", "-l", "-A", "-q", "-o", "-e", "-j", "-v", "-k", "-m", "-M", "-W"):
            raise UsageError(f"invalid option -- '{flag.lstrip('-')}'")
        if index + 1 >= len(args):
            raise UsageError(f"option requires an argument -- '{flag.lstrip('-')}'")
        value = args[index + 1]
        if flag == "-l":
            for item in value.split(","):
                key, _, val = item.partition("=")
                options["l"][key] = val
        else:
            options[flag[1]] = value
        index += 2
    if index >= len(args):
        raise UsageError("a script file is required")
    script = os.path.abspath(args[index])
    if not os.path.isfile(script):
        print("qsub: script file:: No such file or directory", file=sys.stderr)
        return 2
    resources = options["l"]
    select = resources.get("select", "1")
    chunk = select.split(":")
    try:
        nodes = int(chunk[0])
    except ValueError as exc:
        raise UsageError(f"illegal -l value select={select}") from exc
    ncpus = next((int(c.split("=")[1]) for c in chunk[1:] if c.startswith("ncpus=")), 1)
    walltime = _walltime_minutes(resources.get("walltime", "01:00:00"))
    workdir = os.getcwd()
    now = time.time()
    with locked_state() as state:
        seq = state["next_id"]
        state["next_id"] += 1
        job_id = f"{seq}.{server()}"
        name = options.get("N") or Path(script).name
        output = options.get("o") or os.path.join(workdir, f"{name}.o{seq}")
        error = options.get("e") or os.path.join(workdir, f"{name}.e{seq}")
        job = {
            "id": job_id, "seq": seq, "name": name, "owner": owner(), "user": getpass.getuser(),
            "job_state": "H" if options.get("h") else "Q", "hold_types": "u" if options.get("h") else "n",
            "queue": options.get("q", "workq"), "project": options.get("A", "_pbs_project_default"),
            "nodes": nodes, "ncpus": ncpus * nodes, "select": select, "walltime_minutes": walltime,
            "resources": resources, "script": script, "workdir": workdir, "output": output, "error": error,
            "env": dict(os.environ), "ctime": now, "qtime": now, "stime": None, "mtime": now,
            "eligible_at": now + float(os.environ.get("PBS_SIM_QUEUE_SECONDS", "0") or 0),
            "submit_arguments": shlex.join(args), "substate": 10,
        }
        state["jobs"][job_id] = job
        runner = subprocess.Popen([sys.executable, str(Path(__file__).with_name("runner.py")), job_id],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        job["runner_pid"] = runner.pid
    print(job_id)
    return 0


def _find(jobs: dict[str, Any], given: str) -> dict[str, Any] | None:
    seq = given.split(".", 1)[0]
    if not seq.isdigit():
        return None
    return next((job for job in jobs.values() if str(job["seq"]) == seq), None)


def _stamp(value: float | None) -> str:
    return time.strftime(_TIME, time.localtime(value)) if value else ""


def _attributes(job: dict[str, Any]) -> dict[str, Any]:
    host = server()
    attrs: dict[str, Any] = {
        "Job_Name": job["name"], "Job_Owner": job["owner"], "job_state": job["job_state"],
        "queue": job["queue"], "server": host, "Checkpoint": "u", "ctime": _stamp(job["ctime"]),
        "Error_Path": f"{host}:{job['error']}", "Hold_Types": job["hold_types"], "Join_Path": "n",
        "Keep_Files": "n", "Mail_Points": "a", "mtime": _stamp(job["mtime"]),
        "Output_Path": f"{host}:{job['output']}", "Priority": 0, "qtime": _stamp(job["qtime"]),
        "Rerunable": "True",
        "Resource_List": {"ncpus": job["ncpus"], "nodect": job["nodes"], "place": "scatter",
                          "select": job["select"], "walltime": job["resources"].get("walltime", "01:00:00"),
                          **{k: v for k, v in job["resources"].items() if k not in ("select", "walltime")}},
        "substate": job["substate"],
        "Variable_List": {"PBS_O_WORKDIR": job["workdir"], "PBS_O_QUEUE": job["queue"],
                          "PBS_O_HOST": host, "PBS_O_SHELL": "/bin/bash"},
        "etime": _stamp(job["qtime"]), "Submit_arguments": job["submit_arguments"], "project": job["project"],
    }
    if job["stime"]:
        used = int((job["mtime"] if job["job_state"] == "F" else time.time()) - job["stime"])
        attrs.update({
            "stime": _stamp(job["stime"]), "exec_host": "x0000/0", "run_count": 1,
            "exec_vnode": f"(x0000:ncpus={job['ncpus']})", "session_id": job.get("task_pid", 0),
            "resources_used": {"cpupercent": 0, "cput": "00:00:00", "mem": "0kb", "ncpus": job["ncpus"],
                               "vmem": "0kb", "walltime": f"{used // 3600:02d}:{used % 3600 // 60:02d}:{used % 60:02d}"},
        })
    if job["job_state"] == "F":
        if "Exit_status" in job:
            attrs["Exit_status"] = job["Exit_status"]
            attrs["comment"] = f"Job run at {_stamp(job['stime'])} on (x0000:ncpus={job['ncpus']}) and finished"
        else:
            attrs["comment"] = f"Job deleted by {job['user']}"
        attrs["history_timestamp"] = int(job["mtime"])
    elif job["job_state"] == "R":
        attrs["comment"] = f"Job run at {_stamp(job['stime'])} on (x0000:ncpus={job['ncpus']})"
    return attrs


def qstat(args: list[str]) -> int:
    """``qstat [-x] -f -F json ids...``."""
    history = "-x" in args
    if "-f" not in args or "json" not in args:
        raise UsageError("this simulator prints only 'qstat [-x] -f -F json [ids]'")
    ids = [a for a in args if not a.startswith("-") and a != "json"]
    with locked_state() as state:
        jobs = state["jobs"]
        selected: dict[str, Any] = {}
        status = 0
        for given in ids or [j["id"] for j in jobs.values()]:
            job = _find(jobs, given)
            if job is None:
                print(f"qstat: Unknown Job Id {given}", file=sys.stderr)
                status = EXIT_UNKNOWN
            elif job["job_state"] == "F" and not history:
                print(f"qstat: {job['id']} Job has finished, use -x or -H to obtain historical job information",
                      file=sys.stderr)
                status = EXIT_HISTORY
            else:
                selected[job["id"]] = _attributes(job)
    document = {"timestamp": int(time.time()), "pbs_version": "2022.1.5.20240213134632",
                "pbs_server": server(), "Jobs": selected}
    if selected or not ids:
        print(json.dumps(document, indent=4))
    return status


def qdel(args: list[str]) -> int:
    """Deletes jobs: queued/held ones finish at once without Exit_status, running ones are signalled."""
    status = 0
    with locked_state() as state:
        for given in [a for a in args if not a.startswith("-")]:
            job = _find(state["jobs"], given)
            if job is None:
                print(f"qdel: Unknown Job Id {given}", file=sys.stderr)
                status = EXIT_UNKNOWN
            elif job["job_state"] == "F":
                print(f"qdel: Job has finished {job['id']}", file=sys.stderr)
                status = EXIT_HISTORY
            elif job["job_state"] in ("Q", "H"):
                job.update(job_state="F", mtime=time.time(), substate=91)
            else:
                job["deleting"] = True
    return status


def hold_release(command: str, args: list[str]) -> int:
    """``qhold`` (queued jobs only) and ``qrls``."""
    status = 0
    with locked_state() as state:
        for given in [a for a in args if not a.startswith("-")]:
            job = _find(state["jobs"], given)
            if job is None:
                print(f"{command}: Unknown Job Id {given}", file=sys.stderr)
                status = EXIT_UNKNOWN
            elif job["job_state"] == "F":
                print(f"{command}: Job has finished {job['id']}", file=sys.stderr)
                status = EXIT_HISTORY
            elif command == "qhold" and job["job_state"] in ("Q", "H"):
                job.update(job_state="H", hold_types="u")
            elif command == "qrls" and job["job_state"] in ("Q", "H"):
                job.update(job_state="Q", hold_types="n")
            else:
                print(f"{command}: Request invalid for state of job {job['id']}", file=sys.stderr)
                status = EXIT_BADSTATE
    return status


def qselect(args: list[str]) -> int:
    """``qselect [-x] [-N name] [-u user]``: matching ids, one per line."""
    history = "-x" in args
    name = args[args.index("-N") + 1] if "-N" in args and args.index("-N") + 1 < len(args) else None
    user = args[args.index("-u") + 1] if "-u" in args and args.index("-u") + 1 < len(args) else None
    with locked_state() as state:
        jobs = sorted(state["jobs"].values(), key=lambda j: j["seq"])
    for job in jobs:
        if (history or job["job_state"] != "F") and name in (None, job["name"]) and user in (None, job["user"]):
            print(job["id"])
    return 0


def mpiexec(args: list[str]) -> int:
    """``mpiexec -n N --ppn P program args`` (starts rank 0 only, exporting ``PBS_SIM_RANKS``)."""
    env = dict(os.environ)
    index = 0
    while index < len(args) and args[index].startswith("-"):
        if args[index] in ("-n", "-np") and index + 1 < len(args):
            env["PBS_SIM_RANKS"] = args[index + 1]
        index += 2 if args[index] in ("-n", "-np", "--ppn", "--depth", "--cpu-bind") else 1
    program = args[index:]
    if not program:
        raise UsageError("no program given")
    try:
        os.execvpe(program[0], program, env)
    except OSError as exc:
        print(f"mpiexec: cannot run {program[0]}: {exc}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - exec does not return
