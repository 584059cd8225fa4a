"""Shared helpers of the server benchmarks (not a benchmark itself): run ``argo-server`` in a child process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time


class ServerChild:
    """``argo-server`` as a child process, so that the benchmark client does not share its GIL."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "argo_server.cli", "--listen", "127.0.0.1:0",
                                         "--log-level", "INFO", *args],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.port = 0
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not self.port:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start:\n" + "".join(self.lines))
            time.sleep(0.05)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            match = re.search(r"listening on [\d.]+:(\d+)", line)
            if match:
                self.port = int(match.group(1))

    def rss_mib(self) -> float:
        """Resident memory of the server process, in MiB."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        """Graceful stop."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def delete_broker_objects(prefix: str) -> None:
    """Deletes the queues and exchanges a benchmark server declared under ``prefix``."""
    import pika

    url = os.environ.get("ARGO_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in (f"{prefix}.assign.local", f"{prefix}.status", f"{prefix}.dead"):
        channel.queue_delete(queue)
    for exchange in ("assign", "status", "dead"):
        channel.exchange_delete(f"{prefix}.{exchange}")
    connection.close()
