"""Benchmark: stage-in of a 1 GiB file through the GridFTP plugin versus ``globus-url-copy`` run directly.

Both sides use the same flags (the argv the plugin builds) and take turns going first after one untimed
warm-up, so that neither gets a warmer cache; and the best and median times are printed with the ratio of the plugin's throughput to the
direct run's (target: at least 0.9).

Needs the servers of ``scripts/services/gridftp`` and their environment (``.ci/services.env``)::

    set -a; . .ci/services.env; set +a
    .venv/bin/python bench/transfer_gridftp.py --scheme gsiftp --runs 10 --dest-dir /dev/shm
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from balsam_gridftp import command, paths
from balsam_gridftp.backend import GridFTPBackend

from balsam_agent.records import SiteProfile
from balsam_agent.transfer import TransferItem


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints one line per run and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheme", choices=("gsiftp", "ftp"), default="gsiftp")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--dest-dir", default=None,
                        help="where the downloads land (default: the system's temporary directory; "
                             "/dev/shm takes disk write-back noise out of the figures)")
    args = parser.parse_args(argv)

    env_server = "ARGO_TEST_GSIFTP" if args.scheme == "gsiftp" else "ARGO_TEST_GRIDFTP_FTP"
    server, root = os.environ.get(env_server), os.environ.get("ARGO_TEST_GRIDFTP_FTP_ROOT")
    if not server or not root:
        print(f"{env_server} / ARGO_TEST_GRIDFTP_FTP_ROOT not set: source .ci/services.env", file=sys.stderr)
        return 2
    options: dict[str, object] = {"parallel_streams": args.streams}
    if args.scheme == "gsiftp":
        options["x509_user_proxy"] = os.environ.get("ARGO_TEST_X509_USER_PROXY", "")
        options["x509_cert_dir"] = os.environ.get("X509_CERT_DIR", "")

    remote_dir = Path(root) / f"bench-{uuid.uuid4().hex[:8]}"
    remote_dir.mkdir(mode=0o755)
    work = Path(tempfile.mkdtemp(prefix="bench-gridftp-", dir=args.dest_dir))
    try:
        source = remote_dir / "big.dat"
        size = args.size_mib << 20
        with source.open("wb") as out:  # real (not sparse) data, so the server reads every block
            block = os.urandom(1 << 20)
            for _ in range(args.size_mib):
                out.write(block)
        url = f"{server}{source}"
        site = SiteProfile(name="bench", scheduler="local", work_root=str(work),
                           options={"gridftp": options})
        backend = GridFTPBackend(site)
        env = command.child_env(backend.options, os.environ)
        direct_times: list[float] = []
        plugin_times: list[float] = []
        # One untimed warm-up so that the first timed run does not pay for reading the source from disk.
        backend.fetch([TransferItem(url, work / "warm-up.dat")], threading.Event())
        (work / "warm-up.dat").unlink()
        for run in range(args.runs):
            # Alternate which side goes first, so neither always inherits the other's dirty page cache.
            order = ("direct", "plugin") if run % 2 == 0 else ("plugin", "direct")
            for side in order:
                target = work / f"{side}-{run}.dat"
                started = time.perf_counter()
                if side == "direct":
                    argv = command.build_argv(backend.options, url, paths.file_url(target),
                                              recursive=False, create_dirs=False)
                    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL)
                    direct_times.append(time.perf_counter() - started)
                else:
                    backend.fetch([TransferItem(url, target)], threading.Event())
                    plugin_times.append(time.perf_counter() - started)
                if target.stat().st_size != size:
                    raise SystemExit(f"{side} run {run + 1}: wrong size {target.stat().st_size}")
                target.unlink()
            print(f"run {run + 1}: globus-url-copy {direct_times[-1]:.3f} s, plugin {plugin_times[-1]:.3f} s")

        mib = args.size_mib
        best_d, best_p = min(direct_times), min(plugin_times)
        med_d, med_p = statistics.median(direct_times), statistics.median(plugin_times)
        print(f"{args.scheme}://, {mib} MiB, {args.streams} streams, {args.runs} runs each, into {work.parent}")
        print(f"globus-url-copy direct: best {best_d:.3f} s ({mib / best_d:.0f} MiB/s), median {med_d:.3f} s")
        print(f"plugin fetch:           best {best_p:.3f} s ({mib / best_p:.0f} MiB/s), median {med_p:.3f} s")
        print(f"ratio (plugin throughput / direct): best {best_d / best_p:.3f}, median {med_d / med_p:.3f}"
              " (target >= 0.9)")
        return 0
    finally:
        shutil.rmtree(remote_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
