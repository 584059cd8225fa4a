"""A command-line **simulator** of Cobalt for tests: it is not Cobalt.

``qsub``, ``qstat``, ``qdel``, ``qhold`` and ``qrls`` keep their state in ``$COBALT_SIM_DIR/state.json``
(under a file lock), really run each job in the background with the job's environment, honour the
walltime and print what Cobalt's own clients print (formats taken from the Cobalt sources and man pages:
``qsub`` prints the id; ``qstat`` prints a ``--header``/``$QSTAT_HEADER`` table and exits 1 silently when
none of the given jobs is queued; ``qdel``/``qhold``/``qrls`` exit 0 and say what they could not do). Ended
jobs vanish from ``qstat``; their ``.cobaltlog`` records the exit code as Cobalt's queue manager writes it.
``runjob`` and ``mpirun`` stand-ins start the program once (rank 0), exporting the rank count they were
asked for as ``COBALT_SIM_RANKS``.

Settings (environment of the commands): ``COBALT_SIM_DIR`` (required), ``COBALT_SIM_SECONDS_PER_MINUTE``
(walltime scale, default 60), ``COBALT_SIM_QUEUE_SECONDS`` (time a job waits queued, default 0),
``COBALT_SIM_USER`` (job owner, default the login name).
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

#: The simulated commands (executables in this directory).
COMMANDS = ("qsub", "qstat", "qdel", "qhold", "qrls", "runjob", "mpirun")


def install(bin_dir: Path, python: str | None = None) -> Path:
    """Writes the simulator's commands into ``bin_dir`` for ``python`` (default: this interpreter).

    The shipped executables start with ``#!/usr/bin/env python3``; installed copies name the
    interpreter directly, so tests do not depend on which ``python3`` is first on PATH.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[1].parent
    interpreter = python or sys.executable
    for command in COMMANDS:
        target = bin_dir / command
        target.write_text(
            f"#!{interpreter}\n"
            "import sys\n"
            f"sys.path.insert(0, {str(root)!r})\n"
            "from balsam_cobalt.simulator.cli import main\n"
            f"sys.exit(main({command!r}, sys.argv[1:]))\n"
        )
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


__all__ = ["COMMANDS", "install"]
