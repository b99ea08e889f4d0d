"""OpenID Connect sign-in against a small, real OpenID provider served by uvicorn.

The provider (below) does discovery, an authorize endpoint that approves whoever the
test says is at the keyboard, a token endpoint that checks the client, the
redirect URI, single use of each code and the PKCE verifier (S256), and a JWKS;
its ID tokens are RS256 with a key made here. Tests can make it misbehave (wrong
audience, issuer, nonce, expired, another key, ``alg: none``) and check that
telerad refuses. The browser is played by hand: each redirect is followed
explicitly, the telerad side through FastAPI's TestClient, the provider over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from tests.conftest import free_port
from tests.support import eventually

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.audit import EventID, Outcome
from telerad.domain.identity import Role
from telerad.web.app import create_app

CLIENT_ID = "telerad-test"
CLIENT_SECRET = "client-secret-for-tests"
PASSWORD = "correct horse battery"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"}, private=True)


@dataclass
class Provider:
    """The provider's state; tests change ``person`` and ``tamper``."""

    issuer: str
    key: RSAKey = field(default_factory=lambda: _key("k1"))
    person: dict[str, Any] = field(default_factory=dict)
    #: Claims (or "alg": "none", "key": another key) to spoil the next ID tokens with.
    tamper: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    jwks_fetches: int = 0

    def reset(self) -> None:
        self.key = _key("k1")
        self.person = {"sub": "u-123", "preferred_username": "dr.lee", "amr": ["pwd", "mfa"]}
        self.tamper = {}
        self.codes.clear()
        self.refusals.clear()

    def id_token(self, grant: dict[str, Any], access_token: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            "at_hash": _b64(hashlib.sha256(access_token.encode()).digest()[:16]),
            **grant["person"],
        }
        tamper = dict(self.tamper)
        key = tamper.pop("key", self.key)
        alg = tamper.pop("alg", "RS256")
        claims.update(tamper)
        if alg == "none":
            header = _b64(json.dumps({"alg": "none", "kid": key.kid}).encode())
            return f"{header}.{_b64(json.dumps(claims).encode())}."
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key)

    # -- endpoints ------------------------------------------------------------------------
    def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    def jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    def authorize(self, request: Request) -> Response:
        q = request.query_params
        wrong = [
            name
            for name, ok in (
                ("response_type", q.get("response_type") == "code"),
                ("client_id", q.get("client_id") == CLIENT_ID),
                ("scope", "openid" in q.get("scope", "").split()),
                ("code_challenge_method", q.get("code_challenge_method") == "S256"),
                ("code_challenge", len(q.get("code_challenge", "")) == 43),
                ("nonce", bool(q.get("nonce"))),
                ("state", bool(q.get("state"))),
                ("redirect_uri", q.get("redirect_uri", "").endswith("/auth/oidc/callback")),
            )
            if not ok
        ]
        if wrong:  # an authorization server shows these to the person, not the client
            return JSONResponse({"error": "invalid_request", "wrong": wrong}, status_code=400)
        code = secrets.token_urlsafe(24)
        self.codes[code] = {
            "redirect_uri": q["redirect_uri"],
            "nonce": q["nonce"],
            "challenge": q["code_challenge"],
            "person": dict(self.person),
            "used": False,
        }
        back = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(back, status_code=302)

    async def token(self, request: Request) -> Response:
        form = await request.form()

        def refuse(error: str, why: str, status: int = 400) -> Response:
            self.refusals.append(why)
            return JSONResponse({"error": error}, status_code=status)

        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if scheme.lower() != "basic" or credentials != expected:
            return refuse("invalid_client", "client authentication", 401)
        if form.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type", "grant type")
        grant = self.codes.get(str(form.get("code", "")))
        if grant is None:
            return refuse("invalid_grant", "unknown code")
        if grant["used"]:
            return refuse("invalid_grant", "code already used")
        grant["used"] = True
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return refuse("invalid_grant", "redirect_uri")
        verifier = str(form.get("code_verifier", ""))
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return refuse("invalid_grant", "PKCE verifier mismatch")
        access_token = secrets.token_urlsafe(24)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(grant, access_token),
            },
            headers={"Cache-Control": "no-store"},
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )


@pytest.fixture(scope="module")
def provider_server() -> Iterator[Provider]:
    port = free_port()
    provider = Provider(issuer=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(
        uvicorn.Config(provider.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, 10, 0.02, "the test OpenID provider started")
    yield provider
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def idp(provider_server: Provider) -> Provider:
    provider_server.reset()
    return provider_server


def _settings(tmp_path: Path, idp: Provider, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        fsync=False,
        oidc_issuer=idp.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_name="North IdP",
        **extra,
    )


@pytest.fixture
def telerad(tmp_path: Path, idp: Provider) -> Iterator[Platform]:
    platform = open_platform(_settings(tmp_path, idp))
    platform.auth.create_user("dr.lee", Role.RADIOLOGIST, password=PASSWORD)
    yield platform
    platform.close()


@pytest.fixture
def client(telerad: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(telerad), follow_redirects=False) as c:
        yield c


def start(client: TestClient, next_url: str = "/studies") -> str:
    """The first leg: telerad's redirect to the provider; returns the authorize URL."""
    response = client.get("/auth/oidc/login", params={"next": next_url})
    assert response.status_code == 302, response.text
    return response.headers["location"]


def approve(authorize_url: str) -> str:
    """The provider approves (whoever ``Provider.person`` is); returns the callback path."""
    response = httpx.get(authorize_url)
    assert response.status_code == 302, response.text
    back = urlsplit(response.headers["location"])
    return f"{back.path}?{back.query}"


def sign_in(client: TestClient, next_url: str = "/studies") -> httpx.Response:
    return client.get(approve(start(client, next_url)))


def _auth_events(platform: Platform) -> list[tuple[int, str]]:
    return [
        (r.outcome, r.detail)
        for r in platform.audit.repository.records()
        if r.event_id == EventID.USER_AUTHENTICATION.code
    ]


def _refused(response: httpx.Response, client: TestClient, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert text in response.text
    assert "telerad_session" not in response.headers.get("set-cookie", "")
    client.cookies.delete("telerad_session")
    assert client.get("/api/me").status_code == 401


# -- the happy path -------------------------------------------------------------------------------
def test_sign_in_gives_a_session_and_links_the_account(
    client: TestClient, telerad: Platform, idp: Provider
) -> None:
    page = client.get("/login")
    assert "Sign in with North IdP" in page.text
    assert 'href="/auth/oidc/login?next=/"' in page.text

    authorize_url = start(client)
    query = parse_qs(urlsplit(authorize_url).query)
    assert authorize_url.startswith(idp.issuer + "/authorize?")
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    assert set(query["scope"][0].split()) == {"openid", "email", "profile"}
    assert "code_verifier" not in query  # only the challenge travels in the URL
    flow_cookie = client.cookies.get("telerad_oidc")
    assert flow_cookie and query["state"][0] not in flow_cookie  # sealed, not readable

    response = client.get(approve(authorize_url))
    assert response.status_code == 303 and response.headers["location"] == "/studies"
    me = client.get("/api/me")
    assert me.status_code == 200
    assert me.json()["username"] == "dr.lee" and me.json()["method"] == "session"
    assert "telerad_oidc" not in client.cookies  # the flow cookie is spent

    user = telerad.identity.user_by_name("dr.lee")
    assert user is not None and user.oidc_subject == f"{idp.issuer}|u-123"
    events = _auth_events(telerad)
    assert events[-1][0] == Outcome.SUCCESS
    assert events[-1][1].startswith("login: oidc (amr: pwd mfa)")

    # Linked by subject now: a renamed IdP account still reaches the same telerad account.
    idp.person["preferred_username"] = "lee.renamed"
    client.cookies.clear()
    assert sign_in(client).status_code == 303
    assert client.get("/api/me").json()["username"] == "dr.lee"


def test_flow_cookie_is_short_lived_http_only_and_scoped(client: TestClient) -> None:
    response = client.get("/auth/oidc/login", params={"next": "/studies"})
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("telerad_oidc=")
    for attribute in ("httponly", "samesite=lax", "max-age=600", "path=/auth/oidc"):
        assert attribute in cookie
    assert "/studies" not in response.headers["set-cookie"]


def test_mfa_role_needs_no_telerad_totp_over_oidc(
    client: TestClient, telerad: Platform, idp: Provider
) -> None:
    telerad.auth.create_user("chief", Role.NETWORK_ADMIN, password=PASSWORD)
    idp.person = {"sub": "u-9", "preferred_username": "chief"}
    with pytest.raises(Exception, match="second factor"):
        telerad.auth.sign_in("chief", PASSWORD, None)  # by password it does
    assert sign_in(client).status_code == 303
    assert client.get("/api/me").json()["role"] == "network-admin"
    assert _auth_events(telerad)[-1] == (Outcome.SUCCESS, "login: oidc, linked")


@pytest.mark.parametrize("target", ["https://elsewhere.example/x", "//elsewhere.example/x"])
def test_next_to_another_site_is_ignored(client: TestClient, target: str) -> None:
    response = sign_in(client, target)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_keys_are_fetched_again_when_the_provider_rotates(
    client: TestClient, idp: Provider
) -> None:
    assert sign_in(client).status_code == 303
    fetched = idp.jwks_fetches
    idp.key = _key("k2")  # new kid: the cached set does not have it
    client.cookies.clear()
    assert sign_in(client).status_code == 303
    assert idp.jwks_fetches == fetched + 1


# -- refusals --------------------------------------------------------------------------------------
def test_wrong_state_is_refused(client: TestClient, telerad: Platform, idp: Provider) -> None:
    path = approve(start(client))
    spoiled = path.replace("state=", "state=x")
    _refused(client.get(spoiled), client, 400, "state does not match")
    assert idp.refusals == [] and all(not g["used"] for g in idp.codes.values())  # never sent
    assert _auth_events(telerad)[-1][0] == Outcome.MINOR_FAILURE


def test_callback_without_a_sign_in_in_progress_is_refused(client: TestClient) -> None:
    path = approve(start(client))
    client.cookies.delete("telerad_oidc")
    _refused(client.get(path), client, 400, "no sign-in in progress")


def test_flow_older_than_ten_minutes_is_refused(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = approve(start(client))
    sealed = client.cookies["telerad_oidc"]
    client.cookies.delete("telerad_oidc")
    later = time.time() + 601  # a browser would have dropped it: the server must too
    monkeypatch.setattr("cryptography.fernet.time.time", lambda: later)
    response = client.get(path, headers={"Cookie": f"telerad_oidc={sealed}"})
    _refused(response, client, 400, "no sign-in in progress")


def test_replayed_code_is_refused(client: TestClient, idp: Provider) -> None:
    path = approve(start(client))
    assert client.get(path).status_code == 303
    code = parse_qs(urlsplit(path).query)["code"][0]
    client.cookies.clear()
    # A new sign-in in this browser, answered with the code already spent.
    state = parse_qs(urlsplit(start(client)).query)["state"][0]
    replay = "/auth/oidc/callback?" + urlencode({"code": code, "state": state})
    _refused(client.get(replay), client, 401, "refused the code (invalid_grant)")
    assert idp.refusals == ["code already used"]


def test_invalid_code_is_refused(client: TestClient, telerad: Platform, idp: Provider) -> None:
    state = parse_qs(urlsplit(start(client)).query)["state"][0]
    made_up = "/auth/oidc/callback?" + urlencode({"code": "not-a-code", "state": state})
    _refused(client.get(made_up), client, 401, "refused the code")
    assert idp.refusals == ["unknown code"]
    detail = _auth_events(telerad)[-1][1]
    assert detail == "login failed: oidc: the identity provider refused the code (invalid_grant)"


def test_code_for_another_browser_fails_pkce_at_the_provider(
    client: TestClient, telerad: Platform, idp: Provider
) -> None:
    """An attacker injects a victim's code into their own sign-in: the provider refuses it,
    because the attacker's verifier does not match the victim's challenge."""
    victim_code = parse_qs(urlsplit(approve(start(client))).query)["code"][0]
    with TestClient(create_app(telerad), follow_redirects=False) as attacker:
        state = parse_qs(urlsplit(start(attacker)).query)["state"][0]
        injected = "/auth/oidc/callback?" + urlencode({"code": victim_code, "state": state})
        _refused(attacker.get(injected), attacker, 401, "refused the code")
    assert idp.refusals == ["PKCE verifier mismatch"]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ({"aud": "another-client"}, "aud claim is not valid"),
        ({"iss": "http://127.0.0.1:1/other"}, "iss claim is not valid"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "has expired"),
        ({"nonce": "not-the-nonce"}, "nonce claim is not valid"),
        ({"key": "other"}, "signature is not valid"),
        ({"key": "unknown-kid"}, "signature is not valid"),
        ({"alg": "none"}, "signature is not valid"),
        ({"alg": "HS256", "key": "hmac-with-public-key"}, "signature is not valid"),
    ],
)
def test_bad_id_tokens_are_refused(
    client: TestClient, telerad: Platform, idp: Provider, tamper: dict[str, Any], message: str
) -> None:
    tamper = dict(tamper)
    if tamper.get("key") == "other":
        tamper["key"] = _key("k1")  # same kid, another key
    elif tamper.get("key") == "unknown-kid":
        tamper["key"] = _key("k9")
    elif tamper.get("key") == "hmac-with-public-key":
        # The classic confusion: HS256 keyed with the provider's public key (public data).
        public = json.dumps(idp.key.as_dict(private=False), sort_keys=True).encode()
        tamper["key"] = OctKey.import_key(public, {"kid": idp.key.kid or ""})
    idp.tamper = tamper
    _refused(sign_in(client), client, 401, message)
    outcome, detail = _auth_events(telerad)[-1]
    assert outcome == Outcome.MINOR_FAILURE and detail.startswith("login failed: oidc: the ID")
    user = telerad.identity.user_by_name("dr.lee")
    assert user is not None and user.oidc_subject is None


def test_unknown_person_is_refused(client: TestClient, telerad: Platform, idp: Provider) -> None:
    idp.person = {"sub": "u-404", "preferred_username": "nobody"}
    _refused(sign_in(client), client, 403, "no telerad account for nobody")
    outcome, detail = _auth_events(telerad)[-1]
    assert outcome == Outcome.MINOR_FAILURE
    assert detail == f"login failed: oidc: no account for {idp.issuer}|u-404"


def test_disabled_account_is_refused(client: TestClient, telerad: Platform) -> None:
    assert sign_in(client).status_code == 303
    user = telerad.identity.user_by_name("dr.lee")
    assert user is not None
    telerad.auth.disable(user)
    client.cookies.clear()
    _refused(sign_in(client), client, 403, "dr.lee is disabled")
    assert _auth_events(telerad)[-1][1].endswith("account disabled")


def test_account_linked_to_another_identity_is_refused(
    client: TestClient, telerad: Platform, idp: Provider
) -> None:
    user = telerad.identity.user_by_name("dr.lee")
    assert user is not None
    telerad.identity.update_user(user.id, oidc_subject=f"{idp.issuer}|someone-else")
    _refused(sign_in(client), client, 403, "belongs to another identity")


def test_error_from_the_provider_is_refused(client: TestClient, telerad: Platform) -> None:
    state = parse_qs(urlsplit(start(client)).query)["state"][0]
    denied = "/auth/oidc/callback?" + urlencode({"error": "access_denied", "state": state})
    _refused(client.get(denied), client, 401, "answered access_denied")


def test_no_codes_or_tokens_in_the_audit_trail(
    client: TestClient, telerad: Platform, idp: Provider
) -> None:
    path = approve(start(client))
    code = parse_qs(urlsplit(path).query)["code"][0]
    assert client.get(path).status_code == 303
    idp.tamper = {"nonce": "x"}
    client.cookies.clear()
    sign_in(client)
    trail = json.dumps([detail for _, detail in _auth_events(telerad)])
    assert code not in trail and CLIENT_SECRET not in trail and "eyJ" not in trail


def test_pre_linked_account_signs_in_whatever_its_username(tmp_path: Path, idp: Provider) -> None:
    """``telerad user link`` ties an account to a subject before its first sign-in."""
    data_dir = tmp_path / "data"
    platform = open_platform(_settings(tmp_path, idp))
    platform.auth.create_user("radiologist7", Role.RADIOLOGIST)
    platform.close()
    env = dict(
        os.environ,
        TELERAD_DATA_DIR=str(data_dir),
        TELERAD_FSYNC="false",
        TELERAD_OIDC_ISSUER=idp.issuer,
    )
    env.pop("TELERAD_DATABASE_URL", None)
    linked = subprocess.run(
        [sys.executable, "-m", "telerad.cli.main", "user", "link", "radiologist7"]
        + ["--subject", "u-777"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert linked.returncode == 0, linked.stderr
    idp.person = {"sub": "u-777", "preferred_username": "jdoe@north.example"}
    platform = open_platform(_settings(tmp_path, idp))
    try:
        user = platform.identity.user_by_name("radiologist7")
        assert user is not None and user.oidc_subject == f"{idp.issuer}|u-777"
        with TestClient(create_app(platform), follow_redirects=False) as c:
            assert sign_in(c).status_code == 303
            assert c.get("/api/me").json()["username"] == "radiologist7"
    finally:
        platform.close()


def test_without_oidc_settings_there_is_no_oidc_sign_in(platform: Platform) -> None:
    platform.auth.create_user("dr.lee", Role.RADIOLOGIST, password=PASSWORD)
    with TestClient(create_app(platform), follow_redirects=False) as c:
        assert "Sign in with" not in c.get("/login").text
        assert c.get("/auth/oidc/login").status_code == 404


def test_unreachable_provider_is_a_clear_error(tmp_path: Path, idp: Provider) -> None:
    settings = _settings(tmp_path, idp).model_copy(
        update={"oidc_issuer": f"http://127.0.0.1:{free_port()}"}  # nobody listens there
    )
    platform = open_platform(settings)
    try:
        platform.auth.create_user("dr.lee", Role.RADIOLOGIST, password=PASSWORD)
        with TestClient(create_app(platform), follow_redirects=False) as c:
            response = c.get("/auth/oidc/login")
            assert response.status_code == 502
            assert "configuration could not be read" in response.text
            assert "telerad_oidc" not in c.cookies
    finally:
        platform.close()
