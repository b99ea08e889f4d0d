"""An in-memory blob store (the real one: storage.blobs.filesystem.FileBlobStore).

Objects live in a dict under the same keys as the file store's, so an index row
written with a fake key reads back. Left out: durability (there is nothing to
fsync), spare files, encryption and data regions (storage.blobs.protected), and
crash recovery's listings (``incomplete`` and ``written_since`` find nothing).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from telerad.domain.model import StoredObject
from telerad.services.ports import IntegrityError
from telerad.storage.blobs.filesystem import FileBlobStore


@dataclass
class FakeStaged:
    """A staged object: its bytes, with the digest and sync already done (as the file
    store's ``Staged`` has them once its futures resolve)."""

    facility_id: int
    data: bytes
    size: int
    digest: Future[str] = field(default_factory=Future)
    synced: Future[None] = field(default_factory=Future)
    done: bool = False


class FakeBlobStore:
    key_for = staticmethod(FileBlobStore.key_for)

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        #: Staged objects neither committed nor discarded yet (a test asserts it empties).
        self.staged: list[FakeStaged] = []

    def put(
        self, facility_id: int, sop_instance_uid: str, data: bytes, sha256: str | None = None
    ) -> StoredObject:
        return self.commit(self.stage(facility_id, data, sha256), sop_instance_uid)

    def stage(self, facility_id: int, data: bytes, sha256: str | None = None) -> FakeStaged:
        staged = FakeStaged(int(facility_id), bytes(data), len(data))
        staged.digest.set_result(sha256 or hashlib.sha256(data).hexdigest())
        staged.synced.set_result(None)
        self.staged.append(staged)
        return staged

    def _finish(self, staged: FakeStaged) -> None:
        if staged.done:
            raise ValueError("a staged object is committed or discarded once")
        staged.done = True
        self.staged.remove(staged)

    def commit(self, staged: FakeStaged, sop_instance_uid: str) -> StoredObject:
        self._finish(staged)
        digest = staged.digest.result()
        key = self.key_for(staged.facility_id, sop_instance_uid, digest)
        self.objects[key] = staged.data
        return StoredObject(key=key, size=staged.size, sha256=digest)

    def discard(self, staged: FakeStaged) -> None:
        self._finish(staged)

    def get(self, key: str, sha256: str | None = None) -> bytes:
        try:
            data = self.objects[key]
        except KeyError:
            raise FileNotFoundError(key) from None  # as reading a missing file does
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(f"stored object {key} does not match its recorded SHA-256")
        return data

    def path(self, key: str) -> str:
        return f"memory:{key}"

    def adopt(self, path: Path, key: str) -> None:
        self.objects[key] = path.read_bytes()
        path.unlink()

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def read_staged(self, path: Path, facility_id: int) -> bytes:
        return path.read_bytes()

    def sync_directories(self) -> None:
        """Nothing to sync."""

    def close(self) -> None:
        """Nothing to release."""
