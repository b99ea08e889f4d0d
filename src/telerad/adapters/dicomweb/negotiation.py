"""Content negotiation for WADO-RS (PS3.18 8.7): Accept header → what to send.

Pure: the tables of media types and transfer syntaxes (PS3.18 Tables 8.7.3-2,
8.7.3-5) and the choice among the client's acceptable representations. Whether
a particular instance can be transcoded is the codec layer's question; this
module returns the client's choices in order of preference.
"""

from __future__ import annotations

from dataclasses import dataclass

from telerad.adapters.dicomweb.multipart import MediaType, MultipartError, parse_accept
from telerad.dicom import transcode as tx

#: ``transfer-syntax=*``: the instance or frame as it is stored.
AS_STORED = "*"

#: Media types of single-frame pixel data (PS3.18 Table 8.7.3-5) and their default syntax.
FRAME_MEDIA_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "application/octet-stream": (tx.EXPLICIT_LE, (tx.EXPLICIT_LE,)),
    "image/jpeg": (
        tx.JPEG_BASELINE,
        (tx.JPEG_BASELINE, tx.JPEG_EXTENDED, tx.JPEG_LOSSLESS, tx.JPEG_LOSSLESS_SV1),
    ),
    "image/dicom-rle": (tx.RLE, (tx.RLE,)),
    "image/x-dicom-rle": (tx.RLE, (tx.RLE,)),
    "image/jls": (tx.JPEG_LS_LOSSLESS, (tx.JPEG_LS_LOSSLESS, tx.JPEG_LS_NEAR)),
    "image/x-jls": (tx.JPEG_LS_LOSSLESS, (tx.JPEG_LS_LOSSLESS, tx.JPEG_LS_NEAR)),
    "image/jp2": (tx.J2K_LOSSLESS, (tx.J2K_LOSSLESS, tx.J2K)),
    "image/jpx": (tx.J2K_PART2_LOSSLESS, (tx.J2K_PART2_LOSSLESS, tx.J2K_PART2)),
    "image/jphc": (tx.HTJ2K_LOSSLESS, (tx.HTJ2K_LOSSLESS, tx.HTJ2K_LOSSLESS_RPCL, tx.HTJ2K)),
}


def frame_media_type(transfer_syntax: str) -> str:
    """The natural media type of a frame in this transfer syntax (native: octet-stream)."""
    for media_type, (_default, syntaxes) in FRAME_MEDIA_TYPES.items():
        if transfer_syntax in syntaxes and not media_type.startswith("image/x-"):
            return media_type
    return "application/octet-stream"


class NotAcceptable(ValueError):
    """No representation the client accepts can be produced (HTTP 406)."""


def _accept(header: str | None) -> list[MediaType]:
    try:
        return parse_accept(header)
    except MultipartError as exc:
        raise NotAcceptable(f"malformed Accept header: {exc}") from exc


def _inner(media: MediaType) -> MediaType | None:
    """For ``multipart/related; type=X`` the part media type X (with the outer params)."""
    if media.type == "multipart/related":
        part = media.params.get("type", "")
        return MediaType(part.lower() or "*/*", media.params, media.q)
    if media.type in ("*/*", "multipart/*"):
        return MediaType("*/*", media.params, media.q)
    return None


def instance_syntaxes(accept: str | None) -> list[str]:
    """Transfer syntaxes acceptable for multipart/related; type="application/dicom".

    Returns UIDs or :data:`AS_STORED` in preference order. Without a transfer-syntax
    parameter the default is Explicit VR Little Endian (PS3.18 Table 8.7.3-2).
    """
    ranges = _accept(accept)
    if not ranges:
        return [tx.EXPLICIT_LE]
    out: list[str] = []
    for media in ranges:
        inner = _inner(media)
        if inner is None or not inner.matches("application/dicom"):
            continue
        ts = media.params.get("transfer-syntax", tx.EXPLICIT_LE).strip()
        if ts != AS_STORED and ts not in tx.WRITABLE and ts not in tx.READABLE:
            continue
        if ts not in out:
            out.append(ts)
    if not out:
        raise NotAcceptable(
            'only multipart/related; type="application/dicom" is offered for this resource'
            f" (asked for: {accept})"
        )
    return out


@dataclass(frozen=True)
class FrameChoice:
    """One acceptable frame representation: media type and transfer syntax (or as stored)."""

    media_type: str  # "*/*" when the client accepts any
    transfer_syntax: str  # a UID or AS_STORED


def frame_choices(accept: str | None) -> list[FrameChoice]:
    """Acceptable frame representations in preference order (PS3.18 8.7.3.5.3)."""
    ranges = _accept(accept)
    if not ranges:
        return [FrameChoice("*/*", AS_STORED)]
    out: list[FrameChoice] = []
    for media in ranges:
        inner = _inner(media)
        if inner is None:
            continue
        ts_param = media.params.get("transfer-syntax")
        if inner.type in ("*/*", "image/*", "image/"):
            out.append(
                FrameChoice(
                    inner.type if inner.type != "image/" else "image/*",
                    ts_param.strip() if ts_param else AS_STORED,
                )
            )
            continue
        table = FRAME_MEDIA_TYPES.get(inner.type)
        if table is None:
            continue
        default, allowed = table
        ts = ts_param.strip() if ts_param else default
        if ts != AS_STORED and ts not in allowed:
            continue  # a syntax that does not belong to this media type
        out.append(FrameChoice(inner.type, ts))
    if not out:
        raise NotAcceptable(f"no supported frame media type in Accept: {accept}")
    return out


def rendered_media_type(accept: str | None, default: str = "image/jpeg") -> str:
    """image/jpeg (default) or image/png for rendered resources (PS3.18 8.3.5.1)."""
    ranges = _accept(accept)
    if not ranges:
        return default
    for media in ranges:
        if media.type in ("image/jpeg", "image/png"):
            return media.type
        if media.type in ("*/*", "image/*", "image/"):
            return default
    raise NotAcceptable(f"rendered images are offered as image/jpeg or image/png, not {accept}")
