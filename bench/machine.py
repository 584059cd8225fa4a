"""The machine's speed at the moment a benchmark runs (not a benchmark itself).

This machine kind drifts by up to 2x between days and by +-30 % within minutes (BENCHMARKS.md), so a
figure means little without the speed of the machine it was measured on. The server, agent and
end-to-end benchmarks print :func:`speed_line` before and after their runs:

* ``python``: best of five timings of a fixed interpreter loop, in ns per iteration (lower is faster);
  everything the server, the relay and the agent do runs in this interpreter;
* ``launch``: median wall time of starting and reaping ``/bin/true`` (the task statement's reference:
  0.7 ms), which bounds the ``local`` site.

    .venv/bin/python bench/machine.py
"""

from __future__ import annotations

import statistics
import subprocess
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


def speed_line(label: str = "machine") -> str:
    """One line giving the machine's speed now."""
    return f"{label}: python {python_ns():.0f} ns/loop, /bin/true launch {launch_ms():.2f} ms"


if __name__ == "__main__":
    print(speed_line())
