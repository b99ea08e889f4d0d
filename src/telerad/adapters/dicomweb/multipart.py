"""multipart/related (RFC 2387, RFC 2046 5.1) and media types (RFC 9110 8.3, 12.5.1).

Parsing works on a whole buffer (``bytes`` or an ``mmap``) with ``find`` on the
boundary, so a 200 MB STOW-RS body is framed in C, not in a Python loop; parts
are returned as offsets so the caller slices only the part it is storing.
Framing is checked completely before any part is handed out: a truncated or
malformed body is refused whole.
"""

from __future__ import annotations

import mmap
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

#: The largest header block of one part we look for (RFC 2046 sets no limit; be generous).
MAX_PART_HEADER = 16 * 1024
_CRLF = b"\r\n"

Buffer = bytes | bytearray | mmap.mmap


class MultipartError(ValueError):
    """A body that is not well-formed multipart; the message says why."""


@dataclass(frozen=True)
class MediaType:
    """``type/subtype`` with its parameters (names lower-cased, values unquoted)."""

    type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def main(self) -> str:
        return self.type.partition("/")[0]

    def matches(self, concrete: str) -> bool:
        """True when this (possibly wildcard) range covers the concrete media type."""
        if self.type in ("*/*", "*"):
            return True
        if self.type.endswith("/*") or self.type.endswith("/"):
            return concrete.partition("/")[0] == self.main
        return self.type == concrete


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    out, buf, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            buf.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            buf.append(ch)
        elif ch == sep and not quoted:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf))
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_media_type(text: str) -> MediaType:
    """``multipart/related; type="application/dicom"; boundary=x`` → :class:`MediaType`."""
    pieces = _split_outside_quotes(text, ";")
    main = pieces[0].strip().lower()
    if not main:
        raise MultipartError("empty media type")
    if "/" not in main and main != "*":
        raise MultipartError(f"'{main}' is not a media type (type/subtype)")
    params: dict[str, str] = {}
    q = 1.0
    for piece in pieces[1:]:
        if not piece.strip():
            continue
        name, eq, value = piece.partition("=")
        name = name.strip().lower()
        if not eq or not name:
            raise MultipartError(f"malformed media type parameter '{piece.strip()}'")
        if name == "q":
            try:
                q = float(value.strip())
            except ValueError as exc:
                raise MultipartError(f"bad quality value q={value.strip()}") from exc
            continue
        params[name] = _unquote(value)
    return MediaType(main, params, q)


def parse_accept(header: str | None) -> list[MediaType]:
    """The media ranges of an Accept header, most preferred first (q=0 dropped)."""
    if header is None or not header.strip():
        return []
    ranges = [parse_media_type(item) for item in _split_outside_quotes(header, ",") if item.strip()]
    ranges = [r for r in ranges if r.q > 0]
    # sorted() is stable: equal q keeps the client's order.
    return sorted(ranges, key=lambda r: -r.q)


@dataclass(frozen=True)
class Part:
    """One body part: its headers (names lower-cased) and where its content lies."""

    headers: dict[str, str]
    start: int
    end: int

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    def __len__(self) -> int:
        return self.end - self.start


def _parse_headers(block: bytes, number: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(_CRLF):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise MultipartError(f"part {number}: malformed header line")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return headers


def split_parts(body: Buffer, boundary: str) -> list[Part]:
    """Frame a multipart body; raise :class:`MultipartError` unless it is complete."""
    if not boundary or len(boundary) > 70:
        raise MultipartError("the boundary must be 1 to 70 characters (RFC 2046)")
    dash = b"--" + boundary.encode("latin-1")
    delimiter = _CRLF + dash
    size = len(body)
    if body[: len(dash)] == dash:
        pos = len(dash)
    else:  # a preamble precedes the first boundary
        first = body.find(delimiter)
        if first < 0:
            raise MultipartError("the body does not contain the boundary given in Content-Type")
        pos = first + len(delimiter)
    parts: list[Part] = []
    while True:
        if body[pos : pos + 2] == b"--":
            return parts  # close delimiter; an epilogue is ignored
        eol = body.find(_CRLF, pos, pos + 1024)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            if pos >= size:
                raise MultipartError("truncated: the body ends without the closing boundary")
            raise MultipartError(f"part {len(parts) + 1}: boundary not followed by CRLF")
        start = eol + 2
        number = len(parts) + 1
        if body[start : start + 2] == _CRLF:  # no header fields
            headers: dict[str, str] = {}
            content = start + 2
        else:
            header_end = body.find(b"\r\n\r\n", start, start + MAX_PART_HEADER)
            if header_end < 0:
                raise MultipartError(f"part {number}: headers not terminated by an empty line")
            headers = _parse_headers(bytes(body[start:header_end]), number)
            content = header_end + 4
        end = body.find(delimiter, content)
        if end < 0:
            raise MultipartError(
                f"truncated: part {number} is not followed by a boundary delimiter"
            )
        parts.append(Part(headers, content, end))
        pos = end + len(delimiter)


def new_boundary() -> str:
    return "telerad-" + secrets.token_hex(16)


def part_header(boundary: str, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")


def iter_multipart(
    boundary: str, parts: Iterable[tuple[str, bytes]], extra: dict[str, str] | None = None
) -> Iterator[bytes]:
    """Encode parts (content type, content) as multipart/related, one chunk per part.

    One chunk per part (a copy of the part) costs less than the two extra trips
    through the server's threadpool that separate header and trailer chunks would.
    """
    for content_type, content in parts:
        yield b"".join((part_header(boundary, content_type, extra), content, _CRLF))
    yield closing(boundary)


def encode_multipart(boundary: str, parts: Iterable[tuple[str, bytes]]) -> bytes:
    return b"".join(iter_multipart(boundary, parts))


def related_content_type(boundary: str, part_type: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        value += f"; transfer-syntax={transfer_syntax}"
    return value
