"""Group commit of concurrent CreateJob calls: one transaction for every call waiting at that moment.

Leader/follower, without a thread of its own: a caller queues its request; if no commit is in progress
it becomes the leader, takes every request waiting (up to ``max_group``, its own among them), creates
them in one transaction and wakes each caller with its own result. Once its own request is served the
leader hands the lead to the oldest waiting caller (if any) and returns, so no caller serves others
for long. A caller that finds a leader at work waits to be served by it. So a lone caller commits on
its own thread with no hand-off, and concurrent callers share commits, which is what makes durable
CreateJob cheap on SQLite, whose writers are serialized anyway. If a group fails (for example one
request reuses a request_id), each request of the group is retried on its own, so one bad request
never fails another.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")

MAX_GROUP = 256


class _Waiter(Generic[Req, Res]):
    __slots__ = ("request", "result", "error", "finished", "lead", "event")

    def __init__(self, request: Req) -> None:
        self.request = request
        self.result: Res | None = None
        self.error: BaseException | None = None
        self.finished = False
        #: Set (with the event) when this caller is to lead the next commits.
        self.lead = False
        self.event = threading.Event()


class GroupCommitter(Generic[Req, Res]):
    """Runs ``work(requests) -> results`` for groups of concurrent :meth:`call` callers."""

    def __init__(self, work: Callable[[Sequence[Req]], list[Res]], max_group: int = MAX_GROUP) -> None:
        self.work = work
        self.max_group = max_group
        self.groups = 0
        self._waiting: deque[_Waiter[Req, Res]] = deque()
        self._lock = threading.Lock()
        self._leading = False

    def call(self, request: Req) -> Res:
        """Returns ``work([request])[0]``, computed together with other callers' requests."""
        waiter: _Waiter[Req, Res] = _Waiter(request)
        with self._lock:
            self._waiting.append(waiter)
            if not self._leading:
                self._leading = waiter.lead = True
        while True:
            if waiter.lead:
                waiter.lead = False
                self._lead(waiter)
            waiter.event.wait()
            if waiter.finished:
                break
            waiter.event.clear()  # woken to take the lead
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]

    def _lead(self, leader: _Waiter[Req, Res]) -> None:
        while not leader.finished:
            with self._lock:
                group = [self._waiting.popleft() for _ in range(min(self.max_group, len(self._waiting)))]
            self.groups += 1
            self._commit(group)
        with self._lock:
            if self._waiting:
                successor = self._waiting[0]
                successor.lead = True
                successor.event.set()
            else:
                self._leading = False

    def _commit(self, group: list[_Waiter[Req, Res]]) -> None:
        try:
            results = self.work([waiter.request for waiter in group])
        except BaseException as error:  # noqa: BLE001 - every waiter must be woken whatever happens
            if len(group) == 1:
                group[0].error, group[0].finished = error, True
                group[0].event.set()
                return
            for waiter in group:
                self._commit([waiter])
            return
        for waiter, result in zip(group, results, strict=True):
            waiter.result, waiter.finished = result, True
            waiter.event.set()
