"""The Cobalt simulator's job runner: one detached process per job, started by ``qsub``.

It waits while the job is queued or held, "boots the block", runs the job's command in its own process
group with the job's environment, kills it at the walltime (or on ``qdel``), writes the exit code to the
``.cobaltlog`` as Cobalt's queue manager does, and removes the job from the queue.
"""

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

from balsam_cobalt.simulator.engine import append_cobaltlog, locked_state, seconds_per_minute  # noqa: E402

_TICK = 0.05
_KILL_GRACE = 2.0


def _set(job_id: str, **fields: object) -> dict | None:
    with locked_state() as state:
        job = state["jobs"].get(job_id)
        if job is not None:
            job.update(fields)
        return None if job is None else dict(job)


def _wait_until_eligible(job_id: str) -> dict | None:
    while True:
        with locked_state() as state:
            job = state["jobs"].get(job_id)
            if job is None:
                return None  # deleted while queued (qdel wrote the log)
            if not job["user_hold"] and time.time() >= job["eligible_at"]:
                job["state"] = "starting"
                job["start_time"] = time.time()
                return dict(job)
        time.sleep(_TICK)


def _kill(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def run(job_id: str) -> int:
    """Runs one job to its end."""
    job = _wait_until_eligible(job_id)
    if job is None:
        return 0
    append_cobaltlog(job, f"{job['user']}/{job_id}: Initiating boot at location {job['location']}.")
    env = dict(job["env"])
    workdir = job["cwd"] if os.path.isdir(job["cwd"]) else "/"
    with open(job["output"], "ab") as out, open(job["error"], "ab") as err:
        try:
            process = subprocess.Popen(job["command"], cwd=workdir, env=env, stdout=out, stderr=err,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            err.write(f"cobalt: cannot start {job['command'][0]}: {exc}\n".encode())
            return _finish(job_id, job, 127)
    _set(job_id, state="running", task_pid=process.pid)
    deadline = job["start_time"] + job["walltime"] * seconds_per_minute()
    killed_at: float | None = None
    while True:
        try:
            code = process.wait(timeout=_TICK)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.time()
        with locked_state() as state:
            current = state["jobs"].get(job_id, {})
            deleting = current.get("deleting", False)
        if killed_at is None and deleting:
            killed_at = now
            _kill(process, signal.SIGTERM)
        elif killed_at is None and now >= deadline:
            append_cobaltlog(job, "maximum execution time exceeded; initiating job terminiation")
            _set(job_id, state="killing")
            killed_at = now
            _kill(process, signal.SIGTERM)
        elif killed_at is not None and now - killed_at > _KILL_GRACE:
            _kill(process, signal.SIGKILL)
    # A task killed by a signal leaves the shell's convention, 128 + signal number.
    return _finish(job_id, job, code if code >= 0 else 128 - code)


def _finish(job_id: str, job: dict, code: int) -> int:
    _set(job_id, state="exiting")
    append_cobaltlog(job, f"task completed normally with an exit code of {code}; "
                          "initiating job cleanup and removal")
    time.sleep(_TICK)  # the job is briefly visible as 'exiting', as on a real machine
    with locked_state() as state:
        state["jobs"].pop(job_id, None)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
