"""Blobs as files: write to a temporary file, fsync, rename; directories synced in batches.

The fsync runs in a worker while the caller parses the instance (stage), and the
rename happens only once the bytes are on disk (commit). Directory entries are
synced every few seconds rather than per object: a crash before that leaves
the fsynced temporary file, which recovery moves into place.

File names come from a SHA-256 of the facility and SOP Instance UID, never from
the UID itself, so no peer-supplied text ever reaches the file system.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from telerad.domain.model import StoredObject
from telerad.services.ports import IntegrityError

#: The first bytes of an object sealed by telerad.storage.blobs.protected.
SEALED = b"TLRDENC1"
#: Objects smaller than this are synced and hashed in the caller's thread.
INLINE_BELOW = 64 * 1024


def _fsync_and_close(fd: int, sync: bool) -> None:
    try:
        if sync:
            # The data and the size: what reading the object back needs.
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # releases the GIL on large inputs


@dataclass
class Staged:
    """An object written to a temporary file, its fsync and digest under way."""

    facility_id: int
    path: Path
    size: int
    digest: Future[str]
    synced: Future[None]


class FileBlobStore:
    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._known_dirs: set[Path] = set()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="blob-sync")
        self._names = itertools.count()
        self._dirty_lock = threading.Lock()
        self._dirty_dirs: set[Path] = set()

    @staticmethod
    def key_for(facility_id: int, sop_instance_uid: str, content_sha256: str) -> str:
        # The content digest is part of the name, so two different objects sent
        # under one UID at the same moment can never overwrite each other.
        name = f"{facility_id}/{sop_instance_uid}/{content_sha256}"
        digest = hashlib.sha256(name.encode()).hexdigest()
        return f"{facility_id}/{digest[:2]}/{digest[2:4]}/{digest}.dcm"

    def path(self, key: str) -> str:
        return str(self.root / key)

    def put(
        self, facility_id: int, sop_instance_uid: str, data: bytes, sha256: str | None = None
    ) -> StoredObject:
        return self.commit(self.stage(facility_id, data, sha256), sop_instance_uid)

    def stage(self, facility_id: int, data: bytes, sha256: str | None = None) -> Staged:
        """Write ``data`` to a temporary file and start its fsync and digest in the
        background, so the caller can parse the instance while the disk works."""
        directory = self.root / str(int(facility_id))
        if directory not in self._known_dirs:
            directory.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(directory)
        # Unique within this process by a counter, across processes by the pid;
        # O_EXCL still guards against a leftover of an earlier process.
        while True:
            tmp = str(directory / f".incoming-{os.getpid()}-{next(self._names)}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        digest: Future[str] = Future()
        synced: Future[None] = Future()
        if len(data) < INLINE_BELOW:
            # Small objects: a hand-off to a worker costs more than it overlaps.
            try:
                _fsync_and_close(fd, self.fsync)
            except OSError as exc:
                synced.set_exception(exc)
            else:
                synced.set_result(None)
            digest.set_result(sha256 or _sha256(data))
        else:
            synced = self._pool.submit(_fsync_and_close, fd, self.fsync)
            if sha256 is not None:
                digest.set_result(sha256)
            else:
                digest = self._pool.submit(_sha256, data)
        return Staged(facility_id, Path(tmp), len(data), digest, synced)

    def commit(self, staged: Staged, sop_instance_uid: str) -> StoredObject:
        """Move a staged object to its final name once it is on disk."""
        try:
            staged.synced.result()
            digest = staged.digest.result()
            key = self.key_for(staged.facility_id, sop_instance_uid, digest)
            target = self.root / key
            directory = target.parent
            if directory not in self._known_dirs:
                directory.mkdir(parents=True, exist_ok=True)
                self._known_dirs.add(directory)
            os.replace(staged.path, target)
        except BaseException:
            staged.path.unlink(missing_ok=True)
            raise
        # The bytes are on disk under the temporary name, which a crash cannot
        # lose; the rename reaches the disk with the next directory sync
        # (sync_directories, every few seconds). Until then a crash leaves the
        # fsynced temporary file, and start-up recovery puts it in place.
        with self._dirty_lock:
            self._dirty_dirs.add(directory)
        return StoredObject(key=key, size=staged.size, sha256=digest)

    def sync_directories(self) -> None:
        """Make every rename so far durable."""
        with self._dirty_lock:
            dirty, self._dirty_dirs = self._dirty_dirs, set()
        if not self.fsync:
            return
        for directory in dirty:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def incomplete(self) -> Iterator[tuple[Path, int]]:
        """Temporary files a crash left behind, with their facility id."""
        for path in self.root.glob("*/.incoming-*.tmp"):
            try:
                yield path, int(path.parent.name)
            except ValueError:
                continue

    def adopt(self, path: Path, key: str) -> None:
        """Move a recovered temporary file to its key, durably."""
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self, staged: Staged) -> None:
        """Drop a staged object (it was refused before being kept)."""
        staged.synced.exception()  # the descriptor is closed once this is done
        staged.path.unlink(missing_ok=True)

    def get(self, key: str, sha256: str | None = None) -> bytes:
        data = (self.root / key).read_bytes()
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            if data.startswith(SEALED):
                raise IntegrityError(f"stored object {key} is encrypted and no master key is set")
            raise IntegrityError(f"stored object {key} does not match its recorded SHA-256")
        return data

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def read_staged(self, path: Path, facility_id: int) -> bytes:
        return path.read_bytes()

    def written_since(self, timestamp: float) -> Iterator[tuple[str, int]]:
        """(key, facility id) of every blob whose file was written at or after ``timestamp``."""
        for path in self.root.glob("*/*/*/*.dcm"):
            try:
                if path.stat().st_mtime >= timestamp:
                    key = path.relative_to(self.root).as_posix()
                    yield key, int(key.split("/", 1)[0])
            except (OSError, ValueError):
                continue
