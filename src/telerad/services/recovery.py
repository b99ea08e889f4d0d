"""Crash recovery: the fsynced blobs are the durable record; the index catches up from them.

Every acknowledged instance has its blob fsynced (file and directory) before the
acknowledgement. The embedded SQLite index commits without syncing (WAL, NORMAL:
safe against a process crash, and as fast as Orthanc's own index), and a syncer
makes its WAL durable every few seconds, recording the moment in a marker. After
an unclean stop (power loss, kernel crash) the index may lack the last commits;
start-up then re-indexes every blob written since the last recorded sync, and
removes blobs the index never took (a refused conflict, an unacknowledged write).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from telerad.dicom.part10 import InvalidInstance, parse_instance
from telerad.domain.model import StoredObject
from telerad.services.ports import BlobStore, Index

log = logging.getLogger(__name__)

#: Blobs written this long before the last recorded sync are re-checked too
#: (clock granularity, a sync racing a write).
SLACK_SECONDS = 10.0


@dataclass
class RecoveryReport:
    checked: int = 0
    reindexed: int = 0
    removed: int = 0


def recover(
    index: Index, blobs: BlobStore, candidates: Iterable[tuple[str, int]]
) -> RecoveryReport:
    """Re-index candidate blobs (key, facility id) the index does not know."""
    report = RecoveryReport()
    for key, facility_id in candidates:
        report.checked += 1
        try:
            data = blobs.get(key)
            _ds, header = parse_instance(data)
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
    if report.reindexed or report.removed:
        log.warning(
            "recovery after an unclean stop: %d blobs checked, %d re-indexed, %d removed",
            report.checked,
            report.reindexed,
            report.removed,
        )
    return report
