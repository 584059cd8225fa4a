"""The simulated ``condor_*`` tools: options, effects on the state, and the real tools' wording."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from balsam_condor.simulator import submitfile, userlog
from balsam_condor.simulator.state import locked

CONNECT_ERROR = ("\n-- Failed to fetch ads from: <127.0.0.1:9618?addrs=127.0.0.1-9618&noUDP&sock=simulator>"
                 " : simulator\nCEDAR:6001:Failed to connect to <127.0.0.1:9618?addrs=127.0.0.1-9618>\n")
UNIVERSES = {"vanilla": 5, "scheduler": 7, "local": 12}


def sim_dir() -> Path:
    """The state directory (``$CONDOR_SIM_DIR``)."""
    value = os.environ.get("CONDOR_SIM_DIR")
    if not value:
        sys.stderr.write("ERROR: CONDOR_SIM_DIR is not set (HTCondor simulator)\n")
        raise SystemExit(1)
    return Path(value)


def _fault(command: str) -> None:
    with locked(sim_dir()) as state:
        fault = state.get("faults", {}).get(command)
        if not fault or fault["count"] <= 0:
            return
        fault["count"] -= 1
        mode = fault["mode"]
    if mode == "hang":
        time.sleep(3600)
    if mode == "garbage":
        sys.stdout.write("<html><body>502 Bad Gateway</body></html>\n")
        raise SystemExit(0)
    sys.stderr.write(CONNECT_ERROR)
    raise SystemExit(1)


def main(command: str, args: list[str]) -> int:
    """Runs one simulated tool; returns its exit status."""
    _fault(command)
    tools: dict[str, Callable[[list[str]], int]] = {
        "condor_submit": condor_submit, "condor_submit_dag": condor_submit_dag,
        "condor_q": lambda a: query(a, history=False), "condor_history": lambda a: query(a, history=True),
        "condor_rm": lambda a: act(a, "remove"), "condor_hold": lambda a: act(a, "hold"),
        "condor_release": lambda a: act(a, "release"),
    }
    try:
        return tools[command](args)
    except submitfile.SubmitError as exc:
        sys.stderr.write(f"\n{exc}\n")
        return 1


# --- submitting ---


def _spawn_runner(cluster: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "balsam_condor.simulator.runner", str(cluster)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)
    with locked(sim_dir()) as state:
        state["runners"][str(cluster)] = proc.pid


def _classad_value(text: str) -> Any:
    import classad2  # the bindings evaluate custom attribute expressions exactly as HTCondor does

    try:
        value = classad2.ExprTree(text).eval()
    except Exception:  # noqa: BLE001 - an unparsable expression is kept as the text HTCondor stores
        return text
    return value if isinstance(value, (str, int, float, bool)) else text


def queue_jobs(description: submitfile.SubmitDescription, cwd: Path, *,
               extra: dict[str, Any] | None = None) -> tuple[int, int]:
    """Queues the jobs of a parsed description; returns (cluster id, number of jobs)."""
    with locked(sim_dir()) as state:
        cluster = state["next_cluster"]
        state["next_cluster"] += 1
        ads = [_job_ad(description, cwd, cluster, proc, extra or {}) for proc in range(description.count)]
        for ad in ads:
            state["queue"][f"{cluster}.{ad['ProcId']}"] = ad
    for ad in ads:
        userlog.submitted(ad.get("UserLog"), cluster, ad["ProcId"])
    return cluster, len(ads)


def _job_ad(description: submitfile.SubmitDescription, cwd: Path, cluster: int, proc: int,
            extra: dict[str, Any]) -> dict[str, Any]:
    def get(name: str, default: str = "") -> str:
        value = description.commands.get(name, default)
        return description.expand(value, cluster=cluster, proc=proc)

    universe = get("universe", "vanilla").lower()
    if universe not in UNIVERSES:
        raise submitfile.SubmitError(f"ERROR: I don't know about the '{universe}' universe.")
    executable = get("executable")
    if not executable:
        raise submitfile.SubmitError("ERROR: Submit requires an executable")
    exe_path = Path(executable) if Path(executable).is_absolute() else cwd / executable
    if not exe_path.exists():
        raise submitfile.SubmitError(f"ERROR: Executable file {exe_path} does not exist")
    iwd = Path(get("initialdir") or get("iwd") or str(cwd))
    iwd = iwd if iwd.is_absolute() else cwd / iwd
    if not iwd.is_dir():
        raise submitfile.SubmitError(f"ERROR: No such directory: {iwd}")

    def in_iwd(name: str) -> str:
        value = get(name)
        if not value:
            return "/dev/null"
        return value if Path(value).is_absolute() else str(iwd / value)

    now = int(time.time())
    ad: dict[str, Any] = {
        "ClusterId": cluster, "ProcId": proc, "JobStatus": 1, "EnteredCurrentStatus": now,
        "QDate": now, "Owner": getpass.getuser(), "JobUniverse": UNIVERSES[universe],
        "Cmd": str(exe_path), "Iwd": str(iwd), "Out": in_iwd("output"), "Err": in_iwd("error"),
        "In": in_iwd("input"), "RequestCpus": int(get("request_cpus", "1") or 1),
        "NumJobStarts": 0, "MyType": "Job", "TargetType": "Machine",
    }
    log = get("log")
    if log:
        ad["UserLog"] = log if Path(log).is_absolute() else str(iwd / log)
    arguments = description.commands.get("arguments") or description.commands.get("args")
    if arguments is not None:
        ad["Arguments"] = " ".join(submitfile.split_arguments(
            description.expand(arguments, cluster=cluster, proc=proc)))
        ad["SimArgv"] = submitfile.split_arguments(description.expand(arguments, cluster=cluster, proc=proc))
    environment = description.commands.get("environment") or description.commands.get("env")
    if environment:
        ad["SimEnv"] = submitfile.parse_environment(
            description.expand(environment, cluster=cluster, proc=proc))
    ad["SimGetenv"] = get("getenv", "false").lower() in ("true", "yes", "1")
    periodic_remove = get("periodic_remove")
    if periodic_remove:
        ad["PeriodicRemove"] = periodic_remove
    batch_name = get("batch_name")
    if batch_name:
        ad["JobBatchName"] = batch_name
    for name, value in description.custom.items():
        ad[name] = _classad_value(description.expand(value, cluster=cluster, proc=proc))
    ad.update(extra)
    return ad


def _take_options(args: list[str], with_value: set[str], flags: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    options: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        key = word.lstrip("-").lower() if word.startswith("-") and word != "-" else None
        if key in with_value:
            if i + 1 >= len(args):
                raise submitfile.SubmitError(f"ERROR: {word} requires an argument")
            options.setdefault(key, []).append(args[i + 1])
            i += 2
            continue
        if key in flags:
            options.setdefault(key, []).append("")
        elif key is not None:
            raise submitfile.SubmitError(f"ERROR: unknown option {word}")
        else:
            rest.append(word)
        i += 1
    return options, rest


def condor_submit(args: list[str]) -> int:
    """``condor_submit [-append cmd]... [-batch-name name] [name=value]... file``."""
    options, rest = _take_options(args, {"append", "a", "batch-name"}, {"terse", "verbose"})
    appended = options.get("append", []) + options.get("a", [])
    appended += [f"batch_name = {name}" for name in options.get("batch-name", [])]
    files = [w for w in rest if "=" not in w]
    appended += [w for w in rest if "=" in w]
    if len(files) != 1:
        raise submitfile.SubmitError("ERROR: condor_submit needs one submit description file")
    path = Path(files[0])
    if not path.is_file():
        raise submitfile.SubmitError(f"ERROR: Can't open \"{files[0]}\"  with flags 00 (No such file or directory)")
    description = submitfile.parse_submit(path.read_text(), appended)
    cluster, count = queue_jobs(description, Path.cwd())
    if count:
        _spawn_runner(cluster)
    sys.stdout.write("Submitting job(s)" + "." * count + f"\n{count} job(s) submitted to cluster {cluster}.\n")
    return 0


def condor_submit_dag(args: list[str]) -> int:
    """``condor_submit_dag [-force] [-batch-name name] [-append cmd]... file.dag``."""
    options, rest = _take_options(args, {"append", "a", "batch-name", "notification"},
                                  {"force", "f", "no_submit", "verbose"})
    if len(rest) != 1:
        raise submitfile.SubmitError("ERROR: condor_submit_dag needs one DAG file")
    dag = Path(rest[0]).resolve()
    if not dag.is_file():
        raise submitfile.SubmitError(f"ERROR: Unable to read DAG file {rest[0]}")
    nodes = submitfile.parse_dag(dag.read_text())
    for node in nodes:
        node_file = dag.parent / node.directory / node.submit_file
        if not node_file.is_file():
            raise submitfile.SubmitError(f"ERROR: Can't open \"{node.submit_file}\" (node {node.name})")
    sub = dag.with_name(dag.name + ".condor.sub")
    if sub.exists() and "force" not in options and "f" not in options:
        raise submitfile.SubmitError(
            f"ERROR: \"{sub.name}\" already exists.\n"
            "Some file(s) needed by condor_dagman already exist.  Either rename them,\n"
            "use the \"-f\" option to force them to be overwritten, or use\n"
            "the \"-update_submit\" option to update the submit file and continue.")
    lines = ["# Filename: " + sub.name, "universe\t= scheduler", "executable\t= condor_dagman",
             f"log\t\t= {dag.name}.dagman.log", f"arguments\t= \"-p 0 -f -l . -Dag {dag.name}\""]
    lines += options.get("append", []) + options.get("a", [])
    sub.write_text("\n".join(lines + ["queue", ""]))
    description = submitfile.parse_submit("\n".join(
        ["universe = scheduler", f"executable = {sys.executable}", f"initialdir = {dag.parent}",
         f"log = {dag.name}.dagman.log", "queue"]), options.get("append", []) + options.get("a", []))
    batch = options.get("batch-name", [f"{dag.name}+$(Cluster)"])[0]
    cluster, _ = queue_jobs(description, dag.parent, extra={
        "Cmd": "condor_dagman", "SimDag": str(dag), "JobBatchName": batch})
    _spawn_runner(cluster)
    dashes = "-" * 71
    sys.stdout.write(
        f"\n{dashes}\n"
        f"File for submitting this DAG to HTCondor           : {dag.name}.condor.sub\n"
        f"Log of DAGMan debugging messages                 : {dag.name}.dagman.out\n"
        f"Log of HTCondor library output                     : {dag.name}.lib.out\n"
        f"Log of HTCondor library error messages             : {dag.name}.lib.err\n"
        f"Log of the life of condor_dagman itself          : {dag.name}.dagman.log\n\n"
        f"Submitting job(s).\n1 job(s) submitted to cluster {cluster}.\n{dashes}\n")
    return 0


# --- querying ---


def _matches(ad: dict[str, Any], ids: list[str], constraint: str | None) -> bool:
    if ids and not any(_id_matches(ad, job_id) for job_id in ids):
        return False
    if constraint:
        import classad2

        public = {k: v for k, v in ad.items() if not k.startswith("Sim")}
        return classad2.ExprTree(constraint).eval(classad2.ClassAd(public)) is True
    return True


def _id_matches(ad: dict[str, Any], job_id: str) -> bool:
    cluster, _, proc = job_id.partition(".")
    if not cluster.isdigit():
        return ad.get("Owner") == job_id
    return ad["ClusterId"] == int(cluster) and (not proc or ad["ProcId"] == int(proc))


def render_json(ads: list[dict[str, Any]]) -> str:
    """ClassAd JSON as ``condor_q -json`` prints it: attributes sorted case-insensitively, ads
    separated by a lone comma line, nothing at all for no ads."""
    if not ads:
        return ""
    blocks = []
    for ad in ads:
        items = sorted(ad.items(), key=lambda kv: kv[0].lower())
        body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in items)
        blocks.append("{\n" + body + "\n}\n")
    return "[\n" + ",\n".join(blocks) + "]\n"


def query(args: list[str], *, history: bool) -> int:
    """``condor_q`` / ``condor_history`` with ``-json``, ``-attributes``, ``-constraint``, ids."""
    options, ids = _take_options(
        args, {"attributes", "constraint", "match", "limit", "af", "autoformat"} if not history
        else {"attributes", "constraint", "match", "limit"},
        {"json", "nobatch", "allusers", "long", "l", "forwards", "backwards"})
    constraint = options.get("constraint", [None])[-1]
    if constraint:
        import classad2

        try:
            classad2.ExprTree(constraint)
        except Exception:  # noqa: BLE001 - the real tools reject the expression the same way
            sys.stderr.write(f"Error: invalid constraint {constraint!r}\n")
            return 1
    with locked(sim_dir()) as state:
        ads = list(reversed(state["history"])) if history else list(state["queue"].values())
    found = [ad for ad in ads if _matches(ad, ids, constraint)]
    limit = options.get("match", options.get("limit", [None]))[-1]
    if limit is not None:
        found = found[: int(limit)]
    attributes = options.get("attributes", [None])[-1]
    public = []
    for ad in found:
        shown = {k: v for k, v in ad.items() if not k.startswith("Sim")}
        if attributes:
            wanted = {a.strip().lower() for a in attributes.split(",")}
            shown = {k: v for k, v in shown.items() if k.lower() in wanted}
        public.append(shown)
    if "json" in options:
        sys.stdout.write(render_json(public))
    else:
        for ad in public:
            sys.stdout.write("\n".join(f"{k} = {json.dumps(v)}" for k, v in sorted(ad.items())) + "\n\n")
    return 0


# --- acting on jobs ---

_VERBS = {
    "remove": ("remove", "marked for removal", "have been marked for removal", "condor_rm"),
    "hold": ("hold", "held", "have been held", "condor_hold"),
    "release": ("release", "released", "have been released", "condor_release"),
}


def act(args: list[str], action: str) -> int:
    """``condor_rm`` / ``condor_hold`` / ``condor_release`` on clusters or cluster.proc ids."""
    options, ids = _take_options(args, {"reason", "constraint"}, {"all"})
    verb, done_job, done_cluster, tool = _VERBS[action]
    reason = options.get("reason", [f"via {tool} (by user {getpass.getuser()})"])[-1]
    status = 0
    for job_id in ids:
        with locked(sim_dir()) as state:
            keys = [k for k, ad in state["queue"].items() if _id_matches(ad, job_id)]
            changed = [_apply(state, key, action, reason) for key in keys]
        if keys and all(changed):
            if "." in job_id:
                sys.stdout.write(f"Job {job_id} {done_job}\n")
            else:
                sys.stdout.write(f"All jobs in cluster {job_id} {done_cluster}\n")
        else:
            status = 1
            what = f"job {job_id}" if "." in job_id else f"all jobs in cluster {job_id}"
            sys.stderr.write(f"Couldn't find/{verb} {what}\n")
    return status


def _apply(state: dict[str, Any], key: str, action: str, reason: str) -> bool:
    ad = state["queue"][key]
    private = state["private"].setdefault(key, {})
    now = int(time.time())
    cluster, proc = ad["ClusterId"], ad["ProcId"]
    if action == "remove":
        if ad["JobStatus"] == 3:
            return True
        ad.update(JobStatus=3, RemoveReason=reason, EnteredCurrentStatus=now)
        if private.get("pid"):
            _kill(private["pid"])  # the runner moves the ad to the history once the program died
        else:
            userlog.aborted(ad.get("UserLog"), cluster, proc, reason)
            state["history"].append(state["queue"].pop(key))
        return True
    if action == "hold":
        if ad["JobStatus"] in (3, 4):
            return False
        if ad["JobStatus"] != 5:
            ad.update(JobStatus=5, HoldReason=reason, HoldReasonCode=1, EnteredCurrentStatus=now)
            userlog.held(ad.get("UserLog"), cluster, proc, reason, 1)
            if private.get("pid"):
                _kill(private["pid"])  # evicted: it starts again from the beginning once released
        return True
    if ad["JobStatus"] != 5:
        return False
    ad.update(JobStatus=1, EnteredCurrentStatus=now, ReleaseReason=reason)
    ad.pop("HoldReason", None)
    ad.pop("HoldReasonCode", None)
    userlog.released(ad.get("UserLog"), cluster, proc, reason)
    return True


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
