"""C-MOVE and C-GET SCPs: stored instances go out as they were stored.

Each match travels as a :class:`RawInstance`: its Part 10 bytes are read
(and verified) through the archive only when its sub-operation runs, and the
dataset part is sent unchanged under a presentation context for its own
transfer syntax. Only when the peer accepted no such context is a copy
converted (decompressed if need be) to an uncompressed transfer syntax it did
accept; the stored object is never altered.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import build_context
from pynetdicom.dsutils import encode

from telerad.adapters.dimse.contexts import VERIFICATION, sending_contexts
from telerad.adapters.dimse.find import IdentifierError, query_level
from telerad.adapters.dimse.gate import actor_of
from telerad.adapters.dimse.scope import facility_scope, scope_of
from telerad.adapters.dimse.status import (
    CANCEL,
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
    OUT_OF_RESOURCES,
    PENDING,
    failure,
)
from telerad.domain.model import InstanceLocation, Level
from telerad.services.platform import Platform

log = logging.getLogger(__name__)

#: Uncompressed syntaxes a converted copy may be sent in, most preferred first.
#: Big endian only when the original is big endian (no pixel byte swapping here).
CONVERSION_TARGETS = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
)

UNIQUE_KEY = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}


class CannotSend(RuntimeError):
    """No accepted presentation context can carry the instance."""


def split_part10(data: bytes) -> tuple[str, int]:
    """(Transfer Syntax UID, offset of the dataset) of Part 10 bytes, read from the meta group."""
    offset = 132 if data[128:132] == b"DICM" else 0
    ts = None
    while offset + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            break
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<L", data, offset + 8)
            value_at = offset + 12
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            value_at = offset + 8
        if element == 0x0010:
            ts = data[value_at : value_at + length].rstrip(b"\x00 ").decode("ascii")
        offset = value_at + length
    if ts is None:
        raise ValueError("no Transfer Syntax UID in the File Meta Information")
    return ts, offset


def _convert(data: bytes, target: str) -> bytes:
    """A copy of the dataset encoded in an uncompressed ``target`` transfer syntax."""
    ds = dcmread(BytesIO(data))
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        # Same image, so the same SOP Instance UID (pydicom would make a new one).
        ds.decompress(generate_instance_uid=False)
    tsu = UID(target)
    encoded = encode(ds, tsu.is_implicit_VR, tsu.is_little_endian, tsu.is_deflated)
    if encoded is None:
        raise CannotSend("the instance could not be re-encoded")
    return encoded


class RawInstance(Dataset):
    """A stored instance as a C-STORE sub-operation: sent from its bytes, decoded only to convert.

    It is a :class:`~pydicom.dataset.Dataset` (holding only SOP Instance UID)
    because pynetdicom's C-GET/C-MOVE SCPs expect one; the tuned association
    calls :meth:`send_over` instead of encoding it.
    """

    def __init__(
        self, location: InstanceLocation, read: Callable[[InstanceLocation], bytes]
    ) -> None:
        super().__init__()
        self.SOPInstanceUID = location.sop_instance_uid
        self.location = location
        self.reader = read

    def send_over(
        self,
        assoc: Any,
        msg_id: int = 1,
        priority: int = 2,
        originator_aet: str | None = None,
        originator_id: int | None = None,
    ) -> Dataset:
        loc = self.location
        data = self.reader(loc)
        stored_ts, offset = split_part10(data)
        context_id, payload = self._payload(assoc, data, stored_ts, offset)
        return assoc.send_c_store_bytes(  # type: ignore[no-any-return]
            context_id,
            loc.sop_class_uid,
            loc.sop_instance_uid,
            payload,
            msg_id=msg_id,
            priority=priority,
            originator_aet=originator_aet,
            originator_id=originator_id,
        )

    def _payload(self, assoc: Any, data: bytes, stored_ts: str, offset: int) -> tuple[int, bytes]:
        sop_class = self.location.sop_class_uid
        accepted: dict[str, int] = {}
        for cx in assoc.accepted_contexts:
            if cx.abstract_syntax == sop_class and cx.as_scu:
                accepted.setdefault(str(cx.transfer_syntax[0]), cx.context_id)
        if stored_ts in accepted:
            return accepted[stored_ts], data[offset:]
        targets = CONVERSION_TARGETS + (
            (ExplicitVRBigEndian,) if stored_ts == ExplicitVRBigEndian else ()
        )
        for target in targets:
            if target in accepted:
                return accepted[target], _convert(data, target)
        raise CannotSend("the peer accepted no presentation context for this SOP class")


def retrieve_keys(identifier: Dataset, model: str) -> tuple[Level, list[str], dict[str, set[str]]]:
    """(level, unique key values, higher-level UID filters) of a C-MOVE/C-GET identifier."""
    level = query_level(identifier, model)
    keyword = UNIQUE_KEY[level]
    values = _values(identifier.get(keyword))
    if not values:
        raise IdentifierError(f"{keyword} is required at the {level} level")
    filters: dict[str, set[str]] = {}
    for upper in (Level.STUDY, Level.SERIES):
        upper_key = UNIQUE_KEY[upper]
        if upper_key != keyword:
            found = _values(identifier.get(upper_key))
            if found and list(Level).index(upper) < list(Level).index(level):
                filters[upper_key] = set(found)
    return level, values, filters


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    items = (
        value
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"
        else str(value).split("\\")
    )
    return [str(v).strip() for v in items if str(v).strip()]


def locate(platform: Platform, event: Any) -> list[InstanceLocation]:
    """The instances a C-MOVE/C-GET asks for, within the requester's facility scope."""
    identifier = event.identifier
    level, values, filters = retrieve_keys(identifier, str(event.request.AffectedSOPClassUID))
    studies, series = filters.get("StudyInstanceUID"), filters.get("SeriesInstanceUID")
    return platform.studies.retrieve(
        actor_of(event.assoc),
        scope_of(platform, event.assoc),
        level,
        values,
        frozenset(studies) if studies is not None else None,
        frozenset(series) if series is not None else None,
    )


def _sub_operations(
    event: Any, platform: Platform, found: list[InstanceLocation]
) -> Iterator[tuple[Any, Dataset | None]]:
    for location in found:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, RawInstance(location, platform.archive.read)


def _bad_request(exc: Exception) -> Dataset:
    if isinstance(exc, IdentifierError):
        return failure(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc))
    log.error("retrieve failed: %s", type(exc).__name__)
    return failure(OUT_OF_RESOURCES, "the archive could not find the instances")


def handle_get(event: Any, platform: Platform) -> Iterator[Any]:
    """EVT_C_GET handler: number of sub-operations, then one pending yield per instance."""
    try:
        found = locate(platform, event)
    except Exception as exc:
        # pynetdicom wants a count first; one "sub-operation" that fails with the reason.
        yield 1
        yield _bad_request(exc), None
        return
    yield len(found)
    yield from _sub_operations(event, platform, found)


def handle_move(event: Any, platform: Platform) -> Iterator[Any]:
    """EVT_C_MOVE handler: destination, number of sub-operations, then the instances."""
    destination = str(event.move_destination).strip()
    node = platform.index.node_by_ae(destination)
    scope = facility_scope(platform, event.assoc)
    if node is not None and not (
        node.facility_id is None or scope is None or node.facility_id in scope
    ):
        node = None  # another facility's node: its data must not go there
    if node is None:
        log.info("C-MOVE to an unregistered destination refused")
        yield None, None  # pynetdicom answers 0xA801 Move Destination unknown
        return
    try:
        found = locate(platform, event)
        error: Exception | None = None
    except Exception as exc:
        found, error = [], exc
    pairs = [(loc.sop_class_uid, loc.transfer_syntax_uid) for loc in found]
    # With nothing to send pynetdicom opens no association; the contexts then only matter
    # for the failure case, where any context will do.
    contexts = sending_contexts(pairs) if pairs else [build_context(VERIFICATION)]
    yield node.host, node.port, {"contexts": contexts}
    if error is not None:
        yield 1
        yield _bad_request(error), None
        return
    yield len(found)
    yield from _sub_operations(event, platform, found)
