"""The detached launcher of the ``local`` scheduler: a fixed ``sh`` script, the step's argv after it.

Why ``sh`` and not a Python wrapper: it starts in about a millisecond, so the local site keeps up with
hundreds of steps per second. The script text is a constant; the step's program and arguments are
passed as positional parameters (``"$@"``) and never become part of a shell string.

The script claims the step attempt by creating ``<name>.pid`` with ``noclobber`` (a second launch of
the same attempt, after an agent crash, exits at once with :data:`CLAIM_LOST` and runs nothing), runs
the program, and writes its exit code to ``<name>.exit``. Both files live in the scheduler's
registry directory, so an agent that restarts finds the process (``.pid``) or its result (``.exit``).

Run as ``python -m balsam_agent.builtin.local_launch MARKER EXITFILE ARGV...`` it does the same in
Python, for debugging a step by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys

#: Exit status of a launcher that found its attempt already claimed by an earlier launch.
CLAIM_LOST = 97

#: The launcher: $1 = claim marker, $2 = exit-code file, then the program's argv.
WRAPPER_SCRIPT = (
    'm=$1; e=$2; shift 2; '
    'set -C; { echo $$ > "$m"; } 2>/dev/null || exit 97; set +C; '
    '"$@"; rc=$?; echo $rc > "$e"; exit $rc'
)


def launcher_argv(marker: str, exit_file: str, argv: list[str]) -> list[str]:
    """Returns the argv that runs ``argv`` under the launcher script."""
    return ["/bin/sh", "-c", WRAPPER_SCRIPT, "argo-launch", marker, exit_file, *argv]


def main(args: list[str] | None = None) -> int:
    """Python equivalent of the script, for running a step by hand."""
    marker, exit_file, *argv = sys.argv[1:] if args is None else args
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return CLAIM_LOST
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    rc = subprocess.call(argv)
    with open(exit_file, "w") as handle:
        handle.write(f"{rc}\n")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
