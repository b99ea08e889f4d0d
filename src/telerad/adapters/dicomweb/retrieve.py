"""WADO-RS and WADO-URI retrieval (PS3.18 8.3 and 9): read, transcode, render.

Which instances a request names, within the caller's scope, is the study use
case's (:meth:`~telerad.services.studies.Studies.locate`). Blobs are always read
through ``Archive.read`` (SHA-256 verified). Functions return content (bytes, or
parts as ``(content type, bytes)``) and raise the exceptions below; the HTTP
layer maps them to status codes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from telerad.adapters.dicomweb.dicomjson import absolutise, instance_metadata
from telerad.adapters.dicomweb.negotiation import (
    AS_STORED,
    FRAME_MEDIA_TYPES,
    FrameChoice,
    NotAcceptable,
    frame_media_type,
)
from telerad.adapters.dicomweb.qido import check_path_uid
from telerad.dicom import transcode as tx
from telerad.dicom.render import RenderOptions, render_frame
from telerad.domain.model import InstanceLocation
from telerad.services.archive import Archive
from telerad.services.ports import Index
from telerad.services.studies import NotFound as NotFound  # raised here too: one 404

log = logging.getLogger(__name__)

Part = tuple[str, bytes]


def check_resource(study: str, series: str | None = None, sop: str | None = None) -> None:
    """The UIDs of a resource's path are UIDs (QueryError, HTTP 400, otherwise); finding
    it, within the caller's scope, is :meth:`~telerad.services.studies.Studies.locate`."""
    check_path_uid("StudyInstanceUID", study)
    if series is not None:
        check_path_uid("SeriesInstanceUID", series)
    if sop is not None:
        check_path_uid("SOPInstanceUID", sop)


# -- instances ---------------------------------------------------------------------
def _instance(archive: Archive, loc: InstanceLocation, syntaxes: Sequence[str]) -> Part:
    data = archive.read(loc)
    stored = loc.transfer_syntax_uid
    for ts in syntaxes:
        if ts in (AS_STORED, stored):
            return f"application/dicom; transfer-syntax={stored}", data
    reasons = []
    for ts in syntaxes:
        try:
            out, actual = tx.transcode(data, ts)
            return f"application/dicom; transfer-syntax={actual}", out
        except tx.TranscodeError as exc:
            reasons.append(str(exc))
    raise NotAcceptable("; ".join(reasons) or "no acceptable transfer syntax")


def instance_parts(
    archive: Archive, locations: Sequence[InstanceLocation], syntaxes: Sequence[str]
) -> Iterator[Part]:
    """The instances as parts. The first is prepared before this returns, so a 406
    can still be sent; a later instance that cannot be transcoded is sent as stored
    (its part's Content-Type names the syntax it is in)."""
    first = _instance(archive, locations[0], syntaxes)

    def rest() -> Iterator[Part]:
        yield first
        for loc in locations[1:]:
            try:
                yield _instance(archive, loc, syntaxes)
            except NotAcceptable:
                log.info("WADO-RS: sending an instance as stored (cannot transcode it)")
                yield _instance(archive, loc, [AS_STORED])

    return rest()


# -- metadata ----------------------------------------------------------------------
def metadata(
    archive: Archive, index: Index, locations: Sequence[InstanceLocation], base: str
) -> bytes:
    """DICOM JSON of the instances, from the cache; missing ones are built and cached."""
    uids = [loc.sop_instance_uid for loc in locations]
    cached = index.get_metadata(uids)
    missing = [loc for loc in locations if loc.sop_instance_uid not in cached]
    if missing:
        built = {}
        for loc in missing:
            ds = tx.read_dataset(archive.read(loc))
            built[loc.sop_instance_uid] = instance_metadata(
                ds,
                loc.study_instance_uid,
                loc.series_instance_uid,
                loc.sop_instance_uid,
                loc.transfer_syntax_uid,
            )
        index.put_metadata(built)
        cached.update(built)
    return absolutise((cached[uid] for uid in uids), base)


# -- frames ------------------------------------------------------------------------
def parse_frame_list(text: str) -> list[int]:
    """``1,3,5`` → [1, 3, 5] (1-based, PS3.18 8.3.3.1); ValueError with a reason."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"frame numbers are positive integers separated by commas: '{text}'")
        numbers.append(int(item))
    if not numbers:
        raise ValueError("no frame numbers given")
    return numbers


def open_frames(archive: Archive, loc: InstanceLocation) -> tx.FrameSource:
    try:
        return tx.FrameSource(archive.read(loc))
    except tx.NoPixelData as exc:
        raise NotFound(f"instance {loc.sop_instance_uid} has no pixel data") from exc


def _frame(source: tx.FrameSource, index: int, choices: Sequence[FrameChoice]) -> Part:
    stored = source.transfer_syntax
    native = stored in tx.NATIVE
    shown = tx.EXPLICIT_LE if native else stored  # native frames go out little endian
    reasons = []
    for choice in choices:
        media, ts = choice.media_type, choice.transfer_syntax
        if media in ("*/*", "image/*"):
            if ts in (AS_STORED, stored):
                if media == "image/*" and native:
                    continue  # native pixels are not an image/* type
                return f"{frame_media_type(shown)}; transfer-syntax={shown}", source.stored(index)
            media = frame_media_type(ts)
        elif ts == AS_STORED:
            # octet-stream with transfer-syntax=* carries any stored frame, labelled
            # with its syntax (what OHIF asks for); an image type only its own syntaxes.
            if media == "application/octet-stream" or stored in FRAME_MEDIA_TYPES[media][1]:
                return f"{media}; transfer-syntax={shown}", source.stored(index)
            continue
        try:
            return f"{media}; transfer-syntax={ts}", source.encoded(index, ts)
        except tx.TranscodeError as exc:
            reasons.append(str(exc))
    raise NotAcceptable(
        "; ".join(reasons)
        or "the frames are not available in the "
        f"requested media types (they are stored as {stored})"
    )


def frame_parts(
    source: tx.FrameSource, numbers: Sequence[int], choices: Sequence[FrameChoice]
) -> list[Part]:
    for number in numbers:
        if not 1 <= number <= source.count:
            raise NotFound(f"frame {number} does not exist (the instance has {source.count})")
    return [_frame(source, n - 1, choices) for n in numbers]


# -- bulk data ---------------------------------------------------------------------
def bulk_value(source_data: bytes, path: str) -> bytes:
    """The value at ``TAG[/ITEM/TAG…]`` (a BulkDataURI path we emitted)."""
    ds = tx.read_dataset(source_data)
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments or len(segments) % 2 == 0:
        raise NotFound(f"no bulk data at {path}")
    current = ds
    try:
        for i in range(0, len(segments) - 1, 2):
            seq = current[int(segments[i], 16)].value
            current = seq[int(segments[i + 1])]
        value = current[int(segments[-1], 16)].value
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise NotFound(f"no bulk data at {path}") from exc
    if not isinstance(value, (bytes, bytearray)):
        raise NotFound(f"{path} is not a binary value")
    return bytes(value)


# -- rendered ----------------------------------------------------------------------
def render_instance(
    archive: Archive, loc: InstanceLocation, options: RenderOptions, frame: int | None = None
) -> bytes:
    source = open_frames(archive, loc)
    if frame is None:
        index = 0
    else:
        if not 1 <= frame <= source.count:
            raise NotFound(f"frame {frame} does not exist (the instance has {source.count})")
        index = frame - 1
    return render_frame(source, index, options)


def representative(locations: Sequence[InstanceLocation]) -> InstanceLocation:
    """The instance a thumbnail of a series/study shows: the middle one of the first series."""
    first_series = locations[0].series_instance_uid
    members = [loc for loc in locations if loc.series_instance_uid == first_series]
    return members[len(members) // 2]


def thumbnail_frame(loc: InstanceLocation) -> int:
    frames = loc.number_of_frames or 1
    return frames // 2 + 1 if frames > 1 else 1
