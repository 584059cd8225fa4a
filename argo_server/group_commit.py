"""Group commit of concurrent CreateJob calls: one transaction for every call waiting at that moment.

Callers hand their request to one committer thread and wait for their own result. The committer takes
every request waiting (up to ``max_group``), creates them in one transaction and wakes each caller.
One commit then serves many calls, which is what makes durable CreateJob cheap on SQLite, whose
writers are serialized anyway; each caller is woken once, for its own result. If a group fails (for
example one request reuses a request_id), each request of the group is retried on its own, so one bad
request never fails another.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")

MAX_GROUP = 256


class _Waiter(Generic[Req, Res]):
    __slots__ = ("request", "result", "error", "event")

    def __init__(self, request: Req) -> None:
        self.request = request
        self.result: Res | None = None
        self.error: BaseException | None = None
        self.event = threading.Event()


class GroupCommitter(Generic[Req, Res]):
    """Runs ``work(requests) -> results`` on one thread for groups of concurrent :meth:`call` callers."""

    def __init__(self, work: Callable[[Sequence[Req]], list[Res]], max_group: int = MAX_GROUP,
                 name: str = "group-commit") -> None:
        self.work = work
        self.max_group = max_group
        self.name = name
        self.groups = 0
        self._queue: queue.SimpleQueue[_Waiter[Req, Res]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def call(self, request: Req) -> Res:
        """Returns ``work([request])[0]``, computed together with other callers' requests."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    thread.start()
                    self._thread = thread
        waiter: _Waiter[Req, Res] = _Waiter(request)
        self._queue.put(waiter)
        waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.result is not None
        return waiter.result

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < self.max_group:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.groups += 1
            self._commit(group)

    def _commit(self, group: list[_Waiter[Req, Res]]) -> None:
        try:
            results = self.work([waiter.request for waiter in group])
        except BaseException as error:  # noqa: BLE001 - the committer thread must outlive any request
            if len(group) == 1:
                group[0].error = error
                group[0].event.set()
                return
            for waiter in group:
                self._commit([waiter])
            return
        for waiter, result in zip(group, results, strict=True):
            waiter.result = result
            waiter.event.set()
