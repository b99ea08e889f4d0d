"""Blobs as files: write to a temporary file, fsync, rename, fsync the directory.

The fsync runs in a worker while the caller parses the instance (stage), and the
rename happens only once the bytes are on disk (commit).

File names come from a SHA-256 of the facility and SOP Instance UID, never from
the UID itself, so no peer-supplied text ever reaches the file system.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from telerad.domain.model import StoredObject
from telerad.services.ports import IntegrityError


def _fsync_and_close(fd: int, sync: bool) -> None:
    try:
        if sync:
            os.fsync(fd)
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
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".incoming-", suffix=".tmp")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        synced = self._pool.submit(_fsync_and_close, fd, self.fsync)
        digest: Future[str] = Future()
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
        if self.fsync:
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return StoredObject(key=key, size=staged.size, sha256=digest)

    def discard(self, staged: Staged) -> None:
        """Drop a staged object (it was refused before being kept)."""
        staged.synced.exception()  # the descriptor is closed once this is done
        staged.path.unlink(missing_ok=True)

    def get(self, key: str, sha256: str | None = None) -> bytes:
        data = (self.root / key).read_bytes()
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(f"stored object {key} does not match its recorded SHA-256")
        return data

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def written_since(self, timestamp: float) -> Iterator[tuple[str, int]]:
        """(key, facility id) of every blob whose file was written at or after ``timestamp``."""
        for path in self.root.glob("*/*/*/*.dcm"):
            try:
                if path.stat().st_mtime >= timestamp:
                    key = path.relative_to(self.root).as_posix()
                    yield key, int(key.split("/", 1)[0])
            except (OSError, ValueError):
                continue

    def sweep_incomplete(self) -> int:
        """Remove temporary files a crash left behind; they were never acknowledged."""
        removed = 0
        for tmp in self.root.rglob(".incoming-*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed
