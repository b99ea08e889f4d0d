"""A background task run every few seconds until stopped; a failing pass is logged, not fatal."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(
        self,
        name: str,
        every: float,
        task: Callable[[], object],
        wake: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.every = every
        self.task = task
        self._stop = threading.Event()
        #: Set to run the next pass now rather than after ``every`` seconds.
        self.wake = wake or threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            self.wake.wait(self.every)
            if self._stop.is_set():
                return
            self.wake.clear()
            try:
                self.task()
            except Exception as exc:  # the next pass may succeed; never kill the platform
                # Type and place only: a message may quote patient data.
                where = "".join(traceback.format_tb(exc.__traceback__)[-2:])
                log.error("%s failed: %s\n%s", self.name, type(exc).__name__, where)

    def shutdown(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(5.0, self.every))
