"""Background runner of one simulated cluster: runs its jobs (or its DAG's nodes) to the end.

Started detached by the simulated ``condor_submit``/``condor_submit_dag``:
``python -m balsam_condor.simulator.runner CLUSTER`` with ``CONDOR_SIM_DIR`` set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from balsam_condor.simulator import submitfile, tools, userlog
from balsam_condor.simulator.state import locked

TICK = 0.05


def _periodic_remove(ad: dict[str, Any]) -> bool:
    expression = ad.get("PeriodicRemove")
    if not expression:
        return False
    import classad2

    public = {k: v for k, v in ad.items() if not k.startswith("Sim") and k != "PeriodicRemove"}
    try:
        return classad2.ExprTree(expression).eval(classad2.ClassAd(public)) is True
    except Exception:  # noqa: BLE001 - HTCondor treats an unevaluable policy as false
        return False


def _start(ad: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = dict(os.environ) if ad.get("SimGetenv") else {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    env.update(ad.get("SimEnv", {}))
    env["_CONDOR_SCRATCH_DIR"] = ad["Iwd"]
    with open(ad["Out"], "ab") as out, open(ad["Err"], "ab") as err, open(ad["In"], "rb") as stdin:
        return subprocess.Popen([ad["Cmd"], *ad.get("SimArgv", [])], cwd=ad["Iwd"], env=env,
                                stdin=stdin, stdout=out, stderr=err, start_new_session=True)


def run_job(key: str) -> dict[str, Any] | None:
    """Runs one job until it leaves the queue; returns its final ad (None if it vanished)."""
    while True:
        with locked(tools.sim_dir()) as state:
            ad = state["queue"].get(key)
            if ad is None:
                return next((h for h in reversed(state["history"])
                             if f"{h['ClusterId']}.{h['ProcId']}" == key), None)
            if ad["JobStatus"] == 3:
                userlog.aborted(ad.get("UserLog"), ad["ClusterId"], ad["ProcId"], ad.get("RemoveReason", ""))
                state["history"].append(state["queue"].pop(key))
                return ad
            process = None
            if ad["JobStatus"] == 1:
                now = int(time.time())
                try:
                    process = _start(ad)
                except OSError as exc:
                    reason = f"Error from simulator: Failed to execute '{ad['Cmd']}': {exc.strerror}"
                    ad.update(JobStatus=5, HoldReason=reason, HoldReasonCode=6, EnteredCurrentStatus=now)
                    userlog.held(ad.get("UserLog"), ad["ClusterId"], ad["ProcId"], reason, 6)
                else:
                    ad.update(JobStatus=2, JobCurrentStartDate=now, EnteredCurrentStatus=now,
                              NumJobStarts=ad.get("NumJobStarts", 0) + 1)
                    state["private"].setdefault(key, {})["pid"] = process.pid
                    userlog.executing(ad.get("UserLog"), ad["ClusterId"], ad["ProcId"])
        if process is None:
            time.sleep(TICK)  # held: wait for condor_release or condor_rm
            continue
        final = _watch(key, process)
        if final is not None:
            return final


def _watch(key: str, process: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    while True:
        returncode = process.poll()
        with locked(tools.sim_dir()) as state:
            ad = state["queue"][key]
            if returncode is None:
                if ad["JobStatus"] == 2 and _periodic_remove(ad):
                    ad.update(JobStatus=3, EnteredCurrentStatus=int(time.time()), RemoveReason=(
                        f"The job attribute PeriodicRemove expression '{ad['PeriodicRemove']}' "
                        "evaluated to TRUE"))
                    tools._kill(process.pid)
                continue_waiting = True
            else:
                continue_waiting = False
                state["private"].get(key, {}).pop("pid", None)
                cluster, proc = ad["ClusterId"], ad["ProcId"]
                if ad["JobStatus"] == 3:
                    userlog.aborted(ad.get("UserLog"), cluster, proc, ad.get("RemoveReason", ""))
                    state["history"].append(state["queue"].pop(key))
                    return ad
                if ad["JobStatus"] == 5:
                    return None  # evicted by condor_hold: runs again after condor_release
                signal = -returncode if returncode < 0 else None
                ad.update(JobStatus=4, CompletionDate=int(time.time()), ExitBySignal=signal is not None,
                          EnteredCurrentStatus=int(time.time()))
                if signal is None:
                    ad["ExitCode"] = returncode
                else:
                    ad["ExitSignal"] = signal
                userlog.terminated(ad.get("UserLog"), cluster, proc,
                                   exit_code=returncode if signal is None else None, signal=signal)
                state["history"].append(state["queue"].pop(key))
                return ad
        if continue_waiting:
            time.sleep(TICK)


def run_dag(key: str, dag_file: Path) -> None:
    """Runs a DAG's node jobs one after another, then ends the DAGMan job (exit 0, or 1 on failure)."""
    cluster = int(key.split(".")[0])
    exit_code = 0
    userlog.executing(str(dag_file.with_name(dag_file.name + ".dagman.log")), cluster, 0)
    with locked(tools.sim_dir()) as state:
        state["queue"][key].update(JobStatus=2, JobCurrentStartDate=int(time.time()))
    for node in submitfile.parse_dag(dag_file.read_text()):
        while True:  # a held DAGMan job submits no further nodes
            with locked(tools.sim_dir()) as state:
                status = state["queue"][key]["JobStatus"]
            if status != 5:
                break
            time.sleep(TICK)
        if status == 3:
            break
        node_dir = dag_file.parent / node.directory
        description = submitfile.parse_submit((node_dir / node.submit_file).read_text(), [])
        os.chdir(node_dir)
        try:
            node_cluster, count = tools.queue_jobs(description, node_dir, extra={
                "DAGManJobId": cluster, "DAGNodeName": node.name})
        except submitfile.SubmitError:
            exit_code = 1
            break
        finals = [run_job(f"{node_cluster}.{proc}") for proc in range(count)]
        if any(ad is None or ad.get("JobStatus") != 4 or ad.get("ExitCode") != 0 for ad in finals):
            exit_code = 1
            break
    with locked(tools.sim_dir()) as state:
        ad = state["queue"].pop(key)
        if ad["JobStatus"] == 3:
            # condor_rm of a DAGMan job removes its node jobs too.
            for node_key, node_ad in list(state["queue"].items()):
                if node_ad.get("DAGManJobId") == cluster:
                    node_ad.update(JobStatus=3, RemoveReason="Removed by DAGMan")
                    tools._kill(state["private"].get(node_key, {}).get("pid") or 0)
        else:
            ad.update(JobStatus=4, ExitCode=exit_code, ExitBySignal=False, CompletionDate=int(time.time()))
        state["history"].append(ad)
        state["runners"].pop(str(cluster), None)


def main(argv: list[str]) -> int:
    """Runs every job of the cluster named on the command line."""
    cluster = argv[0]
    with locked(tools.sim_dir()) as state:
        keys = sorted((k for k in state["queue"] if k.split(".")[0] == cluster),
                      key=lambda k: int(k.split(".")[1]))
        dag = state["queue"][keys[0]].get("SimDag") if keys else None
    if dag:
        run_dag(keys[0], Path(dag))
        return 0
    for key in keys:
        run_job(key)
    with locked(tools.sim_dir()) as state:
        state["runners"].pop(cluster, None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
