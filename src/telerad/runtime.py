"""The platform's background loops, named, in one list, each on the one :class:`Periodic`.

What runs by itself in a running platform, and how often:

* ``index-sync``, every 2 s: syncs blob directories (and the SQLite WAL), so that
  commits and renames before it survive power loss;
* ``index-statistics``, every 30 s (SQLite only): refreshes the planner's statistics;
* ``leadership``, every 2 s: takes or keeps the ``reading`` lease in the database
  (:mod:`telerad.services.leadership`): of several processes on one database,
  the holder alone runs the next two;
* ``reconciliation``, every ``TELERAD_RECONCILE_SECONDS``: matches new studies to
  orders, judges readiness, feeds the reading worklist;
* ``reading-worklist``, every ``TELERAD_WORKLIST_TICK_SECONDS``: the worklist's
  clock (sessions, shifts, stale holds, escalation, alerts);
* ``outbox``, every ``TELERAD_OUTBOX_SECONDS`` and at once when a signature (or a
  retry) in this process queued something: results delivered to the facilities
  (:mod:`telerad.services.outbox`). It runs in every process: claims keep several
  from sending one message, or a facility's messages out of order.

Listeners (DIMSE, MLLP, HTTP) are not loops: ``telerad serve`` starts them
(:mod:`telerad.server`). :meth:`Runtime.start` starts the loops and
:meth:`Runtime.stop` stops them, last started first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from telerad.services.leadership import RENEW
from telerad.services.periodic import Periodic

if TYPE_CHECKING:
    from telerad.bootstrap import Platform

#: How often blob directories and the SQLite WAL are synced (seconds).
SYNC_SECONDS = 2.0
#: How often the SQLite planner's statistics are refreshed (seconds).
STATISTICS_SECONDS = 30.0


@dataclass(frozen=True)
class Loop:
    name: str
    every: float
    run: Callable[[], object]
    #: Set to run a pass before ``every`` has passed.
    wake: threading.Event | None = None


def loops_of(platform: Platform) -> list[Loop]:
    """The platform's background loops, in the order they start."""
    settings = platform.settings
    loops = [Loop("index-sync", SYNC_SECONDS, platform.syncer.sync)]
    if platform.syncer.engine is not None:  # SQLite
        loops.append(Loop("index-statistics", STATISTICS_SECONDS, platform.syncer.analyse))
    lead = platform.leadership

    def if_leader(task: Callable[[], object]) -> Callable[[], object]:
        return lambda: task() if lead.is_leader else None

    loops += [
        Loop("leadership", RENEW, lead.renew),
        Loop("reconciliation", settings.reconcile_seconds, if_leader(platform.reconciler.run)),
        Loop("reading-worklist", settings.worklist_tick_seconds, if_leader(platform.reading.tick)),
        Loop("outbox", settings.outbox_seconds, platform.outbox.run, platform.outbox.wake),
    ]
    return loops


class Runtime:
    def __init__(self, loops: list[Loop]) -> None:
        self.loops = loops
        self._running: list[Periodic] = []

    @property
    def running(self) -> list[str]:
        return [p.name for p in self._running]

    def start(self, only: frozenset[str] | None = None) -> None:
        """Start the loops (``only``: those named) that are not running yet."""
        unknown = (only or frozenset()) - {loop.name for loop in self.loops}
        if unknown:
            raise ValueError(f"no such loop: {', '.join(sorted(unknown))}")
        for loop in self.loops:
            if (only is None or loop.name in only) and loop.name not in self.running:
                self._running.append(Periodic(loop.name, loop.every, loop.run, loop.wake).start())

    def stop(self) -> None:
        while self._running:
            self._running.pop().shutdown()
