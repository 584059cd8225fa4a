"""One step attempt at the agent and the blocking work of its phases.

The engine (:mod:`balsam_agent.agent`) decides *when* a phase runs; the functions here do the phase's
work on a worker thread: stage-in, pre-process, submit, post-process, stage-out. Each raises
:class:`PhaseFailed` with the reason the user reads.
"""

from __future__ import annotations

import subprocess
import threading
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from argobalsam.argo.v1 import job_pb2
from argobalsam.balsam.v1 import assignment_pb2

from balsam_agent import metrics
from balsam_agent.plugin_manager import Plugins
from balsam_agent.records import SiteProfile, StepContext
from balsam_agent.safety import Rejected, path_in_workdir, resolve_hook, resolve_program
from balsam_agent.scheduler import LaunchSpec, SchedulerBackend, SchedulerError
from balsam_agent.state import StepRow
from balsam_agent.transfer import TransferBackend, TransferError, TransferItem

#: Pipeline phases in order; ``run`` waits for the scheduler, ``done`` reports SUCCEEDED.
PHASES = ("accepted", "stage_in", "preprocess", "submit", "run", "postprocess", "stage_out", "done")

#: The StepPhase reported when a phase fails.
FAILED_PHASE = {
    "accepted": job_pb2.STEP_PHASE_DISPATCH,
    "stage_in": job_pb2.STEP_PHASE_STAGE_IN,
    "preprocess": job_pb2.STEP_PHASE_PREPROCESS,
    "submit": job_pb2.STEP_PHASE_SUBMIT,
    "run": job_pb2.STEP_PHASE_RUN,
    "postprocess": job_pb2.STEP_PHASE_POSTPROCESS,
    "stage_out": job_pb2.STEP_PHASE_STAGE_OUT,
}

#: Seconds a pre-/post-process script may take.
SCRIPT_TIMEOUT = 3600.0


class PhaseFailed(Exception):
    """A phase failed; the message is the reason reported with FAILED."""


def next_phase(phase: str) -> str:
    """The phase after ``phase``."""
    return PHASES[PHASES.index(phase) + 1]


@dataclass(eq=False)
class StepRun:
    """One step attempt as the engine tracks it (mirrors a row of the ``steps`` table)."""

    step_id: str
    attempt: int
    job_id: str
    step_index: int
    envelope: assignment_pb2.AssignmentEnvelope
    workdir: Path
    phase: str = "accepted"
    state: int = job_pb2.STEP_STATE_UNSPECIFIED
    resume_state: int = job_pb2.STEP_STATE_UNSPECIFIED
    sequence: int = 0
    scheduler_id: str = ""
    held: bool = False
    cancel_requested: bool = False
    terminal: bool = False
    exit_code: int | None = None
    created: float = 0.0
    updated: float = 0.0
    #: A worker is doing this attempt's current phase (or a cancel/hold/release).
    busy: bool = False
    #: Set on cancel: transfers stop early.
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: Poll cycles in which the scheduler did not know the job.
    misses: int = 0
    #: Loaded from the database at start: a submit may have happened before the crash.
    recovering: bool = False
    #: The working directory was prepared by this agent process (by the worker of the first phase).
    workdir_ready: bool = False

    @property
    def assign(self) -> assignment_pb2.Assign:
        """The assignment."""
        return self.envelope.assign

    @property
    def step(self) -> job_pb2.Step:
        """The step as submitted."""
        return self.envelope.assign.step

    @property
    def job_name(self) -> str:
        """Scheduler job name, unique per step attempt: re-adopts a job after a crash."""
        return f"argo-{self.job_id}-{self.step_index}-a{self.attempt}"

    def to_row(self) -> StepRow:
        """The row to store."""
        return StepRow(
            step_id=self.step_id, attempt=self.attempt, job_id=self.job_id, step_index=self.step_index,
            phase=self.phase, state=self.state, resume_state=self.resume_state, sequence=self.sequence,
            scheduler_id=self.scheduler_id, workdir=str(self.workdir),
            envelope=self.envelope.SerializeToString(), held=self.held,
            cancel_requested=self.cancel_requested, terminal=self.terminal, exit_code=self.exit_code,
            created=self.created, updated=self.updated)

    @classmethod
    def from_row(cls, row: StepRow) -> StepRun:
        """Rebuilds an attempt from its stored row."""
        return cls(
            step_id=row.step_id, attempt=row.attempt, job_id=row.job_id, step_index=row.step_index,
            envelope=assignment_pb2.AssignmentEnvelope.FromString(row.envelope), workdir=Path(row.workdir),
            phase=row.phase, state=row.state, resume_state=row.resume_state, sequence=row.sequence,
            scheduler_id=row.scheduler_id, held=bool(row.held), cancel_requested=bool(row.cancel_requested),
            terminal=bool(row.terminal), exit_code=row.exit_code, created=row.created, updated=row.updated,
            recovering=True)


def program_argv(step: job_pb2.Step, site: SiteProfile) -> list[str]:
    """The step's argv with its program resolved inside the site's allowed directory.

    The program is ``executable``, or the first of ``executable_args`` when ``executable`` is empty (the
    seed's form).
    """
    args = list(step.executable_args)
    if step.executable:
        name = step.executable
    elif args:
        name, args = args[0], args[1:]
    else:
        raise Rejected("the step names no executable")
    return [resolve_program(name, site), *args]


def step_env(run: StepRun, ranks: int) -> dict[str, str]:
    """Environment the step's program and its scripts see."""
    step = run.step
    return {
        "ARGO_JOB_ID": run.job_id,
        "ARGO_STEP_INDEX": str(run.step_index),
        "ARGO_STEP": str(run.step_index),
        "ARGO_ATTEMPT": str(run.attempt),
        "ARGO_NUM_EVTS": str(step.num_evts),
        "ARGO_RANKS": str(ranks),
    }


def url_scheme(url: str) -> str:
    """The scheme of a URL (``file``, ``gsiftp``, ``globus``, ...)."""
    return urllib.parse.urlsplit(url).scheme


class PhaseRunner:
    """The blocking work of each phase, called on worker threads."""

    def __init__(self, site: SiteProfile, plugins: Plugins, scheduler: SchedulerBackend,
                 transfers: Callable[[str], TransferBackend]) -> None:
        self.site, self.plugins, self.scheduler, self.transfers = site, plugins, scheduler, transfers

    def context(self, run: StepRun) -> StepContext:
        """What hooks see of the attempt."""
        return StepContext(job_id=run.job_id, step_index=run.step_index, attempt=run.attempt, site=self.site,
                           workdir=run.workdir, step=run.step, scheduler_id=run.scheduler_id)

    def launch_spec(self, run: StepRun) -> LaunchSpec:
        """The checked launch description of the attempt."""
        step = run.step
        nodes, ppn = max(1, step.nodes), max(1, step.processes_per_node)
        return LaunchSpec(
            job_name=run.job_name, argv=tuple(program_argv(step, self.site)), workdir=run.workdir,
            nodes=nodes, processes_per_node=ppn, wall_minutes=effective_wall_minutes(step, self.site),
            scheduler_args=tuple(step.scheduler_args), env=step_env(run, nodes * ppn),
            stdout_path=run.workdir / "stdout.txt", stderr_path=run.workdir / "stderr.txt",
            condor_job_file=step.condor_job_file, condor_dagman_file=step.condor_dagman_file)

    # --- phases ---

    def stage_in(self, run: StepRun) -> None:
        """Fetches every input, one backend call per scheme."""
        run.workdir.mkdir(parents=True, exist_ok=True)
        groups: dict[str, list[TransferItem]] = defaultdict(list)
        try:
            for source in run.assign.inputs:
                path = path_in_workdir(run.workdir, source.name, "input file")
                path.parent.mkdir(parents=True, exist_ok=True)
                groups[url_scheme(source.source_url)].append(TransferItem(source.source_url, path, run.workdir))
            for scheme, items in groups.items():
                with metrics.transfer(self.site.name, scheme, "in", items):
                    self.transfers(scheme).fetch(items, run.cancelled)
        except (TransferError, Rejected) as exc:
            raise PhaseFailed(f"stage-in failed: {exc}") from exc

    def preprocess(self, run: StepRun) -> None:
        """Site-wide ``balsam_preprocess`` hooks, then the step's own pre-process hook or script."""
        context = self.context(run)
        try:
            self.plugins.preprocess(context)
        except Exception as exc:
            raise PhaseFailed(f"pre-process hook failed: {exc}") from exc
        self._named_hook(run, context, run.step.preprocess, list(run.step.preprocess_args), "pre-process")

    def submit(self, run: StepRun) -> str:
        """Submits the attempt (re-adopting a job submitted before a crash) and returns its id."""
        try:
            spec = self.launch_spec(run)
        except Rejected as exc:
            raise PhaseFailed(str(exc)) from exc
        try:
            if run.recovering:
                existing = self.scheduler.find_by_name(spec.job_name)
                if existing:
                    return existing
            spec.workdir.mkdir(parents=True, exist_ok=True)
            return self.scheduler.submit(spec)
        except SchedulerError as exc:
            raise PhaseFailed(f"submit failed: {exc}") from exc

    def postprocess(self, run: StepRun) -> None:
        """Site-wide ``balsam_postprocess`` hooks, then the step's own post-process hook or script."""
        context = self.context(run)
        try:
            self.plugins.postprocess(context, run.exit_code)
        except Exception as exc:
            raise PhaseFailed(f"post-process hook failed: {exc}") from exc
        self._named_hook(run, context, run.step.postprocess, list(run.step.postprocess_args), "post-process")

    def stage_out(self, run: StepRun) -> None:
        """Stores every output at each of its destinations, one backend call per scheme."""
        groups: dict[str, list[TransferItem]] = defaultdict(list)
        try:
            # Checked again now: the program may have made a name a symlink to anywhere.
            paths = {item.name: path_in_workdir(run.workdir, item.name, "output file")
                     for item in run.assign.outputs}
            missing = [name for name, path in paths.items() if not path.exists()]
            if missing:
                raise PhaseFailed(f"stage-out failed: output files not produced: {', '.join(missing)}")
            for item in run.assign.outputs:
                path = paths[item.name]
                for url in item.destination_urls:
                    groups[url_scheme(url)].append(TransferItem(url, path, run.workdir))
            for scheme, items in groups.items():
                with metrics.transfer(self.site.name, scheme, "out", items):
                    self.transfers(scheme).store(items, run.cancelled)
        except (TransferError, Rejected) as exc:
            raise PhaseFailed(f"stage-out failed: {exc}") from exc

    def _named_hook(self, run: StepRun, context: StepContext, name: str, args: list[str], what: str) -> None:
        if not name:
            return
        try:
            target = resolve_hook(name, self.site, self.plugins.process_hooks, f"{what} script")
        except Rejected as exc:
            raise PhaseFailed(str(exc)) from exc
        if target.startswith("hook:"):
            try:
                self.plugins.process_hooks[name].run(context, args)
            except Exception as exc:
                raise PhaseFailed(f"{what} hook {name!r} failed: {exc}") from exc
            return
        spec_env = step_env(run, max(1, run.step.nodes) * max(1, run.step.processes_per_node))
        try:
            proc = subprocess.run([target, *args], cwd=run.workdir, capture_output=True, text=True,
                                  timeout=SCRIPT_TIMEOUT, env=_merged_env(spec_env))
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PhaseFailed(f"{what} script {name!r} failed: {exc}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-300:]
            raise PhaseFailed(f"{what} script {name!r} exited with code {proc.returncode}: {tail}")


def effective_wall_minutes(step: job_pb2.Step, site: SiteProfile) -> int:
    """The step's walltime; when it names none, the site's maximum (or none)."""
    return step.wall_minutes if step.wall_minutes > 0 else site.max_wall_minutes


def _merged_env(extra: Mapping[str, str]) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(extra)
    return env
