"""Who is calling: ``Authorization: Bearer`` tokens or the browser session cookie.

Until the first account exists the platform runs open (it then listens on
loopback only, see ``telerad.server``); from then on every DICOMweb, REST and page
request needs a token or a session. Browsers are sent to the sign-in page; API
clients get 401 with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, Response

from telerad.domain.identity import OPEN_ACCESS, Permission, Principal
from telerad.services.auth import AuthError, AuthService

SESSION_COOKIE = "telerad_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInRequired(HTTPException):
    """401 for API clients; the page routes turn it into a redirect to /login."""

    def __init__(self, reason: str) -> None:
        super().__init__(401, reason, headers={"WWW-Authenticate": 'Bearer realm="telerad"'})


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def set_session_cookie(response: Response, token: str, secure: bool) -> None:
    """The browser session cookie, the same for every way of signing in."""
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/"
    )


def same_origin(request: Request) -> bool:
    """A state-changing request made with a cookie must come from our own pages (CSRF)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    return urlsplit(origin).netloc == request.headers.get("host", "")


#: Sent by a page's own polling (htmx refreshes, the session timer): such requests do
#: not count as the person's activity, so they never keep an idle session alive.
BACKGROUND_HEADER = "X-Telerad-Background"


def authenticate(request: Request) -> Principal:
    """The principal of this request (also kept as ``request.state.principal``)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    auth: AuthService = request.app.state.platform.auth
    header = request.headers.get("authorization")
    try:
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("use Authorization: Bearer <token>")
            principal = auth.principal_from_token(token.strip())
        elif (cookie := request.cookies.get(SESSION_COOKIE)) is not None:
            background = request.headers.get(BACKGROUND_HEADER) == "1"
            principal = auth.principal_from_session(cookie, touch=not background)
            if request.method not in SAFE_METHODS and not same_origin(request):
                raise HTTPException(403, "cross-site request refused")
        elif not auth.has_users():
            principal = OPEN_ACCESS
        else:
            raise AuthError("sign in, or send Authorization: Bearer <token>")
    except AuthError as exc:
        raise SignInRequired(str(exc)) from exc
    request.state.principal = principal
    return principal


def authorise(request: Request, permission: Permission) -> Principal:
    """The caller, who must hold ``permission`` (401 without credentials, else 403)."""
    who = authenticate(request)
    if not who.can(permission):
        raise HTTPException(403, f"this account may not do this (needs {permission.value})")
    return who


def require(permission: Permission) -> Any:
    """A dependency: the principal, who must hold ``permission`` (else 403)."""

    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.can(permission):
            raise HTTPException(403, f"this account may not do this (needs {permission.value})")
        return principal

    return Depends(dependency)


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
