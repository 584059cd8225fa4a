"""The built-in ``local`` scheduler: steps run as processes on the agent's own machine.

Decisions (documented for users in ``the README's "Plugin hooks" section``):

- **Ranks**: ranks = nodes × processes_per_node. With launch style ``mpirun`` and ``mpirun`` on PATH the
  program runs as ``mpirun -n RANKS argv...``; otherwise it runs once as a plain process and learns the
  rank count it was asked for from ``ARGO_RANKS`` (so a stand-in program can emulate the ranks).
- **Detached**: each step is started by the agent's spawner (:mod:`balsam_agent.builtin.local_spawner`, one
  long-lived process per agent) in its own session and process group, so it outlives an agent
  restart; the spawner waits for it and records its exit code even while no agent runs. The
  scheduler id is ``<pid>:<its start time in clock ticks>:<job name>``: the start time tells a re-used
  pid apart; the job name finds the attempt's files in the registry directory ``<work_root>/.local-jobs``
  (``.pid``: the claim, with the pid, walltime and start time of the launch, and its exit code once it
  ended; see :mod:`balsam_agent.builtin.local_launch`). The claim is the authority: after a crash the agent
  finds the launch through ``.pid``, and a second submit of a claimed attempt returns the claim
  holder's id instead of starting anything, so an attempt runs once.
- **Walltime**: enforced at each poll, from the step's start time in ``/proc``; an overrun kills
  the process group and reports FAILED "walltime of N min exceeded". Site option
  ``seconds_per_wall_minute`` (default 60) scales it for tests.
- **Hold/release**: SIGSTOP / SIGCONT of the process group (the program is paused, not requeued; its
  walltime keeps counting). **Cancel**: SIGTERM of the group, SIGKILL after ``kill_grace`` seconds
  (site option, default 5).
- **Polling**: one pass over all ids; the spawner's exit events say which of its steps ended (no
  ``/proc`` read for them), ``/proc`` tells the state of the others. A watcher thread reads the events
  (and waits on pidfds of processes re-attached after a restart) and asks the agent to poll as soon as
  one ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from balsam_agent import hookimpl
from balsam_agent.builtin.local_launch import check_env_names, read_claim, read_exit
from balsam_agent.builtin.local_spawner import SpawnerClient
from balsam_agent.records import SchedulerRecord, SiteProfile
from balsam_agent.scheduler import (
    LaunchSpec,
    SchedulerBackend,
    SchedulerError,
    SchedulerJobStatus,
    SchedulerState,
)

log = logging.getLogger(__name__)

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """Returns (state letter, start time in ticks, parent pid) of a process, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[0], int(fields[19]), int(fields[1])


#: Command-line words of the processes that record a step's exit code after it ended.
_RECORDERS = (b"balsam_agent.builtin.local_spawner", b"balsam_agent.builtin.local_launch")


def _recorded_by_parent(ppid: int) -> bool:
    """Whether ``ppid`` is a spawner (or launcher), which records its ended child's exit code before
    reaping it: its zombie child without a recorded exit code is still being recorded."""
    try:
        with open(f"/proc/{ppid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    return any(word in argv for word in _RECORDERS)


def _uptime() -> float:
    """Seconds since boot on the clock of ``/proc/<pid>/stat`` start times (CLOCK_BOOTTIME)."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


def group_alive(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie.

    ``killpg(pgid, 0)`` is not enough: orphaned members that ended stay zombies where PID 1 does not
    reap (containers), and they still count as members.
    """
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                raw = handle.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def parse_scheduler_id(scheduler_id: str) -> tuple[int, int, str]:
    """Splits a local scheduler id into (pid, start ticks, job name)."""
    pid, start, name = scheduler_id.split(":", 2)
    return int(pid), int(start), name


class ExitWatcher:
    """One thread waiting on the pidfds of many processes and on the spawners' event pipes; calls
    ``on_event(pid, code)`` for each exit event, ``on_closed(fd)`` when an event pipe ends (its spawner
    is gone), and ``notify()`` after a watched pid ended or a spawner went away."""

    def __init__(self) -> None:
        self.notify: object = None
        self.on_event: object = None
        self.on_closed: object = None
        self._lock = threading.Lock()
        self._pending: list[int] = []
        self._streams: dict[int, bytes] = {}
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="local-exit-watcher", daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        """Starts watching a process (silently skipped where pidfds are unavailable)."""
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            return
        with self._lock:
            self._pending.append(fd)
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"x")

    def watch_events(self, fd: int) -> None:
        """Starts reading a spawner's events pipe (closed by this watcher when the spawner ends)."""
        with self._lock:
            self._streams[fd] = b""
            self._pending.append(fd)
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"x")

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        while not self._stopped:
            events = poller.poll()
            ended = False
            for fd, _ in events:
                if fd == self._read:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._read, 4096)
                    with self._lock:
                        pending, self._pending = self._pending, []
                    for new_fd in pending:
                        poller.register(new_fd, select.POLLIN)
                elif fd in self._streams:
                    ended = self._read_events(poller, fd) or ended
                else:
                    poller.unregister(fd)
                    os.close(fd)
                    ended = True
            callback = self.notify
            if ended and callable(callback):
                callback()

    def _read_events(self, poller: select.poll, fd: int) -> bool:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            poller.unregister(fd)
            del self._streams[fd]
            try:
                if callable(self.on_closed):
                    self.on_closed(fd)  # before the close: a new pipe could otherwise take its number
            finally:
                os.close(fd)
            return True
        *lines, self._streams[fd] = (self._streams[fd] + chunk).split(b"\n")
        for line in lines:
            event = json.loads(line)
            if callable(self.on_event):
                self.on_event(event["pid"], event["code"])
        return False

    def close(self) -> None:
        """Stops the thread (the watched processes are not touched)."""
        self._stopped = True
        with contextlib.suppress(OSError):
            os.write(self._write, b"x")
        self._thread.join(timeout=2)
        if not self._thread.is_alive():
            for fd in list(self._streams):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._streams.clear()


class LocalScheduler(SchedulerBackend):
    """Runs steps as detached local process groups; see the module documentation."""

    name = "local"

    def __init__(self, site: SiteProfile) -> None:
        super().__init__(site)
        root = Path(site.work_root) if site.work_root else Path.cwd() / "balsam-work"
        self.registry = root / ".local-jobs"
        self.registry.mkdir(parents=True, exist_ok=True)
        self.seconds_per_minute = float(site.options.get("seconds_per_wall_minute", 60))
        self.kill_grace = float(site.options.get("kill_grace", 5))
        #: Steps this process's spawners started and their exit codes once reported (None: running).
        self._launched: dict[int, int | None] = {}
        #: Scheduler ids of those steps, to name them when they end.
        self._ids: dict[int, str] = {}
        self._followed: set[int] = set()
        self._wall: dict[str, float] = {}
        self._lock = threading.Lock()
        self._watcher = ExitWatcher()
        self._watcher.notify = self._changed
        self._watcher.on_event = self._on_exit
        self._watcher.on_closed = self._on_spawner_gone
        self.spawner = SpawnerClient(self._watcher.watch_events)

    def _changed(self, ids: list[str] | None = None) -> None:
        callback = self.state_changed
        if callback is not None:
            if ids is None:
                callback()
            else:
                callback(ids)

    def _on_exit(self, pid: int, code: int) -> None:
        # Recorded even before submit() has registered the pid: a quick step's end can arrive first.
        with self._lock:
            self._launched[pid] = code
            scheduler_id = self._ids.pop(pid, None)
        if scheduler_id is not None:
            self._changed([scheduler_id])

    def _on_spawner_gone(self, fd: int) -> None:
        """A spawner died (or ended): its steps still running are followed through /proc from now on.

        When the one gone is the current spawner, every step without an exit code is its orphan: the
        end of its events pipe can be read before the kernel has given its children to another parent,
        so their parent pid may still name it."""
        current_gone = fd == self.spawner.events_fd
        with self._lock:
            orphans = [pid for pid, code in self._launched.items()
                       if code is None and (current_gone or not self._spawner_owns(pid))]
            for pid in orphans:
                del self._launched[pid]
                self._ids.pop(pid, None)
        for pid in orphans:
            self._watcher.watch(pid)

    def _spawner_owns(self, pid: int) -> bool:
        """Whether ``pid`` is a child of the spawner running now (a step the next event will report)."""
        spawner = self.spawner.pid
        stat = _proc_stat(pid)
        return spawner is not None and stat is not None and stat[2] == spawner

    # --- files of one job in the registry ---

    def _path(self, job_name: str, suffix: str) -> Path:
        return self.registry / f"{job_name}.{suffix}"

    def _wall_minutes(self, job_name: str) -> float:
        """The attempt's walltime in minutes (0: none), as recorded with its claim."""
        wall = self._wall.get(job_name)
        if wall is None:
            claim = self._claim(job_name)
            if claim is None:
                return 0.0  # not claimed yet: read again at the next poll
            wall = self._wall[job_name] = claim[1]
        return wall

    # --- the SchedulerBackend API ---

    def submit(self, spec: LaunchSpec) -> str:
        """Has the spawner start the step and returns ``pid:start:job_name``.

        A second submit of the same attempt starts nothing and returns the id of the launch that holds
        the claim."""
        program = list(spec.argv)
        if self.site.launch_style == "mpirun" and shutil.which("mpirun"):
            program = ["mpirun", "-n", str(spec.ranks), *program]
        self._wall[spec.job_name] = float(spec.wall_minutes)
        extra = dict(spec.env)
        extra.setdefault("ARGO_RANKS", str(spec.ranks))
        try:
            check_env_names(extra)
        except ValueError as exc:
            raise SchedulerError(str(exc), transient=False) from exc
        stdout = spec.stdout_path or spec.workdir / "stdout.txt"
        stderr = spec.stderr_path or spec.workdir / "stderr.txt"
        for path in {stdout, stderr}:
            # Created here, in the agent's worker thread, so that steps' file creations (slow on some file
            # systems) run in parallel; the spawner, which serves one request at a time, only opens them.
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
            except OSError as exc:
                raise SchedulerError(f"cannot open {path}: {exc.strerror or exc}", transient=False) from exc
        try:
            answer = self.spawner.launch({
                "marker": str(self._path(spec.job_name, "pid")),
                "argv": program, "cwd": str(spec.workdir), "stdout": str(stdout), "stderr": str(stderr),
                "env": extra, "wall": float(spec.wall_minutes)})
        except OSError as exc:
            raise SchedulerError(f"cannot start {program[0]}: {exc}", transient=False) from exc
        if "error" in answer:
            raise SchedulerError(answer["error"], transient=False)
        if "claimed" in answer:
            holder = self.find_by_name(spec.job_name)
            if holder is None:
                raise SchedulerError(f"step attempt {spec.job_name} is claimed by a launch that recorded no pid",
                                     transient=False)
            return holder
        pid = int(answer["pid"])
        scheduler_id = f"{pid}:{answer['start']}:{spec.job_name}"
        with self._lock:
            ended = self._launched.setdefault(pid, None) is not None
            if not ended:
                self._ids[pid] = scheduler_id
        if ended:
            self._changed([scheduler_id])
        return scheduler_id

    def find_by_name(self, job_name: str) -> str | None:
        """Finds the launch of this step attempt (after an agent crash): the one that claimed it."""
        claim = self._claim(job_name)
        if claim is None:
            return None
        holder, _, start = claim
        stat = self._live_launcher(holder, job_name)
        return f"{holder}:{stat[1] if stat else start}:{job_name}"

    def _claim(self, job_name: str) -> tuple[int, float, int] | None:
        """(pid, walltime minutes, start ticks or 0) of the launch that claimed this attempt, if any."""
        return read_claim(str(self._path(job_name, "pid")))

    def _claim_holder(self, job_name: str) -> int | None:
        """The pid of the launch that claimed this attempt, if any."""
        claim = self._claim(job_name)
        return claim[0] if claim else None

    def _live_launcher(self, pid: int, job_name: str) -> tuple[str, int, int] | None:
        """The /proc state, start time and parent of ``pid`` when it runs this attempt, else None."""
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X") or not self._is_launch_of(pid, stat[1], job_name):
            return None
        return stat

    def _is_launch_of(self, pid: int, start: int, job_name: str) -> bool:
        """Whether a living pid is this attempt's launch, not a re-use of its pid: its start time is the
        claim's (claims of earlier versions, without one: the launcher's argv names the claim file)."""
        claim = self._claim(job_name)
        if claim is not None and claim[0] == pid and claim[2]:
            return claim[2] == start
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return os.fsencode(self._path(job_name, "pid")) in argv

    def _alive(self, pid: int, start: int, job_name: str) -> tuple[int | None, str, int]:
        """Finds the process that runs this attempt: (its pid, /proc state letter, start time in clock
        ticks after boot), or (None, "X", 0) when it has ended.

        A step of this agent's spawner runs until the spawner reports its end. Any other (re-attached
        after a restart) is looked up in /proc: a zombie whose exit is still being recorded by its spawner
        counts as running. Launches of earlier versions could lose the claim to an earlier launch; the
        claim holder named in ``<name>.pid`` is then followed instead.
        """
        with self._lock:
            own = pid in self._launched
            code = self._launched.get(pid)
        if own:
            if code is None:
                stat = _proc_stat(pid)
                return (pid, stat[0], stat[1]) if stat else (pid, "R", start)
            with self._lock:
                self._launched.pop(pid, None)
            return None, "X", 0
        stat = _proc_stat(pid)
        same = stat is not None and (stat[1] == start if start else self._is_launch_of(pid, stat[1], job_name))
        if stat is not None and same and stat[0] not in ("Z", "X"):
            return pid, stat[0], stat[1]
        recorded = self._exit_code(job_name)
        if stat is not None and same and recorded is None and _recorded_by_parent(stat[2]):
            return pid, "R", stat[1]
        if recorded is not None:
            return None, "X", 0
        holder = self._claim_holder(job_name)
        if holder is not None and holder != pid:
            live = self._live_launcher(holder, job_name)
            if live is not None:
                if holder not in self._followed:
                    self._followed.add(holder)
                    self._watcher.watch(holder)  # its end triggers a poll like our own steps'
                return holder, live[0], live[1]
        return None, "X", 0

    def poll(self, scheduler_ids: Sequence[str]) -> dict[str, SchedulerJobStatus]:
        """One pass over every id: the spawner's events or /proc for the living, the claim for the ended."""
        result: dict[str, SchedulerJobStatus] = {}
        now = _uptime()
        for scheduler_id in scheduler_ids:
            try:
                pid, start, job_name = parse_scheduler_id(scheduler_id)
            except ValueError:
                continue
            with self._lock:
                reported = self._launched.get(pid)  # the exit code the spawner sent, once it ended
            running, letter, ticks = self._alive(pid, start, job_name)
            if running is not None:
                result[scheduler_id] = self._living_status(scheduler_id, running, job_name, letter,
                                                           now - ticks / _CLOCK_TICKS)
            else:
                result[scheduler_id] = self._ended_status(scheduler_id, job_name, reported)
        return result

    def _living_status(self, scheduler_id: str, pid: int, job_name: str, letter: str,
                       elapsed: float) -> SchedulerJobStatus:
        """The status of a running launcher (``elapsed``: seconds since it started)."""
        wall = self._wall_minutes(job_name)
        if wall > 0 and elapsed > wall * self.seconds_per_minute:
            self._path(job_name, "walltime").touch()
            self._kill_group(pid, grace=0.0)
            return self._timeout_status(scheduler_id, wall)
        if letter in ("T", "t"):
            return SchedulerJobStatus(scheduler_id, SchedulerState.HELD, reason="stopped (SIGSTOP)",
                                      native_state=letter)
        return SchedulerJobStatus(scheduler_id, SchedulerState.RUNNING, native_state=letter)

    @staticmethod
    def _timeout_status(scheduler_id: str, wall: float) -> SchedulerJobStatus:
        return SchedulerJobStatus(scheduler_id, SchedulerState.FAILED,
                                  reason=f"walltime of {wall:g} min exceeded", native_state="walltime",
                                  timed_out=True)

    def _ended_status(self, scheduler_id: str, job_name: str, exit_code: int | None = None) -> SchedulerJobStatus:
        status = self._final_status(scheduler_id, job_name, exit_code)
        self._wall.pop(job_name, None)  # the caches hold active attempts only
        return status

    def _final_status(self, scheduler_id: str, job_name: str, exit_code: int | None = None) -> SchedulerJobStatus:
        """The status of an ended attempt; ``exit_code``: when already known (the spawner's event), else
        read from the claim."""
        if self._path(job_name, "walltime").exists():
            return self._timeout_status(scheduler_id, self._wall_minutes(job_name))
        if self._path(job_name, "cancelled").exists():
            return SchedulerJobStatus(scheduler_id, SchedulerState.CANCELLED, reason="cancelled",
                                      native_state="cancelled")
        if exit_code is None:
            exit_code = self._exit_code(job_name)
        if exit_code == 0:
            return SchedulerJobStatus(scheduler_id, SchedulerState.COMPLETED, exit_code=0, native_state="exited")
        if exit_code is None:
            return SchedulerJobStatus(scheduler_id, SchedulerState.FAILED,
                                      reason="the process ended without an exit code (killed by a signal?)",
                                      native_state="lost")
        return SchedulerJobStatus(scheduler_id, SchedulerState.FAILED, exit_code=exit_code,
                                  reason=f"program exited with code {exit_code}", native_state="exited")

    def _exit_code(self, job_name: str) -> int | None:
        """The exit code recorded in the claim (or, by earlier versions, in ``<name>.exit``), or None (not
        written yet, or being written)."""
        code = read_exit(str(self._path(job_name, "pid")))
        if code is not None:
            return code
        try:
            return int(self._path(job_name, "exit").read_text().strip())
        except (OSError, ValueError):
            return None

    def _kill_group(self, pid: int, grace: float) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGCONT)  # a stopped group cannot act on SIGTERM
            os.killpg(pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        if grace <= 0:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not group_alive(pid):
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.02)

    def _running_pid(self, scheduler_id: str) -> int:
        """The process group to signal: the launcher that runs the attempt (see :meth:`_alive`)."""
        pid, start, job_name = parse_scheduler_id(scheduler_id)
        running, _, _ = self._alive(pid, start, job_name)
        return pid if running is None else running

    def cancel(self, scheduler_id: str) -> None:
        """SIGTERM to the step's process group, SIGKILL after the grace period."""
        pid, _, job_name = parse_scheduler_id(scheduler_id)
        self._path(job_name, "cancelled").touch()
        self._kill_group(self._running_pid(scheduler_id), grace=self.kill_grace)
        with self._lock:  # the agent does not poll a cancelled attempt again
            self._launched.pop(pid, None)
            self._ids.pop(pid, None)

    def hold(self, scheduler_id: str) -> None:
        """Pauses the step's process group (SIGSTOP)."""
        self._signal(self._running_pid(scheduler_id), signal.SIGSTOP)

    def release(self, scheduler_id: str) -> None:
        """Resumes the step's process group (SIGCONT)."""
        self._signal(self._running_pid(scheduler_id), signal.SIGCONT)

    @staticmethod
    def _signal(pid: int, signum: int) -> None:
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass  # it just ended: the next poll reports how
        except PermissionError as exc:
            raise SchedulerError(f"cannot signal process group {pid}: {exc}", transient=False) from exc

    def close(self) -> None:
        """Closes the spawner's request pipe and stops the exit watcher; the steps keep running (the
        spawner records their ends, and a restarted agent re-attaches to them)."""
        self.spawner.close()
        self._watcher.close()


@hookimpl
def balsam_schedulers() -> list[SchedulerRecord]:
    """Offers the ``local`` scheduler."""
    return [SchedulerRecord(name="local", backend=LocalScheduler)]


@hookimpl
def balsam_sites() -> list[SiteProfile]:
    """Offers the ``local`` site: this machine, plain processes, a short poll interval."""
    return [SiteProfile(name="local", scheduler="local", launch_style="plain", poll_interval=0.5)]
