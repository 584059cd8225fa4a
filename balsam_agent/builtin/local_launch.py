"""How the ``local`` scheduler starts one step attempt and records its end; shared by the spawner
(:mod:`balsam_agent.builtin.local_spawner`) and by ``python -m balsam_agent.builtin.local_launch``.

An attempt is **claimed** before anything runs: ``<name>.pid`` in the registry directory is created
with ``O_EXCL`` (a second launch of the same attempt, after an agent crash, finds it taken and starts
nothing), then filled in with ``PID WALL START``: the program's pid, its walltime in minutes and its
start time in clock ticks after boot (which tells a re-used pid apart). The program is started with
``posix_spawn`` in a session and process group of its own, its argv passed as a list (never a shell
string), stdin from ``/dev/null`` and stdout/stderr appended to the step's files. When it ends, its exit
code (128 + the signal number if a signal ended it, as a shell reports it) is appended to the claim as a
second line ``exit CODE``, before the process is reaped: while that line is missing, the process is still
there, as a zombie of its launcher. (Appending costs a few microseconds where creating a file costs
hundreds on some file systems; earlier versions wrote ``<name>.exit``, which is still read.)

Run as ``python -m balsam_agent.builtin.local_launch MARKER WALL N NAME=VALUE... ARGV...`` it launches one
step in the foreground and records its exit, for debugging a step by hand.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence

#: Exit status of ``python -m ...local_launch`` when the attempt was already claimed.
CLAIM_LOST = 97

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Signals Python ignores and a started program must not inherit ignored.
_RESET_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, name))


class Claimed(Exception):
    """The attempt was already claimed; ``holder`` is the pid the claim names (None: not written yet)."""

    def __init__(self, holder: int | None) -> None:
        super().__init__(f"already claimed by pid {holder}" if holder else "already claimed")
        self.holder = holder


def check_env_names(env: Mapping[str, str]) -> None:
    """Raises ValueError for a name a shell cannot use (the step's scripts could never read it)."""
    for name in env:
        if not _NAME.match(name):
            raise ValueError(f"environment variable name {name!r} is not a valid shell name")


def proc_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks after boot (field 22 of ``/proc/<pid>/stat``), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    return int(raw[raw.rfind(b")") + 2:].split()[19])


def _claim_lines(marker: str) -> list[str]:
    try:
        with open(marker) as handle:
            return handle.read().split("\n")
    except OSError:
        return []


def read_claim(marker: str) -> tuple[int, float, int] | None:
    """(pid, walltime minutes, start ticks or 0) of the launch that claimed an attempt, or None when
    there is no claim or its pid is not written yet. Claims of earlier versions hold ``PID WALL``."""
    try:
        fields = _claim_lines(marker)[0].split()
        return int(fields[0]), float(fields[1]) if len(fields) > 1 else 0.0, int(fields[2]) if len(fields) > 2 else 0
    except (ValueError, IndexError):
        return None


def read_exit(marker: str) -> int | None:
    """The exit code recorded in a claim, or None (still running, or the line is being written)."""
    lines = _claim_lines(marker)
    if len(lines) < 3:  # "PID WALL START", "exit CODE", "" after the last newline
        return None
    fields = lines[1].split()
    try:
        return int(fields[1]) if len(fields) == 2 and fields[0] == "exit" else None
    except ValueError:
        return None


def claim(marker: str) -> int:
    """Creates the claim of an attempt exclusively and returns its open descriptor; raises
    :class:`Claimed` if the attempt was claimed before."""
    try:
        return os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        held = read_claim(marker)
        raise Claimed(held[0] if held else None) from None


def start_claimed(claim_fd: int, marker: str, argv: Sequence[str], *, cwd: str, stdout: str, stderr: str,
                  env: Mapping[str, str], wall_minutes: float = 0.0) -> tuple[int, int]:
    """Starts ``argv`` detached for a claimed attempt, writes the claim and returns (pid, start ticks).

    Closes ``claim_fd``. Raises OSError (with the claim removed, so nothing is left half-done) if the
    output files cannot be opened or the program cannot be started. Changes this process's working
    directory: call it from one thread only."""
    try:
        out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            err = out if stderr == stdout else os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.chdir(cwd)
                pid = os.posix_spawnp(argv[0], list(argv), dict(env), file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)],
                    setsid=True, setsigdef=_RESET_SIGNALS)
            finally:
                if err != out:
                    os.close(err)
        finally:
            os.close(out)
        start = proc_start_ticks(pid) or 0
        os.write(claim_fd, f"{pid} {float(wall_minutes):g} {start}\n".encode())
    except BaseException:
        os.close(claim_fd)
        os.unlink(marker)
        raise
    os.close(claim_fd)
    return pid, start


def launch(marker: str, argv: Sequence[str], *, cwd: str, stdout: str, stderr: str,
           env: Mapping[str, str], wall_minutes: float = 0.0) -> tuple[int, int]:
    """:func:`claim`, then :func:`start_claimed`."""
    return start_claimed(claim(marker), marker, argv, cwd=cwd, stdout=stdout, stderr=stderr, env=env,
                         wall_minutes=wall_minutes)


def exit_code_of(result: os.waitid_result) -> int:
    """The exit code a shell would report: the status, or 128 + the signal that ended the process."""
    return result.si_status if result.si_code == os.CLD_EXITED else 128 + result.si_status


def record_exit(marker: str, code: int) -> None:
    """Appends ``exit CODE`` to the claim, in one write (a reader that sees it partly written finds no
    code yet, and the process it names is still a zombie then)."""
    fd = os.open(marker, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"exit {code}\n".encode())
    finally:
        os.close(fd)


def main(args: list[str] | None = None) -> int:
    """Launches one step in the foreground, records its exit code and returns it."""
    marker, wall, count, *rest = sys.argv[1:] if args is None else args
    exports, argv = rest[:int(count)], rest[int(count):]
    extra = dict(export.partition("=")[::2] for export in exports)
    check_env_names(extra)
    env = {**os.environ, **extra}
    cwd = os.getcwd()
    try:
        pid, _ = launch(marker, argv, cwd=cwd, stdout="/dev/stdout", stderr="/dev/stderr", env=env,
                        wall_minutes=float(wall))
    except Claimed:
        return CLAIM_LOST
    result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    assert result is not None
    code = exit_code_of(result)
    record_exit(marker, code)
    os.waitpid(pid, 0)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
