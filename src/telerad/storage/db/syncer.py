"""Durability bookkeeping for the embedded index: periodic syncs and run markers.

``.index-synced`` holds the time of the last sync of the SQLite WAL: commits
before it are durable. ``.running-<pid>`` exists while a process has the data
dir open; one left behind by a dead process means an unclean stop.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from sqlalchemy import Engine

from telerad.storage.db.engine import sync_sqlite

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


def claim(data_dir: Path) -> float | None:
    """Mark this process as running; return the last sync time if a previous run
    stopped uncleanly (0.0 when it never synced), else None."""
    unclean = False
    for marker in data_dir.glob(".running-*"):
        try:
            pid = int(marker.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            unclean = True
            marker.unlink(missing_ok=True)
    (data_dir / f".running-{os.getpid()}").touch()
    if not unclean:
        return None
    try:
        return float((data_dir / SYNCED_MARKER).read_text())
    except (OSError, ValueError):
        return 0.0


def release(data_dir: Path) -> None:
    (data_dir / f".running-{os.getpid()}").unlink(missing_ok=True)


class IndexSyncer:
    """Syncs the SQLite WAL every ``interval`` seconds and records when."""

    def __init__(self, engine: Engine, data_dir: Path, interval: float = 2.0) -> None:
        self.engine = engine
        self.marker = data_dir / SYNCED_MARKER
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> None:
        started = time.time()  # commits before this moment are covered
        sync_sqlite(self.engine)
        _write_durably(self.marker, repr(started))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="index-syncer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            # A failed sync is retried at the next interval; blobs stay the record.
            with contextlib.suppress(OSError):
                self.sync()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sync()
