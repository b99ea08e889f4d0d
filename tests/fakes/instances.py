"""Index rows without DICOM files: headers and stored objects for tests of the index
and of what reads it (reconciliation's states)."""

from __future__ import annotations

import hashlib
from typing import Any

from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from telerad.domain.model import InstanceHeader, StoredObject


def header(study: str, series: str, sop: str, **values: Any) -> InstanceHeader:
    """A CT instance of patient P1 unless ``values`` say otherwise."""
    fields: dict[str, Any] = {
        "SOPClassUID": CTImageStorage,
        "TransferSyntaxUID": ExplicitVRLittleEndian,
        "PatientID": "P1",
        "PatientName": "DOE^JANE",
        "Modality": "CT",
        "SeriesNumber": 1,
    }
    fields.update(values)
    return InstanceHeader(study, series, sop, **fields)


def blob(sop: str, facility_id: int = 1) -> StoredObject:
    digest = hashlib.sha256(sop.encode()).hexdigest()
    return StoredObject(f"{facility_id}/{digest[:2]}/{digest}.dcm", 100, digest)
