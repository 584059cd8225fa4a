"""The live display of ``argo watch``: one progress line per job.

On a terminal the block of lines is redrawn in place (ANSI cursor movement); elsewhere (a pipe, a log
file, a CI job) a line is printed each time a job's line changes, so the output stays readable.
"""

from __future__ import annotations

from typing import TextIO

from argobalsam.argo.v1 import job_pb2

from argo_client.render import current_step, job_id, job_progress, job_state_name, step_state_name

BAR_WIDTH = 24


def progress_line(job: job_pb2.Job) -> str:
    """``<id>  [#####.....]  40%  RUNNING  step 2/2 vesta QUEUED`` (plus the reason of a failure)."""
    fraction = job_progress(job)
    filled = round(fraction * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    line = f"{job_id(job.name)}  [{bar}] {round(fraction * 100):3d}%  {job_state_name(job.state):9}"
    step = current_step(job)
    if step is not None:
        position = list(job.steps).index(step) + 1
        line += f"  step {position}/{len(job.steps)} {step.target_site} {step_state_name(step.state)}"
        if step.scheduler_id:
            line += f" ({step.scheduler_id})"
        if step.state_reason and step.state in (job_pb2.STEP_STATE_FAILED, job_pb2.STEP_STATE_REJECTED,
                                                job_pb2.STEP_STATE_HELD):
            line += f": {step.state_reason}"
    return line


class WatchDisplay:
    """Keeps the latest state of the watched jobs and draws them on ``stream``."""

    def __init__(self, stream: TextIO, *, live: bool | None = None) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.jobs: dict[str, job_pb2.Job] = {}
        self._lines: dict[str, str] = {}
        self._drawn = 0

    def update(self, job: job_pb2.Job) -> None:
        """Records a job's new state and redraws (or prints its line when it changed)."""
        self.jobs[job.name] = job
        line = progress_line(job)
        if self._lines.get(job.name) == line:
            return
        self._lines[job.name] = line
        if self.live:
            self._redraw()
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _redraw(self) -> None:
        if self._drawn:
            # Back to the first line of the block, then clear to the end of the screen.
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
        lines = list(self._lines.values())
        self.stream.write("".join(line + "\n" for line in lines))
        self.stream.flush()
        self._drawn = len(lines)
