"""STOW-RS (PS3.18 10.5): a framed multipart body → stored instances and the response.

The parts are checked one by one and handed on to ``Archive.store_batch`` as
they are: each is copied out of the body, written and its fsync started before
the next one is even copied, and they are indexed together once every one is on
disk, while each part keeps its own outcome, so one bad part never blocks the
others. Failure Reason codes (PS3.18 Table 10.5.3-2 and PS3.4 B.2.3):

=========  ==============================================================
``0xC000`` Cannot understand: not DICOM, truncated, bad identifying UIDs,
           or a part whose Content-Type is not application/dicom
``0xA900`` Data Set does not match SOP Class: File Meta
           MediaStorageSOPClassUID differs from the dataset's SOPClassUID
``0xA901`` (A9xx range) StudyInstanceUID differs from the study in the URL
``0x0111`` Duplicate SOP Instance: a different object already holds this UID
``0x0110`` Processing failure: hierarchy conflict (the study or series
           belongs elsewhere) or an unexpected error while storing
``0xA700`` Refused, out of resources: the disk could not take the object
=========  ==============================================================

The response is 200 when every part was stored, 202 when some were, 409 when
none was, and 507 (Insufficient Storage) when none was and some failed for want
of space.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydicom import dcmread

from telerad.adapters.dicomweb.dicomjson import instance_path, store_response
from telerad.adapters.dicomweb.multipart import Buffer, MediaType, MultipartError, Part
from telerad.dicom import pixelscan
from telerad.dicom.part10 import normalise_preamble
from telerad.domain.model import StoreOutcome, StoreResult
from telerad.services.archive import out_of_space

log = logging.getLogger(__name__)

CANNOT_UNDERSTAND = 0xC000
SOP_CLASS_MISMATCH = 0xA900
STUDY_MISMATCH = 0xA901
DUPLICATE_SOP_INSTANCE = 0x0111
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700


class UnsupportedMediaType(ValueError):
    """A request body STOW-RS does not take (HTTP 415)."""


def boundary_of(content_type: MediaType) -> str:
    """Check the request's Content-Type and return its boundary."""
    if content_type.type != "multipart/related":
        raise UnsupportedMediaType(
            f'STOW-RS takes multipart/related; type="application/dicom", not {content_type.type}'
        )
    part_type = content_type.params.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        raise UnsupportedMediaType(
            f"only application/dicom parts are accepted (type={part_type} is not supported)"
        )
    boundary = content_type.params.get("boundary")
    if not boundary:
        raise MultipartError("the multipart/related Content-Type has no boundary parameter")
    return boundary


@dataclass
class StowResult:
    status: int
    body: bytes
    stored: int
    failed: int


#: Stores Part 10 objects as it takes them: per object its result or what stopped it.
StoreBatch = Callable[[Iterable[bytes]], list[StoreResult | Exception]]


_MEDIA_CLASS, _SOP_CLASS, _STUDY = 0x00020002, 0x00080016, 0x0020000D
_CHECKED = frozenset({_MEDIA_CLASS, _SOP_CLASS, _STUDY})


def _precheck(data: bytes, study: str | None) -> tuple[int, str] | None:
    """A failure (reason code, text) found before storing, or None to go ahead.

    A header walk reads the three UIDs in microseconds; pydicom is the fallback.
    """
    values = pixelscan.text_values(data, _CHECKED)
    if values is None:
        try:
            ds = dcmread(
                io.BytesIO(data),
                stop_before_pixels=True,
                specific_tags=["SOPClassUID", "StudyInstanceUID"],
            )
        except Exception as exc:
            return CANNOT_UNDERSTAND, f"not a readable DICOM Part 10 object: {exc}"[:300]
        values = {
            _MEDIA_CLASS: str(ds.file_meta.get("MediaStorageSOPClassUID", "") or ""),
            _SOP_CLASS: str(ds.get("SOPClassUID", "") or ""),
            _STUDY: str(ds.get("StudyInstanceUID", "") or ""),
        }
    meta_class = values.get(_MEDIA_CLASS, "").rstrip("\0 ")
    ds_class = values.get(_SOP_CLASS, "").rstrip("\0 ")
    if meta_class and ds_class and meta_class != ds_class:
        return SOP_CLASS_MISMATCH, "MediaStorageSOPClassUID does not match SOPClassUID"
    if study is not None and values.get(_STUDY, "").rstrip("\0 ") != study:
        return STUDY_MISMATCH, "StudyInstanceUID differs from the study in the request URL"
    return None


def _checked(
    body: Buffer, part: Part, number: int, study: str | None
) -> tuple[dict[str, Any] | None, bytes]:
    """(a failure entry, b"") for a part refused before storing, else (None, its bytes)."""
    content_type = (part.content_type or "application/dicom").split(";")[0].strip().lower()
    if content_type != "application/dicom":
        reason = f"part {number}: Content-Type {content_type} is not application/dicom"
        return {"failure_reason": CANNOT_UNDERSTAND, "reason": reason}, b""
    if len(part) == 0:
        return {"failure_reason": CANNOT_UNDERSTAND, "reason": f"part {number} is empty"}, b""
    with memoryview(body) as view:  # one copy of the part, whatever holds the body
        # File Meta without a preamble (dicomweb-client writes a plain Dataset so)
        # gets one; a preamble that holds anything is zeroed.
        data = normalise_preamble(bytes(view[part.start : part.end]))
    failure = _precheck(data, study)
    if failure is not None:
        entry = {
            **_identifiers(data),
            "failure_reason": failure[0],
            "reason": f"part {number}: {failure[1]}",
        }
        return entry, b""
    return None, data


def _outcome(result: StoreResult | Exception, number: int) -> dict[str, Any]:
    """The response entry of a part the archive was given."""
    if isinstance(result, Exception) and out_of_space(result):
        log.error("STOW-RS: part %d not stored: out of storage space", number)
        reason = f"part {number}: not stored, the archive is out of storage space"
        return {"failure_reason": OUT_OF_RESOURCES, "reason": reason}
    if isinstance(result, OSError):
        log.error("STOW-RS: storing part %d failed", number, exc_info=result)
        return {
            "failure_reason": PROCESSING_FAILURE,
            "reason": f"part {number}: could not be written",
        }
    if isinstance(result, Exception):
        log.error("STOW-RS: storing part %d failed", number, exc_info=result)
        return {
            "failure_reason": PROCESSING_FAILURE,
            "reason": f"part {number}: processing failure",
        }
    ids: dict[str, Any] = {
        "sop_class_uid": result.sop_class_uid,
        "sop_instance_uid": result.sop_instance_uid,
        "study_instance_uid": result.study_instance_uid,
        "series_instance_uid": result.series_instance_uid,
    }
    if result.ok:
        return ids
    if result.outcome is StoreOutcome.CONFLICT:
        code = DUPLICATE_SOP_INSTANCE
    elif result.sop_instance_uid is None:
        code = CANNOT_UNDERSTAND
    else:
        code = PROCESSING_FAILURE
    return {**ids, "failure_reason": code, "reason": f"part {number}: {result.reason}"}


def _identifiers(data: bytes) -> dict[str, str]:
    """SOP Class/Instance UIDs of a refused part, when they can be read at all."""
    try:
        ds = dcmread(
            io.BytesIO(data),
            stop_before_pixels=True,
            specific_tags=["SOPClassUID", "SOPInstanceUID"],
        )
        return {
            "sop_class_uid": str(ds.get("SOPClassUID", "") or ""),
            "sop_instance_uid": str(ds.get("SOPInstanceUID", "") or ""),
        }
    except Exception:
        return {}


def store_parts(
    store: StoreBatch, body: Buffer, parts: list[Part], study: str | None, base: str
) -> StowResult:
    """Store every part (results in part order) and build the response."""
    if not parts:
        raise MultipartError("the multipart body contains no parts")
    entries: dict[int, dict[str, Any]] = {}
    taken: list[int] = []  # numbers of the parts handed to the archive, in order

    def checked() -> Iterator[bytes]:
        # Lazily: a part is copied only when the archive takes it, so one at a time.
        for number, part in enumerate(parts, start=1):
            refused, data = _checked(body, part, number, study)
            if refused is not None:
                entries[number] = refused
                continue
            taken.append(number)
            yield data

    outcomes = store(checked())
    for number, outcome in zip(taken, outcomes, strict=True):
        entries[number] = _outcome(outcome, number)
    results = [entries[number] for number in sorted(entries)]
    referenced, failed = [], []
    studies = set()
    for entry in results:
        if "failure_reason" in entry:
            failed.append(entry)
            continue
        entry["retrieve_url"] = (
            base
            + "/"
            + instance_path(
                entry["study_instance_uid"], entry["series_instance_uid"], entry["sop_instance_uid"]
            )
        )
        studies.add(entry["study_instance_uid"])
        referenced.append(entry)
    only_study = study or (next(iter(studies)) if len(studies) == 1 else None)
    study_url = f"{base}/studies/{only_study}" if only_study and referenced else None
    status = 200 if not failed else (202 if referenced else 409)
    if status == 409 and any(entry["failure_reason"] == OUT_OF_RESOURCES for entry in failed):
        status = 507  # nothing stored, for want of space: worth sending again later
    return StowResult(
        status, store_response(referenced, failed, study_url), len(referenced), len(failed)
    )
