"""Durability bookkeeping for the embedded index: periodic syncs and run markers.

``.index-synced`` holds the time of the last sync of the SQLite WAL: commits
before it are durable. ``.running-<pid>`` exists while a process has the data
dir open; one left behind by a dead process means an unclean stop.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from telerad.storage.db.database import refresh_statistics, sync_sqlite

SYNCED_MARKER = ".index-synced"


def _write_durably(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Claim:
    #: The last sync time when a previous run stopped uncleanly (0.0 if it never
    #: synced); None after a clean stop.
    unclean_since: float | None
    #: Another live process has the data dir open (its writes are in flight).
    shared: bool


def claim(data_dir: Path) -> Claim:
    """Mark this process as running and tell how the previous runs ended."""
    unclean, shared = False, False
    for marker in data_dir.glob(".running-*"):
        try:
            pid = int(marker.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        if _alive(pid):
            shared = True
        else:
            unclean = True
            marker.unlink(missing_ok=True)
    (data_dir / f".running-{os.getpid()}").touch()
    if not unclean:
        return Claim(None, shared)
    try:
        return Claim(float((data_dir / SYNCED_MARKER).read_text()), shared)
    except (OSError, ValueError):
        return Claim(0.0, shared)


def release(data_dir: Path) -> None:
    (data_dir / f".running-{os.getpid()}").unlink(missing_ok=True)


class IndexSyncer:
    """Syncs blob directories and the SQLite WAL, and records when (commits and renames
    before that moment are durable). The ``index-sync`` loop (:mod:`telerad.runtime`)
    runs it every few seconds; closing the platform runs it once more."""

    def __init__(
        self,
        engine: Engine | None,
        data_dir: Path,
        flush: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.flush = flush
        self.marker = data_dir / SYNCED_MARKER

    def sync(self) -> None:
        started = time.time()  # commits before this moment are covered
        try:
            self.flush()
            if self.engine is not None:
                sync_sqlite(self.engine)
            _write_durably(self.marker, repr(started))
        except OSError:  # retried at the next pass; the blobs stay the record
            return

    def analyse(self) -> None:
        """Refresh the SQLite planner's statistics (an optimisation: failures are ignored)."""
        if self.engine is not None:
            with contextlib.suppress(Exception):
                refresh_statistics(self.engine)
