"""Requests the deciding process must answer, forwarded to it from the others.

With several `telerad serve` processes behind one address, the reading
worklist and reconciliation live in the process holding the ``reading`` lease
(:mod:`telerad.services.leadership`). A request for them reaching another
process — the worklist and board pages and APIs, the TAT statistics, the
reconciliation queue and its actions, signing out (it hands studies on) — is
forwarded to the holder as it came (method, path, headers with the cookie or
bearer token, body) and its answer streamed back. While the lease changes hands
(a holder died, another takes over within its time to live) such a request is
answered 503 with Retry-After.

A single process, or one whose background loops were not started (tests, the
CLI), answers everything itself.
"""

from __future__ import annotations

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telerad.services.leadership import Leadership

#: Paths the deciding process answers.
DECIDED = (
    "/worklist",
    "/board",
    "/api/worklist",
    "/api/stats/tat",
    "/reconciliation",
    "/api/reconciliation",
    "/logout",
    # Reports are written by the radiologist holding the study, and a final signature
    # completes its worklist entry: both are the deciding process's to answer.
    "/api/reports",
    "/reading",
)
#: Set on a forwarded request: it is not forwarded again.
FORWARDED = b"x-telerad-forwarded"
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
    b"content-length",
}
#: Bodies of these requests are forms and small JSON documents.
MAX_BODY = 1024 * 1024


def decided_here(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in DECIDED)


class ToLeader:
    """Pure ASGI middleware: forwards :data:`DECIDED` requests to the lease holder."""

    def __init__(self, app: ASGIApp, leadership: Leadership, verify: str | bool = True) -> None:
        self.app = app
        self.leadership = leadership
        self.client = httpx.AsyncClient(timeout=30.0, verify=verify)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lead = self.leadership
        if (
            scope["type"] != "http"
            or not lead.started
            or lead.is_leader
            or not decided_here(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        holder = lead.leader()
        headers = dict(scope["headers"])
        if holder is None or holder.holder == lead.me or FORWARDED in headers:
            await _unavailable(send)
            return
        await self._forward(scope, receive, send, holder.address)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, address: str) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await _plain(send, 413, b"request body too large")
                return
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        headers.append((FORWARDED, b"1"))
        url = address.rstrip("/") + scope["path"]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        request = self.client.build_request(
            scope["method"], url, headers=headers, content=bytes(body)
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError:
            await _unavailable(send)
            return
        try:
            out = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in response.headers.multi_items()
                if k.lower().encode("latin-1") not in _HOP_BY_HOP
            ]
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": out})  # fmt: skip
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


async def _plain(
    send: Send, status: int, text: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), *extra],
    }
    await send(start)
    await send({"type": "http.response.body", "body": text})


async def _unavailable(send: Send) -> None:
    await _plain(
        send,
        503,
        b"the reading worklist is moving to another process; try again in a few seconds",
        ((b"retry-after", b"5"),),
    )
