"""The ``local`` scheduler's spawner: one long-lived process per agent that starts the steps and
records how they end.

Why a process of its own: the steps must outlive the agent (a restarted agent re-attaches to them) and
their exit codes must be recorded even while no agent runs. The spawner is the steps' parent: it waits
for them and records each exit code in the step's claim itself
(:mod:`balsam_agent.builtin.local_launch`), so no shell or wrapper process runs beside each step, and
the agent does not fork at all. It runs in a session of its own (a Ctrl-C at the agent's terminal does
not reach it) and exits once the agent has closed its request pipe and the last step it started has
ended. If it is killed, the steps it started run on, but their exit codes are lost (the agent then
reports them FAILED, "ended without an exit code").

Protocol, one JSON object per line:

- agent → spawner (stdin): ``{"marker", "argv", "cwd", "stdout", "stderr", "env", "wall"}``,
  ``env`` holding only the variables to add to the spawner's own environment (the agent's, inherited);
- spawner → agent (stdout), one reply per request, in order: ``{"pid", "start"}``, or
  ``{"claimed": PID or null}`` when the attempt was claimed before, or ``{"error": MESSAGE}``;
- spawner → agent (the events pipe, the fd named by ``--events-fd``): ``{"pid", "code"}`` when a step
  ended, after its exit code was recorded in its claim.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from balsam_agent.builtin.local_launch import Claimed, claim, exit_code_of, record_exit, start_claimed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


#: Threads that create claims: file creation is slow on some file systems (hundreds of microseconds
#: of kernel time) and cheaper per file when several run at once; the spawns themselves stay in order.
CLAIM_THREADS = 8


class _Spawner:
    """The spawner's loop: requests in, replies and exit events out, one thread (the claims aside)."""

    def __init__(self, requests: int, replies: int, events: int) -> None:
        self.requests, self.replies, self.events = requests, replies, events
        self.env = dict(os.environ)
        #: pid -> claim file of every running step.
        self.children: dict[int, str] = {}
        self.agent_gone = False
        self.claims = concurrent.futures.ThreadPoolExecutor(CLAIM_THREADS, thread_name_prefix="claim")

    def serve(self) -> None:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wake-up fd is written
        poller = select.poll()
        poller.register(self.requests, select.POLLIN)
        poller.register(wake_read, select.POLLIN)
        pending = b""
        while not self.agent_gone or self.children:
            for fd, _ in poller.poll():
                if fd == wake_read:
                    os.read(wake_read, 4096)
                    continue
                chunk = os.read(self.requests, 1 << 16)
                if not chunk:
                    self.agent_gone = True
                    poller.unregister(self.requests)
                    continue
                *lines, pending = (pending + chunk).split(b"\n")
                self._serve_batch([json.loads(line) for line in lines])
            self._reap()

    def _serve_batch(self, requests: list[dict[str, Any]]) -> None:
        """Claims every attempt of the batch at once, then starts them and answers in request order."""
        claims = [self.claims.submit(claim, request["marker"]) for request in requests]
        for request, claimed in zip(requests, claims, strict=True):
            try:
                pid, start = start_claimed(
                    claimed.result(), request["marker"], request["argv"], cwd=request["cwd"],
                    stdout=request["stdout"], stderr=request["stderr"], env={**self.env, **request["env"]},
                    wall_minutes=request["wall"])
            except Claimed as taken:
                answer: dict[str, Any] = {"claimed": taken.holder}
            except OSError as exc:
                where = f" {exc.filename}" if exc.filename else ""
                answer = {"error": f"cannot start {request['argv'][0]}:{where} {exc.strerror or exc}"}
            else:
                self.children[pid] = request["marker"]
                answer = {"pid": pid, "start": start}
            self._send(self.replies, json.dumps(answer).encode() + b"\n")

    def _reap(self) -> None:
        """Records the exit of every ended step, then reaps it (the order lets a reader trust a zombie)."""
        while self.children:
            result = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if result is None or result.si_pid == 0:
                return
            pid = result.si_pid
            code = exit_code_of(result)
            marker = self.children.pop(pid, None)
            if marker is not None:
                record_exit(marker, code)
                self._send(self.events, json.dumps({"pid": pid, "code": code}).encode() + b"\n")
            os.waitpid(pid, 0)

    def _send(self, fd: int, data: bytes) -> None:
        if self.agent_gone or not data:
            return
        try:
            _write_all(fd, data)
        except BrokenPipeError:
            self.agent_gone = True  # the agent died: keep recording exits for the next one


class _Pending:
    __slots__ = ("process", "answer")

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        #: The reply, or None while waiting, or False when the spawner died first.
        self.answer: dict[str, Any] | bool | None = None


class SpawnerClient:
    """The agent's side: starts the spawner on first use and asks it to launch steps.

    Thread-safe and pipelined: callers write their requests one after the other and do not wait for
    earlier replies, so the spawner sees the requests of concurrent submits together (and creates
    their claims at once). Replies come in request order; whichever waiting caller is free reads the
    next one and hands it to its owner. ``on_started(events_fd)`` is called with the events pipe of
    each spawner it starts; the caller reads that pipe (and closes it at its end)."""

    def __init__(self, on_started: Callable[[int], None]) -> None:
        self._on_started = on_started
        self._write_lock = threading.RLock()
        self._cond = threading.Condition()
        self._waiting: collections.deque[_Pending] = collections.deque()
        self._reading = False
        self._process: subprocess.Popen[bytes] | None = None
        self._events_fd: int | None = None

    def launch(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Sends one launch request and returns the reply (see the module documentation)."""
        line = json.dumps(request).encode() + b"\n"
        for _ in range(2):
            pending = self._send(line)
            answer = self._wait(pending)
            if isinstance(answer, dict):
                return answer
            # The spawner died. Asking a new one is safe: a launch it made before dying holds the claim.
        raise OSError("the local spawner exited without answering")

    def _send(self, line: bytes) -> _Pending:
        with self._write_lock:
            process = self._process if self._process is not None else self._start()
            pending = _Pending(process)
            with self._cond:
                self._waiting.append(pending)
            try:
                assert process.stdin is not None
                process.stdin.write(line)
                process.stdin.flush()
            except (BrokenPipeError, ValueError):
                self._lost(process)
        return pending

    def _wait(self, pending: _Pending) -> dict[str, Any] | bool:
        with self._cond:
            while pending.answer is None:
                if self._reading:
                    self._cond.wait()
                    continue
                head = self._waiting[0]
                self._reading = True
                self._cond.release()
                try:
                    assert head.process.stdout is not None
                    reply = head.process.stdout.readline()
                except (OSError, ValueError):
                    reply = b""
                finally:
                    self._cond.acquire()
                    self._reading = False
                if reply:
                    if self._waiting and self._waiting[0] is head:
                        self._waiting.popleft().answer = json.loads(reply)
                    self._cond.notify_all()
                else:
                    self._cond.release()
                    try:
                        self._lost(head.process)
                    finally:
                        self._cond.acquire()
            return pending.answer

    def _lost(self, process: subprocess.Popen[bytes]) -> None:
        """The spawner ``process`` died: every request still waiting for it gets no answer."""
        with self._write_lock:
            if self._process is process:
                self._forget()
        with self._cond:
            for waiting in [w for w in self._waiting if w.process is process]:
                waiting.answer = False
                self._waiting.remove(waiting)
            self._cond.notify_all()

    def _start(self) -> subprocess.Popen[bytes]:
        events_read, events_write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "balsam_agent.builtin.local_spawner", "--events-fd", str(events_write)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(events_write,), start_new_session=True)
        except BaseException:
            os.close(events_read)
            raise
        finally:
            os.close(events_write)
        self._process, self._events_fd = process, events_read
        self._on_started(events_read)
        return process

    def _forget(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)  # reaped here when it had no steps left; else it ends on its own

    @property
    def pid(self) -> int | None:
        """The current spawner's pid, if one runs."""
        return self._process.pid if self._process is not None else None

    @property
    def events_fd(self) -> int | None:
        """The events pipe of the current spawner (the last one started), if any."""
        return self._events_fd if self._process is not None else None

    def close(self) -> None:
        """Closes the request pipe: the spawner exits once its running steps have ended."""
        with self._write_lock:
            self._forget()


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the local scheduler's spawner (started by the agent)")
    parser.add_argument("--events-fd", type=int, required=True)
    options = parser.parse_args(args)
    os.set_inheritable(options.events_fd, False)  # the steps must not hold the agent's pipes
    _Spawner(sys.stdin.fileno(), sys.stdout.fileno(), options.events_fd).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
