"""Sign-in and account routes: the sign-in page, tokens for scripts, re-authentication,
who am I, and break-glass access.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from telerad.domain.identity import IdentityError, Permission, Principal, Role, parse_permissions
from telerad.services.auth import AuthError, Forbidden
from telerad.services.platform import Platform
from telerad.web.auth import (
    SESSION_COOKIE,
    CurrentPrincipal,
    client_address,
    require,
    same_origin,
    set_session_cookie,
)

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")


def safe_next(value: str | None) -> str:
    """Only a path on this site (no scheme, no host, no protocol-relative //)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


class SessionLeft(BaseModel):
    seconds_left: int = Field(description="until the session ends without activity")
    idle_minutes: int = Field(description="how long a session lasts unused")


class TokenRequest(BaseModel):
    username: str = Field(max_length=128)
    password: str = Field(max_length=1024)
    code: str | None = Field(default=None, max_length=12)
    scope: str | None = Field(default=None, description="space-separated scopes")
    minutes: int | None = Field(default=None, ge=1)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


class ReauthRequest(BaseModel):
    password: str = Field(max_length=1024)
    code: str | None = Field(default=None, max_length=12)


class Me(BaseModel):
    username: str
    role: str | None
    facilities: list[str] | None = Field(description="null: every facility")
    scopes: list[str]
    method: str


class BreakGlassRequest(BaseModel):
    study_instance_uid: str = Field(max_length=64)
    reason: str = Field(min_length=10, max_length=1000)
    minutes: int = Field(default=60, ge=1, le=240)


class BreakGlassGrant(BaseModel):
    study_instance_uid: str
    expires_at: str


class BreakGlassRecord(BaseModel):
    username: str
    study_instance_uid: str
    reason: str
    granted_at: str
    expires_at: str


def router(platform: Platform) -> APIRouter:
    r = APIRouter()
    auth = platform.auth
    secure_cookie = platform.settings.tls_cert is not None
    oidc_name = platform.settings.oidc_name if platform.oidc is not None else None

    def login_page(
        request: Request, next_url: str, error: str = "", username: str = "", status: int = 200
    ) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {"next": next_url, "error": error, "username": username, "oidc": oidc_name},
            status_code=status,
        )

    @r.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return login_page(request, safe_next(next))

    @r.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=128)],
        password: Annotated[str, Form(max_length=1024)],
        code: Annotated[str, Form(max_length=12)] = "",
        next: Annotated[str, Form(max_length=2048)] = "/",
    ) -> Response:
        try:
            user = auth.sign_in(username, password, code or None, client_address(request))
        except AuthError as exc:
            return login_page(request, safe_next(next), str(exc), username, status=401)
        token = auth.start_session(user, client_address(request))
        response = RedirectResponse(safe_next(next), status_code=303)
        set_session_cookie(response, token, secure_cookie)
        return response

    @r.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            try:
                who: Principal | None = auth.principal_from_session(cookie)
            except AuthError:
                who = None
            auth.end_session(cookie)
            if who is not None and who.user_id is not None and who.role is Role.RADIOLOGIST:
                # What they hold goes to someone else now, not at the worklist's next tick.
                platform.reading.signed_out(who.user_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def session_answer(request: Request, keep: bool) -> SessionLeft:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise HTTPException(401, "not signed in with a browser session")
        try:
            left = auth.keep_session(cookie) if keep else auth.session_left(cookie)
        except AuthError as exc:
            raise HTTPException(401, str(exc)) from exc
        return SessionLeft(
            seconds_left=max(int(left.total_seconds()), 0),
            idle_minutes=int(auth.policy.session_idle.total_seconds() // 60),
        )

    @r.get("/api/auth/session", response_model=SessionLeft, tags=["auth"])
    def session_left(request: Request) -> SessionLeft:
        """How long the browser session lasts without the person doing anything (asking
        does not count as activity: the pages ask every half minute to warn in time)."""
        return session_answer(request, keep=False)

    @r.post("/api/auth/session", response_model=SessionLeft, tags=["auth"])
    def keep_session(request: Request) -> SessionLeft:
        """Stay signed in: the idle clock starts again (up to the session's maximum age)."""
        if not same_origin(request):
            raise HTTPException(403, "cross-site request refused")
        return session_answer(request, keep=True)

    @r.post("/api/auth/token", response_model=TokenResponse, tags=["auth"])
    def token(request: Request, body: TokenRequest) -> TokenResponse:
        """A bearer token for a script: user name, password and (when enrolled) TOTP code."""
        try:
            user = auth.sign_in(body.username, body.password, body.code, client_address(request))
            lifetime = timedelta(minutes=body.minutes) if body.minutes else None
            value = auth.issue_token(user, parse_permissions(body.scope), lifetime)
        except AuthError as exc:
            raise HTTPException(401, str(exc)) from exc
        except (ValueError, IdentityError) as exc:
            raise HTTPException(400, str(exc)) from exc
        seconds = int((lifetime or auth.policy.token_lifetime).total_seconds())
        return TokenResponse(access_token=value, expires_in=seconds)

    @r.post("/api/auth/reauth", status_code=204, tags=["auth"])
    def reauth(request: Request, body: ReauthRequest) -> Response:
        """Confirm the password (and code) again before a signing action."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise HTTPException(401, "re-authentication applies to a browser session")
        try:
            auth.reauthenticate(cookie, body.password, body.code, client_address(request))
        except AuthError as exc:
            raise HTTPException(401, str(exc)) from exc
        return Response(status_code=204)

    @r.get("/api/me", response_model=Me, tags=["auth"])
    def me(who: CurrentPrincipal) -> Me:
        names = {f.id: f.name for f in platform.index.list_facilities()}
        return Me(
            username=who.username,
            role=who.role.value if who.role else None,
            facilities=None
            if who.facility_ids is None
            else sorted(names[i] for i in who.facility_ids if i in names),
            scopes=sorted(p.value for p in who.permissions),
            method=who.method,
        )

    @r.post("/api/break-glass", response_model=BreakGlassGrant, tags=["auth"])
    def break_glass(
        request: Request, who: CurrentPrincipal, body: BreakGlassRequest
    ) -> BreakGlassGrant:
        """Open one study beyond your facilities for a while, with a reason; audited."""
        try:
            auth.require_recent(who)
            if platform.index.study_facility(body.study_instance_uid) is None:
                raise HTTPException(404, f"no study {body.study_instance_uid}")
            expires = auth.break_glass(
                who, body.study_instance_uid, body.reason, timedelta(minutes=body.minutes)
            )
        except Forbidden as exc:
            raise HTTPException(403, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return BreakGlassGrant(
            study_instance_uid=body.study_instance_uid,
            expires_at=expires.isoformat(timespec="seconds"),
        )

    @r.get(
        "/api/break-glass",
        response_model=list[BreakGlassRecord],
        tags=["auth"],
        dependencies=[require(Permission.AUDIT)],
    )
    def break_glass_report(days: int = 30) -> list[BreakGlassRecord]:
        """Break-glass grants of the last ``days`` days, for the privacy officer."""
        return [
            BreakGlassRecord(
                username=g.username,
                study_instance_uid=g.study_instance_uid,
                reason=g.reason,
                granted_at=g.granted_at.isoformat(timespec="seconds"),
                expires_at=g.expires_at.isoformat(timespec="seconds"),
            )
            for g in auth.break_glass_report(days)
        ]

    return r
