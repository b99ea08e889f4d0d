"""Sign-in and who is asking: passwords, TOTP, lockout, bearer tokens, browser sessions.

* passwords are argon2id hashes (argon2-cffi's defaults, RFC 9106's second choice);
* a TOTP second factor (RFC 6238, pyotp); each code is accepted once;
* repeated failures lock the account for a while (:class:`LockoutPolicy`);
* bearer tokens are short-lived JWTs (HS256 with the platform secret) carrying the
  user, scopes and the account's token version: changing the password, disabling the
  account or revoking bumps the version and every older token stops working;
* browser sessions are random cookies (only their SHA-256 is stored) that expire when
  idle; signing actions ask for a recent sign-in (:meth:`AuthService.require_recent`).

Every sign-in, success or failure, is audited (User Authentication, PS3.15 A.5.3.15).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import jwt
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

from telerad.domain.audit import EventID, Outcome
from telerad.domain.identity import (
    OPEN_ACCESS,
    BreakGlassGrant,
    LockoutPolicy,
    Permission,
    Principal,
    Role,
    User,
    check_account,
    principal_for,
)
from telerad.services.audit import AuditService

ISSUER = "telerad"
AUDIENCE = "telerad-api"
ALGORITHM = "HS256"
MIN_PASSWORD = 10


class AuthError(Exception):
    """A request that is not authenticated (HTTP 401); the message is safe to show."""


class Forbidden(Exception):
    """Authenticated, but not allowed (HTTP 403)."""


class SessionRecord(Protocol):
    @property
    def user_id(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def last_seen(self) -> datetime: ...
    @property
    def auth_time(self) -> datetime: ...


class IdentityStore(Protocol):
    def add_user(
        self,
        username: str,
        role: Role,
        facility_id: int | None = ...,
        password_hash: str | None = ...,
        display_name: str = ...,
    ) -> User: ...
    def user_by_name(self, username: str) -> User | None: ...
    def user_by_id(self, user_id: int) -> User | None: ...
    def user_by_oidc_subject(self, subject: str) -> User | None: ...
    def credentials(self, user_id: int) -> tuple[str | None, str | None]: ...
    def count_users(self) -> int: ...
    def update_user(self, user_id: int, **values: object) -> None: ...
    def set_password(self, user_id: int, password_hash: str) -> None: ...
    def revoke_tokens(self, user_id: int) -> None: ...
    def privileges(self, user_id: int) -> frozenset[int]: ...
    def grant_privileges(self, user_id: int, facility_ids: Sequence[int]) -> None: ...
    def revoke_privileges(self, user_id: int, facility_ids: Sequence[int]) -> None: ...
    def add_licences(self, user_id: int, jurisdictions: Sequence[str]) -> None: ...
    def licences(self, user_id: int) -> frozenset[str]: ...
    def list_users(self) -> list[User]: ...
    def add_session(self, token_sha256: str, user_id: int, now: datetime, source: str) -> None: ...
    def session(self, token_sha256: str) -> SessionRecord | None: ...
    def touch_session(
        self, token_sha256: str, last_seen: datetime, auth_time: datetime | None = ...
    ) -> None: ...
    def delete_session(self, token_sha256: str) -> None: ...
    def add_break_glass(
        self, user_id: int, study_uid: str, reason: str, now: datetime, expires: datetime
    ) -> None: ...
    def active_break_glass(self, user_id: int, now: datetime) -> frozenset[str]: ...
    def break_glass_grants(self, since: datetime) -> list[BreakGlassGrant]: ...


@dataclass(frozen=True)
class AuthPolicy:
    token_lifetime: timedelta = timedelta(hours=1)
    max_token_lifetime: timedelta = timedelta(days=30)  # service accounts (edge gateways)
    session_idle: timedelta = timedelta(minutes=30)
    session_max: timedelta = timedelta(hours=12)
    #: A signing action needs a sign-in at most this old.
    recent_auth: timedelta = timedelta(minutes=5)
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    #: Roles that may not sign in without a second factor.
    mfa_roles: frozenset[Role] = frozenset({Role.NETWORK_ADMIN})
    break_glass_max: timedelta = timedelta(hours=4)


@dataclass
class _Cached:
    until: float
    user: User
    privileges: frozenset[int]
    break_glass: frozenset[str]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    #: How long an account's scope is cached (a revoked privilege applies within this).
    CACHE_SECONDS = 5.0

    def __init__(
        self,
        identity: IdentityStore,
        secret: bytes,
        audit: AuditService,
        policy: AuthPolicy | None = None,
        clock: Callable[[], datetime] = _utcnow,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.identity = identity
        self.audit = audit
        self.policy = policy or AuthPolicy()
        self.clock = clock
        self._signing_key = hashlib.sha256(b"telerad-jwt\0" + secret).digest()
        fernet_key = hashlib.sha256(b"telerad-totp\0" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(fernet_key))
        self._derive_root = hashlib.sha256(b"telerad-derive\0" + secret).digest()
        # argon2-cffi's defaults; tests pass cheaper parameters (a default hash takes ~0.4 s).
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(8))
        self._cache: dict[int, _Cached] = {}
        self._users_known: tuple[float, bool] = (0.0, False)
        self._last_totp: dict[int, int] = {}
        self._lock = threading.Lock()

    # -- accounts ---------------------------------------------------------------------
    def has_users(self) -> bool:
        """Whether any account exists (checked every 2 s; once true it stays true)."""
        checked, known = self._users_known
        if known or time.monotonic() - checked < 2.0:
            return known
        known = self.identity.count_users() > 0
        self._users_known = (time.monotonic(), known)
        return known

    def check_password_rules(self, username: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
        if password.lower() == username.lower():
            raise ValueError("the password must not be the user name")

    def create_user(
        self,
        username: str,
        role: Role,
        facility_id: int | None = None,
        password: str | None = None,
        display_name: str = "",
    ) -> User:
        username = username.strip()
        if not username or len(username) > 128 or any(c.isspace() for c in username):
            raise ValueError("a user name is 1-128 characters without spaces")
        check_account(role, facility_id)
        hashed = None
        if password is not None:
            self.check_password_rules(username, password)
            hashed = self._hasher.hash(password)
        if self.identity.user_by_name(username) is not None:
            raise ValueError(f"user {username} already exists")
        user = self.identity.add_user(username, role, facility_id, hashed, display_name)
        self._users_known = (time.monotonic(), True)
        return user

    def set_password(self, user: User, password: str) -> None:
        self.check_password_rules(user.username, password)
        self.identity.set_password(user.id, self._hasher.hash(password))
        self.forget(user.id)

    def enroll_totp(self, user: User) -> str:
        """A new TOTP seed for ``user``; returns the otpauth:// URI for an authenticator app."""
        seed = pyotp.random_base32()
        self.identity.update_user(user.id, totp_secret=self._fernet.encrypt(seed.encode()).decode())
        self.forget(user.id)
        return pyotp.TOTP(seed).provisioning_uri(name=user.username, issuer_name="telerad")

    def disable(self, user: User) -> None:
        self.identity.update_user(user.id, disabled=1)
        self.identity.revoke_tokens(user.id)
        self.forget(user.id)

    def revoke(self, user: User) -> None:
        self.identity.revoke_tokens(user.id)
        self.forget(user.id)

    def forget(self, user_id: int) -> None:
        with self._lock:
            self._cache.pop(user_id, None)

    # -- sign-in ----------------------------------------------------------------------
    def sign_in(self, username: str, password: str, code: str | None, source: str = "") -> User:
        """The user whose password (and TOTP code, when enrolled) these are; else AuthError.

        The error never tells which part was wrong, nor whether the account exists.
        """
        now = self.clock()
        user = self.identity.user_by_name(username.strip())
        failure = "sign-in failed: wrong user name, password or code, or the account is locked"
        if user is None:
            self._verify(self._dummy_hash, password)  # same time as a real account
            self._audit_sign_in(username, None, source, False, "unknown account")
            raise AuthError(failure)
        lockout = self.policy.lockout
        if user.disabled or lockout.is_locked(user, now):
            self._audit_sign_in(username, user, source, False, "disabled or locked")
            raise AuthError(failure)
        password_hash, totp_secret = self.identity.credentials(user.id)
        ok = password_hash is not None and self._verify(password_hash, password)
        why = "wrong password"
        if ok and totp_secret is not None:
            ok = self._check_totp(user.id, totp_secret, code)
            why = "wrong or reused second-factor code"
        if not ok:
            failures, locked = lockout.after_failure(user.failed_logins, now)
            self.identity.update_user(user.id, failed_logins=failures, locked_until=locked)
            detail = why + ("; account locked" if locked else "")
            self._audit_sign_in(username, user, source, False, detail)
            raise AuthError(failure)
        if totp_secret is None and user.role in self.policy.mfa_roles:
            self._audit_sign_in(username, user, source, False, "second factor not enrolled")
            raise AuthError(
                f"a {user.role} account needs a second factor: "
                f"enrol one with `telerad user totp {user.username}`"
            )
        if user.failed_logins or user.locked_until:
            self.identity.update_user(user.id, failed_logins=0, locked_until=None)
        if password_hash is not None and self._hasher.check_needs_rehash(password_hash):
            self.identity.update_user(user.id, password_hash=self._hasher.hash(password))
        self._audit_sign_in(
            username, user, source, True, "password" + (" + TOTP" if totp_secret else "")
        )
        return user

    def sign_in_federated(
        self, subject: str, username: str | None, source: str = "", how: str = "oidc"
    ) -> User:
        """The account of a person an identity provider vouches for; else Forbidden.

        Found by ``subject`` (``issuer|sub``) when linked, else by ``username`` matching a
        telerad account that is not linked yet (which is then linked). No account is ever
        created here: roles and facilities are telerad's. No telerad TOTP is asked for:
        the provider is responsible for the second factor. Audited either way.
        """
        shown = username or subject
        user = self.identity.user_by_oidc_subject(subject)
        if user is None and username:
            user = self.identity.user_by_name(username)
            if user is not None and user.oidc_subject not in (None, subject):
                self.audit_sign_in(shown, user, source, False, f"{how}: linked to another identity")
                raise Forbidden(f"the telerad account {username} belongs to another identity")
            if user is not None and not user.disabled:
                self.identity.update_user(user.id, oidc_subject=subject)
                self.forget(user.id)
                how += ", linked"
        if user is None:
            self.audit_sign_in(shown, None, source, False, f"{how}: no account for {subject}")
            raise Forbidden(f"no telerad account for {shown}")
        if user.disabled:
            self.audit_sign_in(user.username, user, source, False, f"{how}: account disabled")
            raise Forbidden(f"the telerad account {user.username} is disabled")
        self.audit_sign_in(user.username, user, source, True, how)
        return user

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _check_totp(self, user_id: int, encrypted: str, code: str | None) -> bool:
        if not code or not code.strip().isdigit():
            return False
        try:
            seed = self._fernet.decrypt(encrypted.encode()).decode()
        except InvalidToken:
            return False
        totp = pyotp.TOTP(seed)
        now = self.clock().timestamp()
        for drift in (0, -1, 1):  # one step of clock drift either way
            counter = int(now // totp.interval) + drift
            if secrets.compare_digest(totp.generate_otp(counter), code.strip()):
                with self._lock:
                    if self._last_totp.get(user_id, -1) >= counter:
                        return False  # each code once
                    self._last_totp[user_id] = counter
                return True
        return False

    def audit_sign_in(
        self, username: str, user: User | None, source: str, ok: bool, detail: str
    ) -> None:
        """Record a sign-in attempt (User Authentication) made elsewhere, e.g. over OIDC."""
        self._audit_sign_in(username, user, source, ok, detail)

    def _audit_sign_in(
        self, username: str, user: User | None, source: str, ok: bool, detail: str
    ) -> None:
        self.audit.record(
            EventID.USER_AUTHENTICATION,
            username[:255],
            actor_role=user.role.value if user else "",
            actor_is_user=True,
            outcome=Outcome.SUCCESS if ok else Outcome.MINOR_FAILURE,
            source_address=source,
            detail=("login: " if ok else "login failed: ") + detail,
        )

    def derive_key(self, purpose: str) -> bytes:
        """32 bytes derived from the platform secret for ``purpose`` (e.g. a sealed cookie)."""
        return hashlib.sha256(self._derive_root + purpose.encode()).digest()

    # -- bearer tokens -------------------------------------------------------------------
    def issue_token(
        self,
        user: User,
        permissions: frozenset[Permission] | None = None,
        lifetime: timedelta | None = None,
    ) -> str:
        lifetime = lifetime or self.policy.token_lifetime
        if lifetime > self.policy.max_token_lifetime or lifetime <= timedelta(0):
            raise ValueError(f"a token lives between 1 minute and {self.policy.max_token_lifetime}")
        if user.disabled:
            raise ValueError(f"user {user.username} is disabled")
        principal = principal_for(user, frozenset(), permissions)
        now = self.clock()
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user.username,
            "uid": user.id,
            "ver": user.token_version,
            "scope": " ".join(sorted(p.value for p in principal.permissions)),
            "iat": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._signing_key, algorithm=ALGORITHM)

    def principal_from_token(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._signing_key,
                algorithms=[ALGORITHM],  # never "none", never an algorithm the token picks
                audience=AUDIENCE,
                issuer=ISSUER,
                # Times are checked below against the service's clock.
                options={
                    "require": ["exp", "iat", "sub", "uid", "ver", "scope"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise AuthError("the bearer token is not valid") from exc
        now = self.clock().timestamp()
        if not isinstance(claims["exp"], int) or now >= claims["exp"]:
            raise AuthError("the bearer token has expired")
        if not isinstance(claims["iat"], int) or claims["iat"] > now + 60:
            raise AuthError("the bearer token is not valid")
        cached = self._account(int(claims["uid"]))
        if cached is None or cached.user.token_version != claims["ver"]:
            raise AuthError("the bearer token has been revoked")
        wanted = frozenset(Permission(s) for s in str(claims["scope"]).split() if s in _SCOPES)
        return principal_for(
            cached.user,
            cached.privileges,
            wanted,
            method="token",
            auth_time=datetime.fromtimestamp(int(claims["iat"]), UTC),
            break_glass=cached.break_glass,
        )

    def _account(self, user_id: int) -> _Cached | None:
        """An enabled account with its privileges and break-glass grants (cached briefly)."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(user_id)
        if hit is not None and hit.until > now:
            return hit
        user = self.identity.user_by_id(user_id)
        if user is None or user.disabled:
            return None
        entry = _Cached(
            now + self.CACHE_SECONDS,
            user,
            self.identity.privileges(user.id) if user.role is Role.RADIOLOGIST else frozenset(),
            self.identity.active_break_glass(user.id, self.clock()),
        )
        with self._lock:
            self._cache[user_id] = entry
        return entry

    # -- browser sessions ------------------------------------------------------------------
    def start_session(self, user: User, source: str = "") -> str:
        """A new session for ``user``; returns the cookie value."""
        token = secrets.token_urlsafe(32)
        self.identity.add_session(_digest(token), user.id, self.clock(), source)
        return token

    def principal_from_session(self, token: str, *, touch: bool = True) -> Principal:
        """The session's principal. A request the person made (``touch``) keeps the
        session alive; a page's own background polling does not, so that an idle
        reader's session ends (and their studies are handed on) even with a page open."""
        key = _digest(token)
        row = self._live_session(key)
        now = self.clock()
        if touch and now - row.last_seen > timedelta(minutes=1):  # not one write per request
            self.identity.touch_session(key, now)
        cached = self._account(row.user_id)
        if cached is None:
            raise AuthError("not signed in")
        return principal_for(
            cached.user,
            cached.privileges,
            method="session",
            auth_time=row.auth_time,
            break_glass=cached.break_glass,
        )

    def _live_session(self, key: str) -> SessionRecord:
        row = self.identity.session(key)
        now = self.clock()
        if row is None:
            raise AuthError("not signed in")
        if now - row.last_seen > self.policy.session_idle or now - row.created_at > (
            self.policy.session_max
        ):
            self.identity.delete_session(key)
            raise AuthError("the session has expired; sign in again")
        return row

    def session_left(self, token: str) -> timedelta:
        """How long the session lasts without another request by the person (the idle
        limit or, sooner, its maximum age); AuthError when it has ended."""
        row = self._live_session(_digest(token))
        now = self.clock()
        idle = row.last_seen + self.policy.session_idle - now
        return min(idle, row.created_at + self.policy.session_max - now)

    def keep_session(self, token: str) -> timedelta:
        """The person asked to stay signed in: the idle clock starts again."""
        key = _digest(token)
        self._live_session(key)
        self.identity.touch_session(key, self.clock())
        return self.session_left(token)

    def end_session(self, token: str) -> None:
        self.identity.delete_session(_digest(token))

    def reauthenticate(
        self, session_token: str, password: str, code: str | None, source: str = ""
    ) -> None:
        """Prove again who is at the keyboard before a signing action."""
        principal = self.principal_from_session(session_token)
        self.sign_in(principal.username, password, code, source)
        self.identity.touch_session(_digest(session_token), self.clock(), self.clock())

    def require_recent(self, principal: Principal) -> None:
        """Refuse a signing action unless the person signed in within the last minutes."""
        if principal.method == "open":
            return
        if principal.auth_time is None or self.clock() - principal.auth_time > (
            self.policy.recent_auth
        ):
            raise Forbidden("sign in again to confirm this action (re-authentication required)")

    # -- break-glass -------------------------------------------------------------------------
    def break_glass(
        self, principal: Principal, study_uid: str, reason: str, lifetime: timedelta
    ) -> datetime:
        """Open one study beyond ``principal``'s scope for a while, with a reason; audited."""
        if principal.user_id is None or principal.role in (Role.SERVICE, Role.AUDITOR, None):
            raise Forbidden("break-glass access is for people who read or care for patients")
        if len(reason.strip()) < 10:
            raise ValueError("break-glass access needs a reason (at least 10 characters)")
        if lifetime <= timedelta(0) or lifetime > self.policy.break_glass_max:
            raise ValueError(f"break-glass access lasts at most {self.policy.break_glass_max}")
        now = self.clock()
        expires = now + lifetime
        self.identity.add_break_glass(principal.user_id, study_uid, reason.strip(), now, expires)
        self.forget(principal.user_id)
        self.audit.record(
            EventID.SECURITY_ALERT,
            principal.username,
            actor_role=principal.role.value if principal.role else "",
            actor_is_user=True,
            study_uid=study_uid,
            detail=f"break-glass until {expires.isoformat(timespec='seconds')}: {reason.strip()}",
        )
        return expires

    def break_glass_report(self, days: int) -> list[BreakGlassGrant]:
        """Every break-glass grant of the last ``days`` (1 to 3660), for the auditors."""
        since = self.clock() - timedelta(days=max(1, min(days, 3660)))
        return self.identity.break_glass_grants(since)


_SCOPES = {p.value for p in Permission}

__all__ = ["OPEN_ACCESS", "AuthError", "AuthPolicy", "AuthService", "Forbidden"]
