"""Use cases of the archive: store an instance, find instances, read them back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from telerad.dicom.part10 import InvalidInstance, check_instance
from telerad.domain.model import (
    ConflictingHierarchy,
    InstanceLocation,
    Level,
    StoredObject,
    StoreOutcome,
    StoreResult,
)
from telerad.domain.query import Query
from telerad.services.ports import BlobStore, Index, StorageRefused

log = logging.getLogger(__name__)

#: Policy for a different object under an existing SOP Instance UID: the first
#: one kept wins and the newcomer is refused, so nothing stored is ever silently
#: replaced. An identical re-send is a success without a second copy.
DUPLICATE_POLICY = "reject-different"


@dataclass
class StoreTally:
    """Counts of a batch of stores (import, demo), with the reasons of the failures."""

    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, label: str, reason: str) -> None:
        self.failed += 1
        self.failures.append((label, reason))

    def count(self, label: str, result: StoreResult) -> None:
        if result.outcome is StoreOutcome.STORED:
            self.stored += 1
        elif result.outcome is StoreOutcome.DUPLICATE:
            self.duplicates += 1
        else:
            self.fail(label, f"{result.outcome.value}: {result.reason}")

    @property
    def total(self) -> int:
        return self.stored + self.duplicates + self.failed


class Archive:
    def __init__(self, index: Index, blobs: BlobStore) -> None:
        self.index = index
        self.blobs = blobs
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()

    def store(self, facility_id: int, data: bytes) -> StoreResult:
        """Keep one Part 10 instance. Returns only after it is durable (or refused)."""
        with self._in_flight_lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            return self._store(facility_id, data, overlap=alone)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def _store(self, facility_id: int, data: bytes, overlap: bool) -> StoreResult:
        # The bytes go to disk first; parsing runs while the fsync is under way.
        try:
            staged = self.blobs.stage(facility_id, data)
        except StorageRefused as exc:
            return StoreResult(StoreOutcome.REJECTED, reason=str(exc))
        try:
            header = check_instance(data)
        except InvalidInstance as exc:
            self.blobs.discard(staged)
            return StoreResult(StoreOutcome.REJECTED, reason=str(exc))
        except BaseException:
            self.blobs.discard(staged)
            raise
        ids = dict(
            sop_instance_uid=header.SOPInstanceUID,
            sop_class_uid=header.SOPClassUID,
            study_instance_uid=header.StudyInstanceUID,
            series_instance_uid=header.SeriesInstanceUID,
        )
        # Then the index's unique SOP Instance UID decides: re-sends and conflicts
        # are rare, so checking before every write would cost more. Blob keys
        # include the content digest, so a conflicting object never lands on the
        # kept one's file, and an identical one lands on itself.
        #
        # The index rows are written while the blob's fsync is under way; the
        # index calls finish() (wait for the fsync, rename) before committing
        # them, so a committed row always points at a durable blob. Only for a
        # store on its own (one association sending): with others in flight
        # (STOW-RS requests store in parallel) the index's writer would be held
        # across the fsync, so the blob is finished first, then indexed.
        try:
            digest = staged.digest.result()
        except BaseException:
            self.blobs.discard(staged)
            raise
        uid = header.SOPInstanceUID
        blob = StoredObject(self.blobs.key_for(facility_id, uid, digest), staged.size, digest)
        committed: list[StoredObject] = []

        def finish() -> None:
            committed.append(self.blobs.commit(staged, uid))

        def finished() -> StoredObject:
            if not committed:
                finish()
            return committed[0]

        for attempt in range(3):
            try:
                added = self.index.add_instance(
                    facility_id, header, blob, finish if attempt == 0 and overlap else None
                )
            except ConflictingHierarchy as exc:
                self._drop(staged, committed, uid)
                return StoreResult(StoreOutcome.REJECTED, reason=str(exc), **ids)
            except Exception:
                # Nothing half-written: the index did not commit, so drop the blob.
                self._drop(staged, committed, uid)
                raise
            finished()
            if added:
                return StoreResult(StoreOutcome.STORED, **ids)
            existing = self.index.find_instance(uid)
            if existing is not None:
                if existing.blob_key != blob.key:
                    self.blobs.delete(blob.key)
                return self._already_there(existing, facility_id, digest, ids)
            # Refused by a concurrent insert of the same new patient/study/series: retry.
        self.blobs.delete(blob.key)
        return StoreResult(StoreOutcome.REJECTED, reason="index busy: concurrent writes", **ids)

    def _drop(self, staged: Any, committed: list[StoredObject], sop_instance_uid: str) -> None:
        """Remove a blob the index refused: still staged, or already under its key."""
        if committed:
            self._discard(committed[0].key, sop_instance_uid)
        else:
            self.blobs.discard(staged)

    def _discard(self, key: str, sop_instance_uid: str) -> None:
        """Delete a blob the index refused, unless the index already points at it."""
        existing = self.index.find_instance(sop_instance_uid)
        if existing is None or existing.blob_key != key:
            self.blobs.delete(key)

    @staticmethod
    def _already_there(
        existing: InstanceLocation, facility_id: int, digest: str, ids: dict[str, str]
    ) -> StoreResult:
        if existing.sha256 == digest and existing.facility_id == facility_id:
            return StoreResult(StoreOutcome.DUPLICATE, **ids)
        return StoreResult(
            StoreOutcome.CONFLICT,
            reason="a different object is already stored under this SOP Instance UID",
            **ids,
        )

    def search(self, query: Query) -> list[dict[str, object]]:
        return self.index.search(query)

    def locate(
        self, level: Level, uids: Sequence[str], facility_ids: frozenset[int] | None = None
    ) -> list[InstanceLocation]:
        return self.index.instances(level, uids, facility_ids)

    def read(self, location: InstanceLocation) -> bytes:
        """The stored bytes, verified against the SHA-256 recorded at write time."""
        return self.blobs.get(location.blob_key, location.sha256)

    def is_committed(self, sop_instance_uid: str, sop_class_uid: str) -> bool:
        """True only for an instance that is indexed and whose bytes verify (Storage Commitment)."""
        location = self.index.find_instance(sop_instance_uid)
        if location is None or location.sop_class_uid != sop_class_uid:
            return False
        try:
            self.read(location)
        except Exception:
            log.warning("storage commitment: stored object failed verification")
            return False
        return True
