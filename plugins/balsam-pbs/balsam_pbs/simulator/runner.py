"""The PBS simulator's job runner: waits while queued/held, runs the script, records Exit_status."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from balsam_pbs.simulator.engine import locked_state, seconds_per_minute  # noqa: E402

_TICK = 0.05
_KILL_GRACE = 2.0
WALLTIME_EXIT = -29  # JOB_EXEC_KILL_WALLTIME


def _update(job_id: str, **fields: object) -> dict:
    with locked_state() as state:
        job = state["jobs"][job_id]
        job.update(fields)
        return dict(job)


def run(job_id: str) -> int:
    """Runs one job to its end and leaves it in the history (job_state F)."""
    while True:
        with locked_state() as state:
            job = state["jobs"].get(job_id)
            if job is None or job["job_state"] == "F":
                return 0
            if job["job_state"] == "Q" and time.time() >= job["eligible_at"]:
                job.update(job_state="R", stime=time.time(), substate=42)
                job = dict(job)
                break
        time.sleep(_TICK)
    nodefile = Path(job["workdir"]) / f".pbs_nodefile.{job_id}"
    with contextlib.suppress(OSError):
        nodefile.write_text("".join(f"x{n:04d}\n" for n in range(job["nodes"])))
    env = {**job["env"], "PBS_JOBID": job_id, "PBS_JOBNAME": job["name"], "PBS_O_WORKDIR": job["workdir"],
           "PBS_NODEFILE": str(nodefile), "PBS_QUEUE": job["queue"]}
    with open(job["output"], "ab") as out, open(job["error"], "ab") as err:
        try:
            process = subprocess.Popen(["/bin/bash", job["script"]], cwd=os.environ.get("HOME", "/"), env=env,
                                       stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            _end(job_id, -1)
            return 0
    _update(job_id, task_pid=process.pid)
    deadline = job["stime"] + job["walltime_minutes"] * seconds_per_minute()
    killed_at: float | None = None
    overrun = False
    while True:
        try:
            code = process.wait(timeout=_TICK)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.time()
        with locked_state() as state:
            deleting = state["jobs"][job_id].get("deleting", False)
        if killed_at is None and (deleting or now >= deadline):
            overrun = not deleting
            killed_at = now
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGTERM)
        elif killed_at is not None and now - killed_at > _KILL_GRACE:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
    if overrun:
        code = WALLTIME_EXIT
    elif code < 0:
        code = 256 - code  # PBS reports a job killed by signal N as 256 + N
    _end(job_id, code)
    return 0


def _end(job_id: str, code: int) -> None:
    _update(job_id, job_state="E")
    time.sleep(_TICK)
    _update(job_id, job_state="F", Exit_status=code, mtime=time.time(), substate=92)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
