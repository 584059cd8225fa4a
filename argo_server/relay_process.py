"""The outbox relay in a child process of the server (``relay: process``, the default).

The relay's work (reading outbox rows, framing and publishing them, deleting them) then runs beside the
gRPC threads instead of under the same interpreter lock: on a machine with more than one core the server
serves more calls per second (BENCHMARKS.md has the figures of both modes).

The parent talks to the child through two pipes:

* the child's standard input: the first line is the configuration, as JSON (on a pipe, not on the
  command line, where ``ps`` would show a database password); end of file means stop. The child
  finishes its batch and exits, so it never outlives a server that was killed, and a restarted server
  never finds a second relay of its own on the same outbox;
* a wake pipe: every byte is a wake-up, rows were committed. The relay's loop waits on it with
  select(), so a wake-up reaches it with no thread in between (the parent never blocks on it: when the
  pipe is full a wake-up is already pending);
* on SQLite, a sent pipe the other way: after each batch the child writes the id of the last row it
  sent, and the parent deletes the rows up to it under its own write lock, so the server process is the
  database's only writer (see :mod:`argo_server.relay`).

:class:`RelayChild` has the interface of :class:`~argo_server.relay.OutboxRelay` that the server uses
(``notify`` and ``loop``), so the server's supervisor restarts a child that dies, with backoff.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from types import FrameType

from .config import ServerConfig
from .db import Database
from .outbox import delete_through

log = logging.getLogger(__name__)


class RelayChild:
    """Runs the relay of ``config`` in a child process; :meth:`loop` supervises one child's life."""

    def __init__(self, config: ServerConfig, db: Database, stop_timeout: float = 10.0) -> None:
        self.config = config
        self.db = db
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        #: CPUs for the child (set when the server pins its own threads; empty: the server's).
        self.cpus: set[int] = set()
        self._wake = -1
        self._lock = threading.Lock()

    def notify(self) -> None:
        """Wakes the child's relay: new rows were committed."""
        with self._lock:
            if self._wake < 0:
                return  # no child yet (or between two): it reads the outbox when it starts
            try:
                os.write(self._wake, b"w")
            except BlockingIOError:
                pass  # the pipe is full: wake-ups are pending already
            except OSError as error:
                if error.errno != errno.EPIPE:
                    raise  # EPIPE: the child died; loop() sees it and starts another

    def loop(self, stop: threading.Event) -> None:
        """Starts a child and waits until ``stop`` is set (then stops it) or it exits (then raises)."""
        command = [sys.executable, "-m", "argo_server.relay_process"]
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        sent_read, sent_write = os.pipe() if self.db.dialect == "sqlite" else (-1, -1)
        child_fds = (wake_read, sent_write) if sent_write >= 0 else (wake_read,)
        level = logging.getLogger().getEffectiveLevel()
        settings = json.dumps({"config": dataclasses.asdict(self.config), "log_level": level,
                               "wake_fd": wake_read, "sent_fd": sent_write,
                               "cpus": sorted(self.cpus)}).encode() + b"\n"
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, close_fds=True, pass_fds=child_fds)
        except BaseException:
            os.close(wake_write)
            if sent_read >= 0:
                os.close(sent_read)
            raise
        finally:
            for fd in child_fds:
                os.close(fd)  # the child's now
        assert process.stdin is not None
        with self._lock:
            self.process, self._wake = process, wake_write
        sent = _SentReader(sent_read, self.db) if sent_read >= 0 else None
        try:
            process.stdin.write(settings)  # a child that died at once: BrokenPipeError, then restarted
            process.stdin.flush()
            while not stop.wait(0.2):
                if sent is not None:
                    sent.drain()
                code = process.poll()
                if code is not None:
                    raise RuntimeError(f"relay process {process.pid} exited with status {code}")
        finally:
            with self._lock:
                self._wake = -1
                os.close(wake_write)
                try:
                    process.stdin.close()  # end of file: the child stops after its batch
                except BrokenPipeError:
                    pass  # it had gone already
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("relay process %d did not stop in %.0fs; killing it", process.pid,
                            self.stop_timeout)
                process.kill()
                process.wait()
            if sent is not None:
                sent.close()  # after the child's last report: what it sent before it stopped is deleted


class _SentReader:
    """The parent's end of the sent pipe: deletes the rows up to the last id the child reported.

    It is read every 0.2 s, not at each report: waking a thread of the server for every relay batch
    cost the server 0.6 ms of CPU per CreateJob at 150 calls/s (one wake-up and one transaction each),
    while a sent row that stays a little longer costs nothing (the relay reads past it)."""

    def __init__(self, fd: int, db: Database) -> None:
        self.fd = fd
        self.db = db
        self._partial = b""
        self._closed = False  # the child closed its end (it is exiting)

    def drain(self) -> None:
        """Reads every report waiting and deletes what they cover in one transaction."""
        data = self._partial
        while not self._closed and select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 65536)
            self._closed = not chunk
            data += chunk
        complete, _, self._partial = data.rpartition(b"\n")
        if complete:
            last_id = int(complete.rsplit(b"\n", 1)[-1])  # ids only grow: the last covers the others
            self.db.run(lambda connection: delete_through(connection, last_id))

    def close(self) -> None:
        """Applies what is left in the pipe and closes it."""
        try:
            self.drain()
        finally:
            os.close(self.fd)


def _read_until_end(stop: threading.Event, wake: Callable[[], None]) -> None:
    """Waits for end of file on standard input (the server stops this process, or is gone), then sets
    ``stop`` and wakes the relay out of its wait."""
    while os.read(0, 4096):
        pass
    stop.set()
    wake()


def main() -> int:
    """Entry point of the child: configuration from the first line of standard input."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk:
            return 0  # the parent went away before it sent the configuration
        line += chunk
    settings = json.loads(line)
    if settings.get("cpus"):  # the server pinned its threads (cpu_affinity): not this process's
        os.sched_setaffinity(0, settings["cpus"])
    config = ServerConfig(**settings["config"])
    logging.basicConfig(level=settings["log_level"],
                        format="%(asctime)s %(levelname)s %(name)s[relay]: %(message)s")
    # The parent's Ctrl-C reaches the whole process group: the child stops on end of file instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from .relay import OutboxRelay
    from .supervisor import Supervised
    from .telemetry import configure

    shutdown_telemetry = configure("argo-server")
    stop = threading.Event()

    def _terminate(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _terminate)
    db = Database(config.database_url, config.sqlite_synchronous)
    relay = OutboxRelay.from_config(db, config)
    relay.wake_fd = settings["wake_fd"]
    os.set_blocking(relay.wake_fd, False)
    if settings.get("sent_fd", -1) >= 0:
        relay.sent_fd = settings["sent_fd"]
        os.set_blocking(relay.sent_fd, False)
    threading.Thread(target=_read_until_end, args=(stop, relay.notify), name="relay-stdin", daemon=True).start()
    # Broker outages are the in-process relay's business: restarted here, the process keeps running.
    supervised = Supervised("outbox-relay", relay.loop)
    supervised.start()
    stop.wait()
    supervised.stop_event.set()
    relay.notify()  # out of its wait at once
    supervised.stop()
    db.dispose()
    shutdown_telemetry()
    return 0


if __name__ == "__main__":
    sys.exit(main())
