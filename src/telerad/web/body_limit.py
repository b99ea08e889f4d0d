"""Request bodies within a hard cap, decoded (gzip, deflate) within the same cap.

A pure ASGI middleware in front of every route:

* a ``Content-Length`` over the route's cap is refused (413) at the route's
  first read, before a byte of the body is read (the connection is then closed,
  the body never drained);
* a body sent without a length (chunked) is counted as it arrives and refused
  (413) as soon as it passes the cap;
* ``Content-Encoding: gzip`` or ``deflate`` is decoded here, in steps of 64 KiB,
  and the decoded body is held to the same cap and, beyond its first MiB, to at
  most ``MAX_INFLATION`` times the bytes received so far (Apache's
  ``DeflateInflateRatioLimit``, 200 by default, for the same reason): a gzip
  bomb is refused after a few MiB of inflating, whatever it would grow to. Any
  other coding is refused (415).

Refusals are raised as HTTP errors inside the route, so each API answers them
in its own form (DICOMweb ``{"detail": …}``, FHIR an OperationOutcome).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_INFLATION = 200
INFLATION_GRACE = 1024 * 1024
_STEP = 64 * 1024
_CODINGS = ("gzip", "x-gzip", "deflate")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than the {limit} bytes accepted here")


class _Body:
    """The receive channel of one request, counted and decoded."""

    def __init__(self, receive: Receive, limit: int, coding: str, refusal: HTTPException | None):
        self.receive = receive
        self.limit = limit
        self.refusal = refusal
        self.inflater = zlib.decompressobj(47) if coding in _CODINGS else None  # 47: zlib or gzip
        self.received = 0
        self.decoded = 0
        self.ready: deque[Message] = deque()

    async def __call__(self) -> Message:
        if self.refusal is not None:
            raise self.refusal
        if self.ready:
            return self.ready.popleft()
        message = await self.receive()
        if message["type"] != "http.request":
            return message
        body: bytes = message.get("body", b"")
        self.received += len(body)
        if self.inflater is None:
            if self.received > self.limit:
                raise too_large(self.limit)
            return message
        more = bool(message.get("more_body", False))
        return {"type": "http.request", "body": self._inflate(body, more), "more_body": more}

    def _inflate(self, data: bytes, more: bool) -> bytes:
        assert self.inflater is not None
        out: list[bytes] = []
        try:
            while True:
                chunk = self.inflater.decompress(data, _STEP)
                data = self.inflater.unconsumed_tail
                self._count(len(chunk))
                out.append(chunk)
                if self.inflater.eof and self.inflater.unused_data:  # another gzip member
                    data = self.inflater.unused_data
                    self.inflater = zlib.decompressobj(47)
                elif not data and not chunk:
                    break
        except zlib.error as exc:
            raise HTTPException(
                400, f"the request body is not valid gzip or deflate: {exc}"
            ) from exc
        if not more and not self.inflater.eof:
            raise HTTPException(400, "the compressed request body ends before its stream does")
        return b"".join(out)

    def _count(self, size: int) -> None:
        self.decoded += size
        if self.decoded > self.limit:
            raise too_large(self.limit)
        if self.decoded > INFLATION_GRACE and self.decoded > MAX_INFLATION * self.received:
            raise HTTPException(
                413,
                f"the compressed request body inflates more than {MAX_INFLATION} times its size",
            )


class BodyLimit:
    """Caps every request body at ``limit_for(scope)`` bytes (see the module's docstring)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        coding = (_header(scope, b"content-encoding") or "identity").lower()
        length = _header(scope, b"content-length")
        refusal = None
        if coding not in ("identity", *_CODINGS):
            refusal = HTTPException(
                415, f"Content-Encoding {coding} is not accepted (gzip, deflate or none)"
            )
        elif length is not None and length.isdigit() and int(length) > limit:
            refusal = too_large(limit)
        if coding in _CODINGS:  # the route sees the decoded body, of a length not known yet
            dropped = (b"content-encoding", b"content-length")
            headers = [(k, v) for k, v in scope["headers"] if k.lower() not in dropped]
            scope = dict(scope, headers=headers)
        await self.app(scope, _Body(receive, limit, coding, refusal), send)


def limits_by_route(http_max_body: int, stow_max_body: int) -> Callable[[Scope], int]:
    """STOW-RS (every POST under /dicom-web) takes whole studies; the rest takes JSON and forms."""

    def limit_for(scope: Scope) -> int:
        path = str(scope.get("path", ""))
        if scope.get("method") == "POST" and path.startswith("/dicom-web/"):
            return stow_max_body
        return http_max_body

    return limit_for
