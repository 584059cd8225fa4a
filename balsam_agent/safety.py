"""The agent's checks before it runs anything: the last line of defence of a site.

Every function returns the resolved value or raises :class:`Rejected` with a reason the user reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable
from pathlib import Path, PurePosixPath

from balsam_agent.records import SiteProfile

_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=-]*$")


class Rejected(Exception):
    """The assignment is refused; the message is the reason reported to the user."""


def safe_component(value: str, what: str) -> str:
    """Checks that an id is one harmless path component (job ids become directory names)."""
    if not _SAFE_COMPONENT.match(value) or value in (".", ".."):
        raise Rejected(f"{what} {value!r} is not a valid directory name")
    return value


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


_O_PATH = getattr(os, "O_PATH", 0)


def realpath(path: str) -> str:
    """``os.path.realpath`` of an existing path in three system calls where Linux allows (the kernel
    resolves the whole path when opening it with ``O_PATH``), else the portable walk."""
    if _O_PATH:
        try:
            fd = os.open(path, _O_PATH | os.O_CLOEXEC)
        except OSError:
            return os.path.realpath(path)
        try:
            resolved = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            resolved = ""
        finally:
            os.close(fd)
        if resolved.startswith("/") and not resolved.endswith(" (deleted)"):
            return resolved
    return os.path.realpath(path)


def resolve_program(name: str, site: SiteProfile, what: str = "executable") -> str:
    """Resolves an executable or script inside the site's allowed directory (symlinks followed).

    A bare or relative name is looked up in the allowed directory; an absolute path must already be
    there once resolved.
    """
    if not name:
        raise Rejected(f"the step names no {what}")
    if not site.allowed_exec_dir:
        raise Rejected(f"{what} {name!r} refused: site {site.name!r} allows no executables "
                       "(no allowed_exec_dir configured)")
    allowed = realpath(site.allowed_exec_dir)
    candidate = name if os.path.isabs(name) else os.path.join(allowed, name)
    resolved = realpath(candidate)
    if not _inside(resolved, allowed):
        raise Rejected(f"{what} {name!r} refused: it is outside the site's allowed directory {allowed}")
    if not os.path.isfile(resolved) or not os.access(resolved, os.X_OK):
        raise Rejected(f"{what} {name!r} refused: no executable file {resolved} in the allowed directory")
    return resolved


def check_relative_name(name: str, what: str) -> str:
    """Checks a file name relative to the step's working directory (no absolute path, no ``..``)."""
    if not name:
        raise Rejected(f"{what} has an empty name")
    if "\x00" in name:
        raise Rejected(f"{what} {name!r} refused: contains a NUL byte")
    pure = PurePosixPath(name)
    if pure.is_absolute():
        raise Rejected(f"{what} {name!r} refused: absolute paths leave the step's working directory")
    if ".." in pure.parts:
        raise Rejected(f"{what} {name!r} refused: '..' leaves the step's working directory")
    return name


def path_in_workdir(workdir: Path, name: str, what: str) -> Path:
    """Returns ``workdir/name`` after checking it stays inside ``workdir`` once symlinks resolve."""
    check_relative_name(name, what)
    root = os.path.realpath(workdir)
    resolved = os.path.realpath(os.path.join(root, name))
    if not _inside(resolved, root):
        raise Rejected(f"{what} {name!r} refused: it resolves outside the step's working directory")
    return Path(root) / name


def check_names(names: Iterable[str], what: str) -> None:
    """Checks every file name of a list."""
    for name in names:
        check_relative_name(name, what)


def check_limits(site: SiteProfile, *, nodes: int, wall_minutes: int, active_steps: int) -> None:
    """Enforces the site's limits: active steps, nodes per step, walltime per step."""
    if site.max_queued_steps and active_steps >= site.max_queued_steps:
        raise Rejected(f"site is full: {active_steps} active steps (max {site.max_queued_steps})")
    if site.max_nodes and nodes > site.max_nodes:
        raise Rejected(f"step asks for {nodes} nodes; site {site.name!r} allows at most {site.max_nodes} "
                       "(max_nodes)")
    if site.max_wall_minutes and wall_minutes > site.max_wall_minutes:
        raise Rejected(f"step asks for {wall_minutes} min of walltime; site {site.name!r} allows at most "
                       f"{site.max_wall_minutes} (max_wall_minutes)")


def resolve_hook(name: str, site: SiteProfile, registered: Collection[str], what: str) -> str:
    """A pre/post-process name: a registered hook name, or a script in the allowed directory.

    Returns ``hook:<name>`` for a registered hook, else the resolved script path.
    """
    if name in registered:
        return f"hook:{name}"
    try:
        return resolve_program(name, site, what)
    except Rejected as exc:
        valid = ", ".join(sorted(registered)) or "none"
        raise Rejected(f"{exc} (registered hooks: {valid})") from None
