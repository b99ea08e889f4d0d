"""Sign-in, tokens and sessions against the real index (SQLite; one pass on PostgreSQL)."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta

import jwt
import pyotp
import pytest

from telerad.bootstrap import Platform
from telerad.domain.audit import EventID, Outcome
from telerad.domain.identity import Permission, Role
from telerad.services.auth import AuthError, AuthService, Forbidden
from telerad.storage.secret import KEY_FILE

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(platform: Platform) -> Clock:
    c = Clock()
    platform.auth.clock = c
    return c


def _seed(auth: AuthService) -> tuple[str, str]:
    """(encrypted seed as stored, plain base32 seed) of a fresh enrolment for 'rad'."""
    user = auth.identity.user_by_name("rad")
    assert user is not None
    uri = auth.enroll_totp(user)
    secret = uri.split("secret=")[1].split("&")[0]
    stored = auth.identity.credentials(user.id)[1]
    assert stored is not None
    return stored, secret


def _audit(platform: Platform) -> list[tuple[str, int, str]]:
    return [(r.event_id, r.outcome, r.detail) for r in platform.audit.repository.records()]


def test_password_sign_in_and_generic_failures(platform: Platform, clock: Clock) -> None:
    auth = platform.auth
    assert not auth.has_users()
    auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)
    assert auth.sign_in("rad", PASSWORD, None).username == "rad"
    with pytest.raises(AuthError) as wrong:
        auth.sign_in("rad", "not the password", None)
    with pytest.raises(AuthError) as unknown:
        auth.sign_in("nobody", "not the password", None)
    assert str(wrong.value) == str(unknown.value)  # no hint whether the account exists
    events = _audit(platform)
    assert [e[:2] for e in events] == [
        (EventID.USER_AUTHENTICATION.code, Outcome.SUCCESS),
        (EventID.USER_AUTHENTICATION.code, Outcome.MINOR_FAILURE),
        (EventID.USER_AUTHENTICATION.code, Outcome.MINOR_FAILURE),
    ]
    stored, _ = auth.identity.credentials(auth.identity.user_by_name("rad").id)  # type: ignore[union-attr]
    assert stored is not None and stored.startswith("$argon2id$")
    assert PASSWORD not in json.dumps(events)


def test_weak_passwords_and_bad_accounts_are_refused(platform: Platform) -> None:
    auth = platform.auth
    with pytest.raises(ValueError, match="at least"):
        auth.create_user("rad", Role.RADIOLOGIST, password="short")
    with pytest.raises(ValueError, match="user name"):
        auth.create_user("radiologist1", Role.RADIOLOGIST, password="radiologist1")
    with pytest.raises(ValueError, match="needs a facility"):
        auth.create_user("tech", Role.FACILITY_USER, password=PASSWORD)


def test_lockout_after_repeated_failures(platform: Platform, clock: Clock) -> None:
    auth = platform.auth
    auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)
    for _ in range(auth.policy.lockout.max_failures):
        with pytest.raises(AuthError):
            auth.sign_in("rad", "guess guess guess", None)
    with pytest.raises(AuthError):  # locked: even the right password fails now
        auth.sign_in("rad", PASSWORD, None)
    clock.now += auth.policy.lockout.lock_for + timedelta(seconds=1)
    assert auth.sign_in("rad", PASSWORD, None).username == "rad"
    assert any("account locked" in detail for _, _, detail in _audit(platform))


def test_totp_second_factor_once_per_code(platform: Platform, clock: Clock) -> None:
    auth = platform.auth
    auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)
    stored, secret = _seed(auth)
    assert secret not in stored  # the seed is kept encrypted
    code = pyotp.TOTP(secret).at(clock.now)
    with pytest.raises(AuthError):
        auth.sign_in("rad", PASSWORD, None)  # enrolled: the code is required
    with pytest.raises(AuthError):
        auth.sign_in("rad", PASSWORD, "000000" if code != "000000" else "111111")
    assert auth.sign_in("rad", PASSWORD, code).username == "rad"
    with pytest.raises(AuthError):
        auth.sign_in("rad", PASSWORD, code)  # replayed
    clock.now += timedelta(seconds=30)
    assert auth.sign_in("rad", PASSWORD, pyotp.TOTP(secret).at(clock.now)).username == "rad"


def test_network_admin_needs_a_second_factor(platform: Platform) -> None:
    auth = platform.auth
    auth.create_user("boss", Role.NETWORK_ADMIN, password=PASSWORD)
    with pytest.raises(AuthError, match="second factor"):
        auth.sign_in("boss", PASSWORD, None)


def test_tokens_carry_scope_and_expire(platform: Platform, clock: Clock) -> None:
    auth = platform.auth
    hospital = platform.index.add_facility("Hospital")
    user = auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)
    platform.identity.grant_privileges(user.id, [hospital.id])
    token = auth.issue_token(user, frozenset({Permission.READ}), timedelta(minutes=5))
    who = auth.principal_from_token(token)
    assert who.username == "rad" and who.facility_ids == frozenset({hospital.id})
    assert who.permissions == frozenset({Permission.READ})
    # Scopes beyond the role are dropped, not granted.
    wide = auth.principal_from_token(auth.issue_token(user, frozenset(Permission)))
    assert Permission.ADMIN not in wide.permissions
    clock.now += timedelta(minutes=6)
    with pytest.raises(AuthError, match="expired"):
        auth.principal_from_token(token)


def _forge(claims: dict[str, object], key: bytes, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def test_forged_tokens_are_refused(platform: Platform, clock: Clock) -> None:
    auth = platform.auth
    user = auth.create_user("admin2", Role.SERVICE, password=PASSWORD)
    good = auth.issue_token(user)
    claims = jwt.decode(good, options={"verify_signature": False})
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = [
        f"{header}.{body}.",  # alg none
        _forge(claims, b"not the platform secret at all, 32+ bytes"),  # wrong key
        good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),  # tampered signature
        _forge({**claims, "aud": "someone-else"}, auth._signing_key),  # wrong audience
        good + "x",
        "garbage",
    ]
    for token in forged:
        with pytest.raises(AuthError):
            auth.principal_from_token(token)
    assert auth.principal_from_token(good).username == "admin2"


def test_password_change_and_disabling_revoke_tokens(platform: Platform, clock: Clock) -> None:
    auth = platform.auth
    user = auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)
    token = auth.issue_token(user)
    auth.set_password(user, "another long password")
    with pytest.raises(AuthError, match="revoked"):
        auth.principal_from_token(token)
    fresh = auth.issue_token(auth.identity.user_by_name("rad"))  # type: ignore[arg-type]
    assert auth.principal_from_token(fresh).username == "rad"
    auth.disable(auth.identity.user_by_name("rad"))  # type: ignore[arg-type]
    with pytest.raises(AuthError):
        auth.principal_from_token(fresh)
    with pytest.raises(AuthError):
        auth.sign_in("rad", "another long password", None)


def test_sessions_expire_when_idle_and_signing_needs_recent_sign_in(
    platform: Platform, clock: Clock
) -> None:
    auth = platform.auth
    user = auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)
    cookie = auth.start_session(user, "10.0.0.1")
    who = auth.principal_from_session(cookie)
    auth.require_recent(who)
    clock.now += timedelta(minutes=10)
    who = auth.principal_from_session(cookie)
    with pytest.raises(Forbidden):
        auth.require_recent(who)
    auth.reauthenticate(cookie, PASSWORD, None)
    auth.require_recent(auth.principal_from_session(cookie))
    clock.now += auth.policy.session_idle + timedelta(seconds=1)
    with pytest.raises(AuthError, match="expired"):
        auth.principal_from_session(cookie)
    with pytest.raises(AuthError):
        auth.principal_from_session("made-up-cookie")


def test_break_glass_is_reasoned_bounded_and_audited(platform: Platform, clock: Clock) -> None:
    auth = platform.auth
    user = auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)
    who = auth.principal_from_token(auth.issue_token(user))
    assert who.facility_ids == frozenset()
    with pytest.raises(ValueError, match="reason"):
        auth.break_glass(who, "1.2.3", "because", timedelta(minutes=30))
    with pytest.raises(ValueError, match="at most"):
        auth.break_glass(who, "1.2.3", "trauma patient transferred", timedelta(hours=9))
    auth.break_glass(who, "1.2.3", "trauma patient transferred", timedelta(minutes=30))
    who = auth.principal_from_token(auth.issue_token(user))
    assert who.sees(999, "1.2.3") and not who.sees(999, "1.2.4")
    assert any(
        e[0] == EventID.SECURITY_ALERT.code and "trauma patient transferred" in e[2]
        for e in _audit(platform)
    )
    clock.now += timedelta(minutes=31)
    auth.forget(user.id)
    assert not auth.principal_from_token(auth.issue_token(user)).sees(999, "1.2.3")


def test_secret_file_is_private(platform: Platform) -> None:
    path = platform.settings.data_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.postgres
def test_accounts_on_postgresql(pg_platform: Platform) -> None:
    auth = pg_platform.auth
    facility = pg_platform.index.add_facility("PG Hospital", "PGH", host="10.0.0.0/24")
    user = auth.create_user("pgrad", Role.RADIOLOGIST, password=PASSWORD)
    pg_platform.identity.grant_privileges(user.id, [facility.id])
    pg_platform.identity.add_licences(user.id, ["US-CA", "US-CA", "GB"])
    assert pg_platform.identity.licences(user.id) == frozenset({"US-CA", "GB"})
    signed = auth.sign_in("pgrad", PASSWORD, None)
    who = auth.principal_from_token(auth.issue_token(signed))
    assert who.facility_ids == frozenset({facility.id})
    cookie = auth.start_session(signed, "10.0.0.9")
    assert auth.principal_from_session(cookie).username == "pgrad"
    assert pg_platform.index.facility_by_ae("PGH").host == "10.0.0.0/24"  # type: ignore[union-attr]
