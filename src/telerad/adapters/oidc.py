"""OpenID Connect relying party: discovery, keys, the code exchange and ID token checks.

The authorization code flow with PKCE (RFC 7636, S256), ``state`` and ``nonce``
(OpenID Connect Core 1.0, 3.1). authlib builds the authorization URL and makes
the token request; the ID token's signature is checked with joserfc (the JOSE
library authlib itself uses) against the provider's JWKS, and its claims with
authlib's :class:`~authlib.oidc.core.CodeIDToken`. Only RS256 and ES256 are
accepted: never ``none``, never an HMAC keyed with something public.

This module knows the protocol, not telerad's accounts: it answers who the
provider says the person is (:class:`Identity`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

ALGORITHMS = ("RS256", "ES256")
#: Discovery and keys are fetched again after this long (keys also on an unknown ``kid``).
CACHE_SECONDS = 3600.0
#: Clock difference tolerated between the provider and this machine.
LEEWAY_SECONDS = 60
TIMEOUT_SECONDS = 10.0


class OidcError(Exception):
    """The sign-in cannot go on. The message is safe to show and to audit: it never
    holds a code, a token or a secret."""


@dataclass(frozen=True)
class Authorization:
    """Where to send the browser, and what to keep until it comes back."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class Identity:
    """The person the provider vouches for."""

    issuer: str
    sub: str
    claims: dict[str, Any]

    @property
    def subject(self) -> str:
        """Unique across providers: ``issuer|sub`` (stored as the account's oidc_subject)."""
        return f"{self.issuer.rstrip('/')}|{self.sub}"

    def claim(self, name: str) -> str | None:
        value = self.claims.get(name)
        return value if isinstance(value, str) and value else None

    @property
    def amr(self) -> tuple[str, ...]:
        """Authentication methods the provider used (RFC 8176: pwd, mfa, otp, hwk…)."""
        value = self.claims.get("amr")
        if not isinstance(value, list):
            return ()
        return tuple(v for v in value if isinstance(v, str))


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


class OidcProvider:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None = None,
        scopes: str = "openid email profile",
        http: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret or None
        scope_list = scopes.split()
        self.scopes = " ".join(scope_list if "openid" in scope_list else ["openid", *scope_list])
        self.http = http or requests.Session()
        self.clock = clock
        self._lock = threading.Lock()
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None

    # -- discovery and keys ---------------------------------------------------------------
    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self.http.get(
                url, timeout=TIMEOUT_SECONDS, headers={"Accept": "application/json"}
            )
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OidcError(f"the identity provider's {what} could not be read") from exc
        if not isinstance(body, dict):
            raise OidcError(f"the identity provider's {what} is not a JSON object")
        return body

    def metadata(self) -> dict[str, Any]:
        """The provider's configuration (OpenID Connect Discovery 1.0), cached."""
        with self._lock:
            cached = self._metadata
        if cached is not None and self.clock() - cached[0] < CACHE_SECONDS:
            return cached[1]
        body = self._get_json(discovery_url(self.issuer), "configuration")
        if str(body.get("issuer", "")).rstrip("/") != self.issuer.rstrip("/"):
            raise OidcError("the identity provider names another issuer than the one configured")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(body.get(key), str):
                raise OidcError(f"the identity provider's configuration lacks {key}")
        with self._lock:
            self._metadata = (self.clock(), body)
        return body

    def _key_set(self, refresh: bool = False) -> KeySet:
        with self._lock:
            cached = self._keys
        if not refresh and cached is not None and self.clock() - cached[0] < CACHE_SECONDS:
            return cached[1]
        body = self._get_json(str(self.metadata()["jwks_uri"]), "keys")
        try:
            keys = KeySet.import_key_set(cast(Any, body))
        except (JoseError, KeyError, TypeError, ValueError) as exc:
            raise OidcError("the identity provider's keys could not be read") from exc
        with self._lock:
            self._keys = (self.clock(), keys)
        return keys

    # -- the two legs of the flow ------------------------------------------------------------
    def _client(self, redirect_uri: str) -> OAuth2Session:
        methods = self.metadata().get("token_endpoint_auth_methods_supported") or []
        if self.client_secret is None:
            method = "none"  # a public client: PKCE alone binds the code to us
        elif "client_secret_basic" not in methods and "client_secret_post" in methods:
            method = "client_secret_post"
        else:
            method = "client_secret_basic"  # the default of RFC 8414 and OIDC Discovery
        return OAuth2Session(
            self.client_id,
            self.client_secret,
            token_endpoint_auth_method=method,
            scope=self.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            default_timeout=TIMEOUT_SECONDS,
        )

    def authorize(self, redirect_uri: str) -> Authorization:
        """A fresh authorization request (new state, nonce and PKCE verifier)."""
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters (RFC 7636: 43-128)
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                str(self.metadata()["authorization_endpoint"]),
                state=state,
                code_verifier=verifier,
                nonce=nonce,
            )
        return Authorization(str(url), state, nonce, verifier)

    def redeem(self, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> Identity:
        """Exchange the code (with the PKCE verifier) and check the ID token that comes back."""
        with self._client(redirect_uri) as client:
            try:
                token = client.fetch_token(
                    str(self.metadata()["token_endpoint"]),
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
            except OAuthError as exc:  # the provider's error code, never its description
                error = exc.error if isinstance(exc.error, str) and exc.error.isascii() else ""
                reason = f" ({error[:64]})" if error else ""
                raise OidcError(f"the identity provider refused the code{reason}") from exc
            except (requests.RequestException, ValueError) as exc:
                raise OidcError("the identity provider's token endpoint failed") from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the identity provider sent no ID token")
        access_token = token.get("access_token")
        return self.verify_id_token(
            id_token, nonce, access_token if isinstance(access_token, str) else None
        )

    # -- the ID token ---------------------------------------------------------------------------
    def verify_id_token(
        self, id_token: str, nonce: str, access_token: str | None = None
    ) -> Identity:
        """Signature (RS256/ES256, the provider's keys), iss, aud, azp, exp, iat, nonce,
        at_hash; else :class:`OidcError`."""
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(), algorithms=ALGORITHMS)
            except InvalidKeyIdError:  # the provider may have rotated its keys: ask once
                decoded = jwt.decode(id_token, self._key_set(refresh=True), algorithms=ALGORITHMS)
        except JoseError as exc:
            raise OidcError("the ID token's signature is not valid") from exc
        issuer = str(self.metadata()["issuer"])
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": issuer},
                "aud": {"essential": True, "value": self.client_id},
                "sub": {"essential": True},
            },
            params={"nonce": nonce, "client_id": self.client_id, "access_token": access_token},
        )
        try:
            claims.validate(now=int(self.clock()), leeway=LEEWAY_SECONDS)
        except ExpiredTokenError as exc:
            raise OidcError("the ID token has expired") from exc
        except ClaimError as exc:
            raise OidcError(f"the ID token's {exc.claim} claim is not valid") from exc
        except JoseError as exc:
            raise OidcError("the ID token is not valid") from exc
        sub = decoded.claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255 - len(issuer) - 1:
            raise OidcError("the ID token's sub claim is not valid")
        return Identity(issuer, sub, dict(decoded.claims))
