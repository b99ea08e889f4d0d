"""C-STORE SCP: the received dataset is kept as it came, wrapped in Part 10 and archived.

The handler never decodes the dataset: it reads only the identifying UIDs at
its head to check them against the command, wraps the bytes with
:func:`~telerad.dicom.part10.build_part10` and hands them to
:meth:`Archive.store <telerad.services.archive.Archive.store>`, which returns
only once the object is durable. Success is answered after that, never before.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from telerad.adapters.dimse.status import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    DUPLICATE_SOP_INSTANCE,
    OUT_OF_RESOURCES,
    SUCCESS,
    failure,
)
from telerad.bootstrap import Platform
from telerad.dicom.part10 import build_part10
from telerad.domain.model import StoreOutcome
from telerad.domain.uids import is_valid_uid

log = logging.getLogger(__name__)

SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018


@dataclass(frozen=True)
class Identity:
    sop_class_uid: str | None
    sop_instance_uid: str | None


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).rstrip("\x00 ")
    return text or None


def peek_identity(dataset_bytes: bytes, transfer_syntax: str) -> Identity:
    """SOP Class and Instance UIDs from the head of an encoded dataset (nothing else is read)."""
    ts = UID(transfer_syntax)
    if ts.is_deflated:
        # Only the head is needed: inflate a few KiB at most.
        head = zlib.decompressobj(-zlib.MAX_WBITS).decompress(dataset_bytes, 65536)
        stream = BytesIO(head)
    else:
        stream = BytesIO(dataset_bytes)
    ds = read_dataset(
        stream,
        ts.is_implicit_VR,
        ts.is_little_endian,
        stop_when=lambda tag, vr, length: tag > SOP_INSTANCE_UID,
    )
    sop_class = ds.get(SOP_CLASS_UID)
    sop_instance = ds.get(SOP_INSTANCE_UID)
    return Identity(
        _clean(sop_class.value if sop_class is not None else None),
        _clean(sop_instance.value if sop_instance is not None else None),
    )


class StoreSCP:
    """EVT_C_STORE handler bound to a platform."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def facility_id(self, assoc: Any) -> int:
        """The facility an association stores for, looked up once per association."""
        cached = getattr(assoc, "_telerad_facility_id", None)
        if cached is None:
            cached = self.platform.facility_for_ae(assoc.requestor.ae_title).id
            assoc._telerad_facility_id = cached
        return int(cached)

    def __call__(self, event: Any) -> int | Dataset:
        try:
            return self._store(event)
        except Exception as exc:  # never let an unexpected error look like success
            log.error("C-STORE failed unexpectedly: %s", type(exc).__name__)
            return failure(OUT_OF_RESOURCES, "the archive could not store the instance")

    def _store(self, event: Any) -> int | Dataset:
        request = event.request
        sop_class = _clean(request.AffectedSOPClassUID) or ""
        sop_instance = _clean(request.AffectedSOPInstanceUID) or ""
        if not is_valid_uid(sop_class):
            return failure(CANNOT_UNDERSTAND, "Affected SOP Class UID is not a valid UID")
        if not is_valid_uid(sop_instance):
            return failure(CANNOT_UNDERSTAND, "Affected SOP Instance UID is not a valid UID")
        transfer_syntax = str(event.context.transfer_syntax)
        data = request.DataSet.getvalue()
        if not data:
            return failure(CANNOT_UNDERSTAND, "the C-STORE request has no dataset")
        try:
            identity = peek_identity(data, transfer_syntax)
        except Exception:
            return failure(CANNOT_UNDERSTAND, "the dataset cannot be parsed")
        if identity.sop_class_uid is None:
            return failure(CANNOT_UNDERSTAND, "the dataset has no SOP Class UID")
        if identity.sop_class_uid != sop_class:
            return failure(
                DATASET_DOES_NOT_MATCH_SOP_CLASS,
                "dataset SOP Class UID differs from Affected SOP Class UID",
            )
        if identity.sop_instance_uid != sop_instance:
            return failure(
                CANNOT_UNDERSTAND, "dataset SOP Instance UID differs from the affected one"
            )
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        part10 = build_part10(data, transfer_syntax, sop_class, sop_instance, calling_ae)
        result = self.platform.archive.store(self.facility_id(event.assoc), part10)
        if result.ok:
            return SUCCESS
        if result.outcome is StoreOutcome.CONFLICT:
            return failure(
                DUPLICATE_SOP_INSTANCE, "another object is stored under this SOP Instance UID"
            )
        # REJECTED: the reason says what is wrong with the object, never its values.
        log.info("C-STORE refused from %s: %s", calling_ae, result.reason.split(":")[0][:80])
        return failure(CANNOT_UNDERSTAND, result.reason or "the instance was refused")
