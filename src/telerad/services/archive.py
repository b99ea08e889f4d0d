"""Use cases of the archive: store an instance, find instances, read them back."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from telerad.dicom.part10 import InvalidInstance, check_instance, normalise_preamble
from telerad.domain.modalities import InstanceOrigin
from telerad.domain.model import (
    ConflictingHierarchy,
    InstanceHeader,
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


#: SQLite's SQLITE_FULL message and PostgreSQL's disk_full SQLSTATE.
_DATABASE_FULL = ("database or disk is full", "53100")


def out_of_space(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the storage is full: ENOSPC or
    EDQUOT from the file system, or a database that could not grow its files."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = f"{current} {getattr(current, 'sqlstate', '') or ''}"
        if any(marker in text for marker in _DATABASE_FULL):
            return True
        orig = getattr(current, "orig", None)  # SQLAlchemy wraps the driver's error
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


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


class _Pending:
    """A blob written to a temporary file (fsync under way) and the header read from it.

    ``finish`` waits for the fsync and renames the file to its key, once."""

    def __init__(self, blobs: BlobStore, staged: Any, header: InstanceHeader) -> None:
        self.blobs = blobs
        self.staged = staged
        self.header = header
        self.finished: StoredObject | None = None

    @property
    def ids(self) -> dict[str, str]:
        h = self.header
        return dict(
            sop_instance_uid=h.SOPInstanceUID,
            sop_class_uid=h.SOPClassUID,
            study_instance_uid=h.StudyInstanceUID,
            series_instance_uid=h.SeriesInstanceUID,
        )

    def finish(self) -> StoredObject:
        if self.finished is None:
            self.finished = self.blobs.commit(self.staged, self.header.SOPInstanceUID)
        return self.finished

    def finish_before_commit(self) -> None:
        self.finish()


#: Instances indexed in one transaction by :meth:`Archive.store_batch`.
INDEX_BATCH = 500

#: A batch item still on its way (replaced by its result before the batch returns).
_WAITING = StoreResult(StoreOutcome.REJECTED, reason="not stored")


class Archive:
    def __init__(self, index: Index, blobs: BlobStore) -> None:
        self.index = index
        self.blobs = blobs
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()

    def store(
        self, facility_id: int, data: bytes, origin: InstanceOrigin = InstanceOrigin.ACQUISITION
    ) -> StoreResult:
        """Keep one Part 10 instance. Returns only after it is durable (or refused).

        ``origin`` says who made it: objects the reading network makes never make a
        study look incomplete again (:func:`~telerad.domain.modalities.is_acquired_image`).
        """
        with self._in_flight_lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            return self._store(facility_id, data, origin, overlap=alone)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def store_batch(
        self,
        facility_id: int,
        items: Iterable[bytes],
        origin: InstanceOrigin = InstanceOrigin.ACQUISITION,
    ) -> list[StoreResult | Exception]:
        """Keep several Part 10 instances (one STOW-RS request). Returns only after
        each is durable or refused: per item its result, or the exception that
        stopped it (nothing of that item is kept). One failing item never blocks
        the others.

        Each item is written and checked as ``items`` hands it over, its fsync
        running while the next ones are (so the disk works on all of them at
        once and only one item need be in memory); once ``items`` ends and every
        blob is on disk under its name, they are indexed in transactions of up
        to ``INDEX_BATCH``. Should the index refuse a row of one (a re-send, a
        conflict), nothing of that transaction is kept and its instances are
        indexed one by one, as :meth:`store` does. An exception raised by
        ``items`` itself drops every item and is raised: nothing is kept.
        """
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            return self._store_batch(facility_id, items, origin)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def _stage(
        self, facility_id: int, data: bytes, origin: InstanceOrigin
    ) -> _Pending | StoreResult:
        """Write the bytes (their fsync starts) and read the header; a refusal as a result."""
        # Whatever came in the preamble (an executable header, say) is not kept.
        data = normalise_preamble(data)
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
        if origin is not InstanceOrigin.ACQUISITION:
            header = replace(header, origin=origin.value)
        return _Pending(self.blobs, staged, header)

    def _store(
        self, facility_id: int, data: bytes, origin: InstanceOrigin, overlap: bool
    ) -> StoreResult:
        pending = self._stage(facility_id, data, origin)
        if isinstance(pending, StoreResult):
            return pending
        # Then the index's unique SOP Instance UID decides: re-sends and conflicts
        # are rare, so checking before every write would cost more. Blob keys
        # include the content digest, so a conflicting object never lands on the
        # kept one's file, and an identical one lands on itself.
        #
        # The index rows are written while the blob's fsync is under way; the
        # index calls finish() (wait for the fsync, rename) before committing
        # them, so a committed row always points at a durable blob. Only for a
        # store on its own (one association sending): with others in flight
        # (a STOW-RS request, other associations) the index's writer would be
        # held across the fsync, so the blob is finished first, then indexed.
        try:
            digest = pending.staged.digest.result()
        except BaseException:
            self.blobs.discard(pending.staged)
            raise
        uid = pending.header.SOPInstanceUID
        blob = StoredObject(
            self.blobs.key_for(facility_id, uid, digest), pending.staged.size, digest
        )
        return self._index(facility_id, pending, blob, overlap)

    def _store_batch(
        self, facility_id: int, items: Iterable[bytes], origin: InstanceOrigin
    ) -> list[StoreResult | Exception]:
        results: list[StoreResult | Exception] = []
        staged: list[tuple[int, _Pending]] = []
        try:
            for data in items:
                try:
                    pending = self._stage(facility_id, data, origin)
                except Exception as exc:
                    results.append(exc)
                    continue
                if isinstance(pending, _Pending):
                    staged.append((len(results), pending))
                    results.append(_WAITING)
                else:
                    results.append(pending)
        except BaseException:
            for _, pending in staged:
                self.blobs.discard(pending.staged)
            raise
        # Durable: each fsync waited for, each blob renamed to its key.
        on_disk: list[tuple[int, _Pending, StoredObject]] = []
        for i, pending in staged:
            try:
                on_disk.append((i, pending, pending.finish()))
            except Exception as exc:
                self.blobs.discard(pending.staged)
                results[i] = exc
        for start in range(0, len(on_disk), INDEX_BATCH):
            self._index_batch(facility_id, on_disk[start : start + INDEX_BATCH], results)
        return results

    def _index_batch(
        self,
        facility_id: int,
        on_disk: list[tuple[int, _Pending, StoredObject]],
        results: list[StoreResult | Exception],
    ) -> None:
        try:
            together = self.index.add_instances(
                facility_id, [(pending.header, blob) for _, pending, blob in on_disk]
            )
        except Exception as exc:
            # Nothing half-written: the index did not commit, so drop the blobs.
            for i, pending, blob in on_disk:
                self._discard(blob.key, pending.header.SOPInstanceUID)
                results[i] = exc
            return
        for i, pending, blob in on_disk:
            if together:
                results[i] = StoreResult(StoreOutcome.STORED, **pending.ids)
                continue
            try:
                results[i] = self._index(facility_id, pending, blob, overlap=False)
            except Exception as exc:
                results[i] = exc

    def _index(
        self, facility_id: int, pending: _Pending, blob: StoredObject, overlap: bool
    ) -> StoreResult:
        """Index one instance whose blob is staged or already finished."""
        uid, ids = pending.header.SOPInstanceUID, pending.ids
        for attempt in range(3):
            before_commit = pending.finish_before_commit if attempt == 0 and overlap else None
            if before_commit is None:
                pending.finish()  # a committed row always points at a durable blob
            try:
                added = self.index.add_instance(facility_id, pending.header, blob, before_commit)
            except ConflictingHierarchy as exc:
                self._drop(pending)
                existing = self.index.find_instance(uid)
                if existing is not None:
                    # The SOP Instance UID is taken (perhaps by another facility's copy
                    # of this very file): answered as any taken UID is, so the answer
                    # never tells that the instance exists at another facility.
                    return self._already_there(existing, facility_id, blob.sha256, ids)
                return StoreResult(StoreOutcome.REJECTED, reason=str(exc), **ids)
            except Exception:
                # Nothing half-written: the index did not commit, so drop the blob.
                self._drop(pending)
                raise
            pending.finish()
            if added:
                return StoreResult(StoreOutcome.STORED, **ids)
            existing = self.index.find_instance(uid)
            if existing is not None:
                if existing.blob_key != blob.key:
                    self.blobs.delete(blob.key)
                return self._already_there(existing, facility_id, blob.sha256, ids)
            # Refused by a concurrent insert of the same new patient/study/series: retry.
        self.blobs.delete(blob.key)
        return StoreResult(StoreOutcome.REJECTED, reason="index busy: concurrent writes", **ids)

    def _drop(self, pending: _Pending) -> None:
        """Remove a blob the index refused: still staged, or already under its key."""
        if pending.finished is not None:
            self._discard(pending.finished.key, pending.header.SOPInstanceUID)
        else:
            self.blobs.discard(pending.staged)

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
