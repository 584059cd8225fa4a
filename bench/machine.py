"""The machine's speed at the moment a benchmark runs (not a benchmark itself).

This machine kind drifts by up to 2x between days and by +-30 % within minutes (BENCHMARKS.md), so a
figure means little without the speed of the machine it was measured on. The server, agent and
end-to-end benchmarks print :func:`speed_line` before and after their runs:

* ``python``: the interpreter (version and the file it runs from) and the best of five timings of a
  fixed interpreter loop, in ns per iteration (lower is faster); everything the server, the relay and
  the agent do runs in this interpreter, and the build matters as much as the machine: on this machine
  Debian's ``/usr/bin/python3.11`` (built with PGO and LTO) ran the loop in 105-180 ns where a pyenv
  3.11 built without ``--enable-optimizations`` took 160-300 ns in the same minutes;
* ``launch``: median wall time of starting and reaping ``/bin/true`` (the task statement's reference:
  0.7 ms), which bounds the ``local`` site;
* ``step files`` (when given a directory): kernel CPU to create there what a step of the ``local`` site
  creates in its work root (three nested working directories, stdout and stderr; its claim is a sixth
  file). On this machine's disk it varied from 0.1 to 3.3 ms between hours, on ``/dev/shm`` it is a few
  tens of microseconds. The cause is the file system: an ext4 without a journal, where the inode
  allocator skips every inode deleted in the last 5 minutes (300 s more while its inode table block is
  not yet written back) and looks each one up in the buffer cache (``recently_deleted()`` in the
  kernel's ``fs/ext4/ialloc.c``, 70 % of the CPU of a create loop under ``perf``). The cost thus
  depends on how many files anything deleted shortly before (a test suite, a benchmark's temporary
  directory); an ext4 with a journal (a loop-mounted image here) costs about 40 us.

    .venv/bin/python bench/machine.py [DIRECTORY]
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit


def python_ns(loops: int = 200_000) -> float:
    """Nanoseconds per iteration of a small fixed loop (attribute, call, tuple and dict work)."""
    timer = timeit.Timer("d[k] = sum((i, len(s), 3)); i += 1", setup="d = {}; k = 'x'; s = 'abc'; i = 0")
    return min(timer.repeat(5, loops)) / loops * 1e9


def launch_ms(runs: int = 40) -> float:
    """Median milliseconds to start ``/bin/true`` and wait for it."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def create_us(directory: str, count: int = 300) -> float:
    """Kernel CPU microseconds per step-shaped set of creations in ``directory``: the three nested
    working directories of a new job's first attempt and its stdout and stderr files."""
    root = tempfile.mkdtemp(dir=directory, prefix="create-cost-")
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
        for i in range(count):
            workdir = f"{root}/job{i}/0/1"
            os.makedirs(workdir)
            for name in ("stdout.txt", "stderr.txt"):
                os.close(os.open(f"{workdir}/{name}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        return (resource.getrusage(resource.RUSAGE_SELF).ru_stime - before) / count * 1e6
    finally:
        shutil.rmtree(root, ignore_errors=True)


def speed_line(label: str = "machine", directory: str | None = None) -> str:
    """One line giving the machine's speed now (and the cost of creating files in ``directory``)."""
    interpreter = f"{sys.version.split()[0]} ({os.path.realpath(sys.executable)})"
    line = f"{label}: python {interpreter} {python_ns():.0f} ns/loop, /bin/true launch {launch_ms():.2f} ms"
    if directory is not None:
        line += f", step files {create_us(directory):.0f} us (kernel CPU to create a step's 3 directories and 2 files in {directory})"
    return line


if __name__ == "__main__":
    print(speed_line(directory=sys.argv[1] if len(sys.argv) > 1 else None))
