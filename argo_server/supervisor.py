"""Supervision of background loops: log every failure, restart with capped exponential backoff."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Supervised:
    """Runs ``loop(stop_event)`` in a thread; when it raises (or returns before stop), the failure is
    logged and the loop restarted after a backoff that doubles up to ``max_backoff`` seconds and resets
    once the loop has run for a while."""

    def __init__(self, name: str, loop: Callable[[threading.Event], None], initial_backoff: float = 0.2,
                 max_backoff: float = 10.0) -> None:
        self.name = name
        self.loop = loop
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.stop_event = threading.Event()
        self.restarts = 0
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Starts the supervising thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Asks the loop to stop and waits for it."""
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the supervising thread runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        import time
        backoff = self.initial_backoff
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.loop(self.stop_event)
                if self.stop_event.is_set():
                    return
                log.error("%s ended unexpectedly; restarting in %.1fs", self.name, backoff)
            except Exception as error:  # noqa: BLE001 - a supervisor must survive anything
                self.last_error = error
                log.warning("%s failed (%s: %s); restarting in %.1fs", self.name, type(error).__name__, error,
                            backoff, exc_info=log.isEnabledFor(logging.DEBUG))
            self.restarts += 1
            if time.monotonic() - started > 30:
                backoff = self.initial_backoff
            if self.stop_event.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff)
