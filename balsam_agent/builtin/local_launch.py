"""The detached launcher of the ``local`` scheduler: a fixed ``sh`` script, the step's argv after it.

Why ``sh`` and not a Python wrapper: it starts in about a millisecond, so the local site keeps up with
hundreds of steps per second. The script text is a constant; the step's program and arguments are
passed as positional parameters (``"$@"``) and never become part of a shell string.

The script claims the step attempt by creating ``<name>.pid`` with ``noclobber`` (a second launch of
the same attempt, after an agent crash, exits at once with :data:`CLAIM_LOST` and runs nothing), runs
the program, and writes its exit code to ``<name>.exit``. Both files live in the scheduler's
registry directory, so an agent that restarts finds the process (``.pid``) or its result (``.exit``).

Run as ``python -m balsam_agent.builtin.local_launch MARKER EXITFILE WALL N NAME=VALUE... ARGV...`` it
does the same in Python, for debugging a step by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping

#: Exit status of a launcher that found its attempt already claimed by an earlier launch.
CLAIM_LOST = 97

#: The launcher: $1 = claim marker, $2 = exit-code file, $3 = walltime in minutes (recorded with the
#: claim), $4 = N, then N ``NAME=value`` words to export (each one argument, never parsed as shell text),
#: then the program's argv.
WRAPPER_SCRIPT = (
    'm=$1; e=$2; w=$3; n=$4; shift 4; '
    'while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n - 1)); done; '
    'set -C; { echo "$$ $w" > "$m"; } 2>/dev/null || exit 97; set +C; '
    '"$@"; rc=$?; echo $rc > "$e"; exit $rc'
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def launcher_argv(marker: str, exit_file: str, argv: list[str], env: Mapping[str, str] | None = None,
                  wall_minutes: float = 0.0) -> list[str]:
    """Returns the argv that runs ``argv`` under the launcher script, with ``env`` exported first; the
    claim file records the launcher's pid and ``wall_minutes``.

    Exporting in the launcher spares the agent from copying and encoding its whole environment for
    every step. Raises ValueError for a name a shell cannot export (``sh`` would drop it anyway)."""
    for name in env or {}:
        if not _NAME.match(name):
            raise ValueError(f"environment variable name {name!r} is not a valid shell name")
    exports = [f"{name}={value}" for name, value in (env or {}).items()]
    return ["/bin/sh", "-c", WRAPPER_SCRIPT, "argo-launch", marker, exit_file, f"{float(wall_minutes):g}",
            str(len(exports)), *exports, *argv]


def main(args: list[str] | None = None) -> int:
    """Python equivalent of the script, for running a step by hand."""
    marker, exit_file, wall, count, *rest = sys.argv[1:] if args is None else args
    exports, argv = rest[:int(count)], rest[int(count):]
    for export in exports:
        name, _, value = export.partition("=")
        os.environ[name] = value
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return CLAIM_LOST
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()} {wall}\n")
    rc = subprocess.call(argv)
    with open(exit_file, "w") as handle:
        handle.write(f"{rc}\n")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
