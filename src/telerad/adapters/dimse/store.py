"""C-STORE SCP: the received dataset is kept as it came, wrapped in Part 10 and archived.

The handler never decodes the dataset: it reads only the identifying UIDs at
its head to check them against the command, wraps the bytes with
:func:`~telerad.dicom.part10.build_part10` and hands them to
:meth:`Archive.store <telerad.services.archive.Archive.store>`, which returns
only once the object is durable. Success is answered after that, never before.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from telerad.adapters.dimse.gate import actor_of, peer_of
from telerad.adapters.dimse.status import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    DUPLICATE_SOP_INSTANCE,
    OUT_OF_RESOURCES,
    SUCCESS,
    failure,
)
from telerad.dicom.part10 import build_part10
from telerad.domain.modalities import InstanceOrigin
from telerad.domain.model import StoreOutcome
from telerad.domain.uids import is_valid_uid
from telerad.services.archive import out_of_space
from telerad.services.platform import Platform

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


#: Explicit VR with a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


class _NeedsPydicom(Exception):
    """The head of the dataset is not plain enough to scan by hand."""


def _scan_little_endian(data: bytes, implicit: bool) -> dict[int, bytes]:
    """Raw values of SOP Class/Instance UID, reading only the elements before them."""
    found: dict[int, bytes] = {}
    offset, end = 0, len(data)
    while offset + 8 <= end:
        group, element = struct.unpack_from("<HH", data, offset)
        tag = (group << 16) | element
        if tag > SOP_INSTANCE_UID:
            break
        if implicit:
            (length,) = struct.unpack_from("<L", data, offset + 4)
            offset += 8
        else:
            vr = data[offset + 4 : offset + 6]
            if vr in _LONG_VRS:
                (length,) = struct.unpack_from("<L", data, offset + 8)
                offset += 12
            else:
                (length,) = struct.unpack_from("<H", data, offset + 6)
                offset += 8
        if length == 0xFFFFFFFF:  # a sequence of undefined length before the UIDs
            raise _NeedsPydicom
        if tag in (SOP_CLASS_UID, SOP_INSTANCE_UID):
            found[tag] = data[offset : offset + length]
        offset += length
    return found


def _with_pydicom(data: bytes, ts: UID) -> dict[int, Any]:
    ds = read_dataset(
        BytesIO(data),
        ts.is_implicit_VR,
        ts.is_little_endian,
        stop_when=lambda tag, vr, length: tag > SOP_INSTANCE_UID,
    )
    return {tag: ds[tag].value for tag in (SOP_CLASS_UID, SOP_INSTANCE_UID) if tag in ds}


def peek_identity(dataset_bytes: bytes, transfer_syntax: str) -> Identity:
    """SOP Class and Instance UIDs from the head of an encoded dataset (nothing else is read)."""
    ts = UID(transfer_syntax)
    data = dataset_bytes
    if ts.is_deflated:
        # Only the head is needed: inflate a few KiB at most.
        data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(dataset_bytes, 65536)
    values: dict[int, Any]
    try:
        if not ts.is_little_endian:
            raise _NeedsPydicom
        raw = _scan_little_endian(data, ts.is_implicit_VR)
        values = {tag: value.decode("ascii") for tag, value in raw.items()}
    except (_NeedsPydicom, UnicodeDecodeError):
        values = _with_pydicom(data, ts)
    return Identity(_clean(values.get(SOP_CLASS_UID)), _clean(values.get(SOP_INSTANCE_UID)))


class StoreSCP:
    """EVT_C_STORE handler bound to a platform."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def facility_id(self, assoc: Any) -> int:
        """The facility an association stores for, looked up once per association."""
        cached = getattr(assoc, "_telerad_facility_id", None)
        if cached is None:  # set by the gate at association; decided the same way otherwise
            cached = peer_of(self.platform, assoc).store_facility_id
            assoc._telerad_facility_id = cached
        return int(cached)

    def origin(self, assoc: Any) -> InstanceOrigin:
        """A network node (scope: every facility) is the reading network's own: its
        objects (an AI engine's results) never reopen a study."""
        cached = getattr(assoc, "_telerad_origin", None)
        if cached is None:
            scope = peer_of(self.platform, assoc).scope
            cached = InstanceOrigin.READING if scope is None else InstanceOrigin.ACQUISITION
            assoc._telerad_origin = cached
        return InstanceOrigin(cached)

    def __call__(self, event: Any) -> int | Dataset:
        try:
            return self._store(event)
        except Exception as exc:  # never let an unexpected error look like success
            if out_of_space(exc):
                log.error("C-STORE refused: the archive is out of storage space")
                return failure(
                    OUT_OF_RESOURCES, "out of storage space: the instance was not stored"
                )
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
        facility_id = self.facility_id(event.assoc)
        actor, origin = actor_of(event.assoc), self.origin(event.assoc)
        result = self.platform.studies.receive(actor, facility_id, part10, origin)
        if result.ok:
            return SUCCESS
        if result.outcome is StoreOutcome.CONFLICT:
            return failure(
                DUPLICATE_SOP_INSTANCE, "another object is stored under this SOP Instance UID"
            )
        # REJECTED: the reason says what is wrong with the object, never its values.
        log.info("C-STORE refused from %s: %s", calling_ae, result.reason.split(":")[0][:80])
        return failure(CANNOT_UNDERSTAND, result.reason or "the instance was refused")
