"""Crash recovery: the fsynced blobs are the durable record; the index catches up from them.

Every acknowledged instance has its blob fsynced (file and directory) before the
acknowledgement. The embedded SQLite index commits without syncing (WAL, NORMAL:
safe against a process crash, and as fast as Orthanc's own index), and a syncer
makes its WAL durable every few seconds, recording the moment in a marker. After
an unclean stop (power loss, kernel crash) the index may lack the last commits;
start-up then re-indexes every blob written since the last recorded sync, and
removes blobs the index never took (a refused conflict, an unacknowledged write).
Directory entries are synced in batches too: a rename a crash lost leaves the
fsynced temporary file, which start-up moves into place.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from telerad.dicom.part10 import InvalidInstance, check_instance
from telerad.domain.model import StoredObject
from telerad.services.ports import BlobStore, Index, IntegrityError

log = logging.getLogger(__name__)

#: Blobs written this long before the last recorded sync are re-checked too
#: (clock granularity, a sync racing a write).
SLACK_SECONDS = 10.0


@dataclass
class RecoveryReport:
    checked: int = 0
    reindexed: int = 0
    removed: int = 0


def recover_incomplete(
    index: Index, blobs: BlobStore, incomplete: Iterable[tuple[Path, int]]
) -> RecoveryReport:
    """Put fsynced temporary files whose rename a crash lost in place (and index them);
    drop partial ones, which were never acknowledged."""
    report = RecoveryReport()
    for path, facility_id in incomplete:
        report.checked += 1
        try:
            data = blobs.read_staged(path, facility_id)
            header = check_instance(data)
        except (OSError, InvalidInstance, IntegrityError):
            path.unlink(missing_ok=True)
            report.removed += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        key = blobs.key_for(facility_id, header.SOPInstanceUID, digest)
        existing = index.find_instance(header.SOPInstanceUID)
        if existing is not None and (existing.blob_key != key or Path(blobs.path(key)).exists()):
            path.unlink(missing_ok=True)  # a refused conflict, or already in place
            report.removed += 1
            continue
        blobs.adopt(path, key)
        if existing is None:
            index.add_instance(facility_id, header, StoredObject(key, len(data), digest))
        report.reindexed += 1
    _log(report)
    return report


def _log(report: RecoveryReport) -> None:
    if report.reindexed or report.removed:
        log.warning(
            "recovery after an unclean stop: %d objects checked, %d restored, %d removed",
            report.checked,
            report.reindexed,
            report.removed,
        )


def recover(
    index: Index, blobs: BlobStore, candidates: Iterable[tuple[str, int]]
) -> RecoveryReport:
    """Re-index candidate blobs (key, facility id) the index does not know."""
    report = RecoveryReport()
    for key, facility_id in candidates:
        report.checked += 1
        try:
            data = blobs.get(key)
            header = check_instance(data)
        except (OSError, InvalidInstance):
            blobs.delete(key)  # a partial write was never acknowledged
            report.removed += 1
            continue
        existing = index.find_instance(header.SOPInstanceUID)
        if existing is not None:
            if existing.blob_key != key:
                blobs.delete(key)  # the object the index refused (a conflict)
                report.removed += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        stored = StoredObject(key=key, size=len(data), sha256=digest)
        if index.add_instance(facility_id, header, stored):
            report.reindexed += 1
    _log(report)
    return report
