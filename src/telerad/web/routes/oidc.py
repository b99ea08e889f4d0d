"""OpenID Connect sign-in: ``/auth/oidc/login`` sends the browser to the identity provider,
``/auth/oidc/callback`` brings it back signed in (the same session cookie as ``/login``).

Between the two legs the state, nonce, PKCE verifier and where to go next are kept
in a short-lived cookie, encrypted and authenticated with a key derived from the
platform secret (Fernet), HttpOnly, SameSite=Lax, limited to ``/auth/oidc``, so any
of several machines serving the network can finish a sign-in another one began.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from telerad.adapters.oidc import OidcError, OidcProvider
from telerad.services.auth import Forbidden
from telerad.services.platform import Platform
from telerad.web.auth import client_address, set_session_cookie
from telerad.web.routes.account import TEMPLATES, safe_next

FLOW_COOKIE = "telerad_oidc"
FLOW_PATH = "/auth/oidc"
FLOW_SECONDS = 600
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")  # RFC 6749 error codes


def router(platform: Platform, provider: OidcProvider) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    auth = platform.auth
    settings = platform.settings
    secure_cookie = settings.tls_cert is not None
    sealer = Fernet(base64.urlsafe_b64encode(auth.derive_key("oidc-flow-cookie")))

    def page(request: Request, error: str, status: int, next_url: str = "/") -> HTMLResponse:
        response = TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {"next": next_url, "error": error, "username": "", "oidc": settings.oidc_name},
            status_code=status,
        )
        response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        return response

    def read_flow(request: Request) -> dict[str, Any] | None:
        sealed = request.cookies.get(FLOW_COOKIE)
        if not sealed:
            return None
        try:
            flow = json.loads(sealer.decrypt(sealed.encode(), ttl=FLOW_SECONDS))
        except (InvalidToken, ValueError):
            return None
        keys = ("state", "nonce", "verifier", "next", "redirect_uri")
        if not isinstance(flow, dict) or not all(isinstance(flow.get(k), str) for k in keys):
            return None
        return flow

    @r.get("/auth/oidc/login")
    def oidc_login(request: Request, next: str = "/") -> Response:
        target = safe_next(next)
        redirect_uri = str(request.url_for("oidc_callback"))
        try:
            authorization = provider.authorize(redirect_uri)
        except OidcError as exc:
            return page(request, f"sign-in with {settings.oidc_name} is unavailable: {exc}", 502)
        flow = {
            "state": authorization.state,
            "nonce": authorization.nonce,
            "verifier": authorization.code_verifier,
            "next": target,
            "redirect_uri": redirect_uri,
        }
        response = RedirectResponse(authorization.url, status_code=302)
        response.set_cookie(
            FLOW_COOKIE,
            sealer.encrypt(json.dumps(flow).encode()).decode(),
            max_age=FLOW_SECONDS,
            httponly=True,
            samesite="lax",
            secure=secure_cookie,
            path=FLOW_PATH,
        )
        return response

    @r.get("/auth/oidc/callback", name="oidc_callback")
    def oidc_callback(
        request: Request, code: str = "", state: str = "", error: str = ""
    ) -> Response:
        source = client_address(request)
        flow = read_flow(request)
        next_url = flow["next"] if flow else "/"

        def refuse(reason: str, status: int) -> HTMLResponse:
            auth.audit_sign_in("unknown", None, source, False, f"oidc: {reason}")
            return page(request, f"sign-in with {settings.oidc_name} failed: {reason}", status)

        if flow is None:
            return refuse("no sign-in in progress here, or it took too long; start again", 400)
        if error:
            shown = error if _ERROR_CODE.match(error) else "an error"
            return refuse(f"the identity provider answered {shown}", 401)
        if not state or not secrets.compare_digest(state.encode(), flow["state"].encode()):
            return refuse("the state does not match this browser's sign-in", 400)
        if not code:
            return refuse("the identity provider sent no code", 400)
        try:
            identity = provider.redeem(code, flow["redirect_uri"], flow["verifier"], flow["nonce"])
        except OidcError as exc:
            return refuse(str(exc), 401)
        how = "oidc"
        if identity.amr:
            amr = " ".join(a for a in identity.amr if a.isascii() and a.isalnum())[:100]
            how += f" (amr: {amr})"
        username = identity.claim(settings.oidc_username_claim)
        try:
            user = auth.sign_in_federated(identity.subject, username, source, how)
        except Forbidden as exc:  # already audited
            return page(request, str(exc), 403, next_url)
        token = auth.start_session(user, source)
        response = RedirectResponse(next_url, status_code=303)
        set_session_cookie(response, token, secure_cookie)
        response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        return response

    return r
