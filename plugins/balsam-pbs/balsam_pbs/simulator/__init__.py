"""A command-line **simulator** of PBS Professional for tests: it is not PBS.

``qsub``, ``qstat``, ``qdel``, ``qhold``, ``qrls`` and ``qselect`` keep their state in
``$PBS_SIM_DIR/state.json`` (under a file lock), really run each job script in the background with the
job's environment (``PBS_JOBID``, ``PBS_O_WORKDIR``, ``PBS_NODEFILE``…), honour the walltime (Exit_status
-29) and print what PBS prints (PBS Professional Reference Guide): ``qsub`` prints ``<seq>.<server>``;
``qstat -f -F json`` the job attributes; finished jobs stay in the history for ``qstat -x`` with
``job_state`` F and ``Exit_status``; unknown ids give ``qstat: Unknown Job Id <id>`` (exit 153) and
finished ones without ``-x`` ``qstat: <id> Job has finished, use -x or -H to obtain historical job
information`` (exit 35). An ``mpiexec`` stand-in starts the program once, exporting the rank count as
``PBS_SIM_RANKS``.

Settings: ``PBS_SIM_DIR`` (required), ``PBS_SIM_SERVER`` (default ``polaris-pbs-01``),
``PBS_SIM_SECONDS_PER_MINUTE`` (walltime scale, default 60), ``PBS_SIM_QUEUE_SECONDS`` (time queued).
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

COMMANDS = ("qsub", "qstat", "qdel", "qhold", "qrls", "qselect", "mpiexec")


def install(bin_dir: Path, python: str | None = None) -> Path:
    """Writes the simulator's commands into ``bin_dir`` for ``python`` (default: this interpreter)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[1].parent
    for command in COMMANDS:
        target = bin_dir / command
        target.write_text(
            f"#!{python or sys.executable}\nimport sys\nsys.path.insert(0, {str(root)!r})\n"
            f"from balsam_pbs.simulator.cli import main\nsys.exit(main({command!r}, sys.argv[1:]))\n"
        )
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir
