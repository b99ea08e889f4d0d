"""One log line per HTTP request, without PHI: method, path, status, time, who.

Query strings carry search terms (``PatientName=DOE*``, ``accession=…``,
``StudyInstanceUIDs=…``), so only the parameter names are written, never their
values; bodies and headers are never looked at. Paths hold UIDs and ids, which
is what an operator needs to follow a request.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telerad.domain.identity import Principal

log = logging.getLogger("telerad.http")

#: Longest path written (a path is not a place for data, but a client may put some there).
MAX_PATH = 200
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def masked_query(query: bytes) -> str:
    """``a=1&PatientName=DOE*`` → ``a=…&PatientName=…``: names kept, values dropped."""
    names = []
    for part in query.decode("latin-1").split("&"):
        if not part:
            continue
        name = part.split("=", 1)[0]
        names.append(f"{name}=…" if _NAME.fullmatch(name) else "…")
    return "&".join(names)


def request_line(scope: Scope, status: int, seconds: float) -> str:
    path = str(scope.get("path", ""))[:MAX_PATH]
    query = masked_query(scope.get("query_string", b""))
    who = scope.get("state", {}).get("principal")
    user = who.username if isinstance(who, Principal) else "-"
    client = scope.get("client")
    address = client[0] if client else "-"
    return (
        f"{scope.get('method', '')} {path}{'?' + query if query else ''} {status} "
        f"{seconds * 1000:.1f} ms {user} {address}"
    )


class AccessLog:
    """Pure ASGI middleware: the line is written once the response has been sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info("%s", request_line(scope, status, time.perf_counter() - started))
