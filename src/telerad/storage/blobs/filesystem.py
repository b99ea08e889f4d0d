"""Blobs as files: write to a temporary file, fsync, rename, fsync the directory.

File names come from a SHA-256 of the facility and SOP Instance UID, never from
the UID itself, so no peer-supplied text ever reaches the file system.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from telerad.domain.model import StoredObject
from telerad.services.ports import IntegrityError


class FileBlobStore:
    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._known_dirs: set[Path] = set()

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
        digest = sha256 or hashlib.sha256(data).hexdigest()
        key = self.key_for(facility_id, sop_instance_uid, digest)
        target = self.root / key
        directory = target.parent
        if directory not in self._known_dirs:
            directory.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(directory)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".incoming-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self.fsync:
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return StoredObject(key=key, size=len(data), sha256=digest)

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
