"""Sign-in and who is asking (services/auth.py) over fake stores: passwords, lockout,
TOTP, a second factor where the role needs one, bearer tokens, browser sessions
with their idle and maximum ages (``session_left``, ``keep_session``), signing
actions, break-glass and federated sign-in. Passwords are hashed with argon2id at
its cheapest parameters (tests/fakes/world.CHEAP_HASHER)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pyotp
import pytest
from argon2 import PasswordHasher
from tests.fakes.world import CHEAP_HASHER, World, world

from telerad.domain.audit import EventID, Outcome
from telerad.domain.identity import Permission, Role, User
from telerad.services.auth import AuthError, AuthService, Forbidden

PASSWORD = "correct horse battery"


@pytest.fixture
def w() -> World:
    return world()


@pytest.fixture
def auth(w: World) -> AuthService:
    return w.auth


def _rad(auth: AuthService) -> User:
    return auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)


def _sign_ins(w: World) -> list[tuple[int, str]]:
    return [
        (r.outcome, r.detail)
        for r in w.stores.audit.records()
        if r.event_id == EventID.USER_AUTHENTICATION.code
    ]


def _enrol(auth: AuthService, user: User) -> str:
    """The plain base32 seed of a fresh enrolment."""
    return auth.enroll_totp(user).split("secret=")[1].split("&")[0]


def test_a_password_signs_in_and_every_failure_reads_the_same(w: World, auth: AuthService) -> None:
    assert not auth.has_users()
    _rad(auth)
    assert auth.has_users()
    assert auth.sign_in(" rad ", PASSWORD, None, "10.0.0.1").username == "rad"
    with pytest.raises(AuthError) as wrong:
        auth.sign_in("rad", "not the password", None)
    with pytest.raises(AuthError) as unknown:
        auth.sign_in("nobody", "not the password", None)
    assert str(wrong.value) == str(unknown.value)  # no hint whether the account exists
    assert _sign_ins(w) == [
        (Outcome.SUCCESS, "login: password"),
        (Outcome.MINOR_FAILURE, "login failed: wrong password"),
        (Outcome.MINOR_FAILURE, "login failed: unknown account"),
    ]
    stored, _ = w.stores.identity.credentials(auth.identity.user_by_name("rad").id)  # type: ignore[union-attr]
    assert stored is not None and stored.startswith("$argon2id$")
    assert PASSWORD not in json.dumps([r.detail for r in w.stores.audit.records()])


def test_weak_passwords_and_bad_accounts_are_refused(auth: AuthService) -> None:
    with pytest.raises(ValueError, match="at least"):
        auth.create_user("rad", Role.RADIOLOGIST, password="short")
    with pytest.raises(ValueError, match="must not be the user name"):
        auth.create_user("radiologist1", Role.RADIOLOGIST, password="RADIOLOGIST1")
    with pytest.raises(ValueError, match="without spaces"):
        auth.create_user("dr rad", Role.RADIOLOGIST, password=PASSWORD)
    with pytest.raises(ValueError, match="needs a facility"):
        auth.create_user("tech", Role.FACILITY_USER, password=PASSWORD)
    _rad(auth)
    with pytest.raises(ValueError, match="already exists"):
        auth.create_user("rad", Role.AUDITOR, password=PASSWORD)
    assert auth.identity.count_users() == 1


def test_repeated_failures_lock_the_account_for_a_while(w: World, auth: AuthService) -> None:
    _rad(auth)
    lockout = auth.policy.lockout
    with pytest.raises(AuthError):
        auth.sign_in("rad", "guess guess guess", None)
    auth.sign_in("rad", PASSWORD, None)  # a success starts the count again
    assert auth.identity.user_by_name("rad").failed_logins == 0  # type: ignore[union-attr]
    for _ in range(lockout.max_failures):
        with pytest.raises(AuthError):
            auth.sign_in("rad", "guess guess guess", None)
    with pytest.raises(AuthError):  # locked: even the right password fails now
        auth.sign_in("rad", PASSWORD, None)
    assert _sign_ins(w)[-1] == (Outcome.MINOR_FAILURE, "login failed: disabled or locked")
    assert any("account locked" in detail for _, detail in _sign_ins(w))
    w.clock.now += lockout.lock_for + timedelta(seconds=1)
    assert auth.sign_in("rad", PASSWORD, None).username == "rad"
    assert auth.identity.user_by_name("rad").locked_until is None  # type: ignore[union-attr]


def test_a_totp_code_is_needed_once_enrolled_and_accepted_once(w: World, auth: AuthService) -> None:
    user = _rad(auth)
    secret = _enrol(auth, user)
    stored = w.stores.identity.credentials(user.id)[1]
    assert stored is not None and secret not in stored  # the seed is kept encrypted
    assert auth.identity.user_by_id(user.id).totp_enabled  # type: ignore[union-attr]
    totp = pyotp.TOTP(secret)
    with pytest.raises(AuthError):
        auth.sign_in("rad", PASSWORD, None)
    code = totp.at(w.clock())
    with pytest.raises(AuthError):
        auth.sign_in("rad", PASSWORD, "000000" if code != "000000" else "111111")
    assert auth.sign_in("rad", PASSWORD, code).username == "rad"
    assert _sign_ins(w)[-1] == (Outcome.SUCCESS, "login: password + TOTP")
    with pytest.raises(AuthError):
        auth.sign_in("rad", PASSWORD, code)  # replayed
    w.clock.after(seconds=30)
    late = totp.at(w.clock() - timedelta(seconds=30))  # one step of drift: still the last code
    with pytest.raises(AuthError):
        auth.sign_in("rad", PASSWORD, late)
    assert auth.sign_in("rad", PASSWORD, totp.at(w.clock() + timedelta(seconds=30))).username


def test_a_role_that_needs_a_second_factor_cannot_sign_in_without_one(auth: AuthService) -> None:
    boss = auth.create_user("boss", Role.NETWORK_ADMIN, password=PASSWORD)
    with pytest.raises(AuthError, match="needs a second factor"):
        auth.sign_in("boss", PASSWORD, None)
    secret = _enrol(auth, boss)
    assert auth.sign_in("boss", PASSWORD, pyotp.TOTP(secret).at(auth.clock())).username == "boss"


def test_a_hash_with_other_parameters_is_renewed_at_sign_in(w: World, auth: AuthService) -> None:
    user = _rad(auth)
    old = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1).hash(PASSWORD)
    w.stores.identity.update_user(user.id, password_hash=old)
    auth.sign_in("rad", PASSWORD, None)
    renewed = w.stores.identity.credentials(user.id)[0]
    assert renewed is not None and renewed != old and "m=8,t=1,p=1" in renewed
    auth.sign_in("rad", PASSWORD, None)  # the renewed hash verifies
    assert w.stores.identity.credentials(user.id)[0] == renewed


def test_tokens_carry_scope_and_expire(w: World, auth: AuthService) -> None:
    hospital = w.stores.index.add_facility("Hospital").id
    user = _rad(auth)
    w.stores.identity.grant_privileges(user.id, [hospital])
    token = auth.issue_token(user, frozenset({Permission.READ}), timedelta(minutes=5))
    who = auth.principal_from_token(token)
    assert (who.username, who.facility_ids, who.method) == ("rad", frozenset({hospital}), "token")
    assert who.permissions == frozenset({Permission.READ}) and who.auth_time == w.clock()
    wide = auth.principal_from_token(auth.issue_token(user, frozenset(Permission)))
    assert Permission.ADMIN not in wide.permissions  # scopes beyond the role are dropped
    w.clock.after(minutes=6)
    with pytest.raises(AuthError, match="expired"):
        auth.principal_from_token(token)
    with pytest.raises(ValueError, match="lives between"):
        auth.issue_token(user, lifetime=timedelta(days=31))
    with pytest.raises(ValueError, match="lives between"):
        auth.issue_token(user, lifetime=timedelta(seconds=-1))


def test_a_token_from_the_future_or_forged_is_refused(w: World, auth: AuthService) -> None:
    user = auth.create_user("gateway", Role.SERVICE, password=PASSWORD)
    good = auth.issue_token(user)
    claims = jwt.decode(good, options={"verify_signature": False})
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    key = auth._signing_key
    forged = [
        f"{header}.{body}.",  # alg none
        jwt.encode(claims, b"not the platform secret at all, 32+ bytes", algorithm="HS256"),
        jwt.encode({**claims, "aud": "someone-else"}, key, algorithm="HS256"),
        jwt.encode({**claims, "iat": claims["iat"] + 3600}, key, algorithm="HS256"),
        jwt.encode({k: v for k, v in claims.items() if k != "ver"}, key, algorithm="HS256"),
        good + "x",
        "garbage",
    ]
    for token in forged:
        with pytest.raises(AuthError):
            auth.principal_from_token(token)
    assert auth.principal_from_token(good).username == "gateway"


def test_a_new_password_disabling_or_revoking_ends_older_tokens(
    w: World, auth: AuthService
) -> None:
    user = _rad(auth)
    token = auth.issue_token(user)
    auth.set_password(user, "another long password")
    with pytest.raises(AuthError, match="revoked"):
        auth.principal_from_token(token)
    fresh = auth.issue_token(auth.identity.user_by_name("rad"))  # type: ignore[arg-type]
    assert auth.principal_from_token(fresh).username == "rad"
    auth.revoke(auth.identity.user_by_name("rad"))  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="revoked"):
        auth.principal_from_token(fresh)
    current = auth.identity.user_by_name("rad")
    assert current is not None
    latest = auth.issue_token(current)
    auth.disable(current)
    with pytest.raises(AuthError):
        auth.principal_from_token(latest)
    with pytest.raises(AuthError):
        auth.sign_in("rad", "another long password", None)
    with pytest.raises(ValueError, match="disabled"):
        auth.issue_token(auth.identity.user_by_name("rad"))  # type: ignore[arg-type]


def test_a_revoked_privilege_applies_once_the_account_is_forgotten(
    w: World, auth: AuthService
) -> None:
    hospital = w.stores.index.add_facility("Hospital").id
    user = _rad(auth)
    w.stores.identity.grant_privileges(user.id, [hospital])
    token = auth.issue_token(user)
    assert auth.principal_from_token(token).facility_ids == frozenset({hospital})
    w.stores.identity.revoke_privileges(user.id, [hospital])
    assert auth.principal_from_token(token).facility_ids == frozenset({hospital})  # cached
    auth.forget(user.id)
    assert auth.principal_from_token(token).facility_ids == frozenset()


def test_sessions_end_when_idle_or_old_and_only_the_person_keeps_them(
    w: World, auth: AuthService
) -> None:
    user = _rad(auth)
    cookie = auth.start_session(user, "10.0.0.1")
    assert auth.principal_from_session(cookie).method == "session"
    assert auth.session_left(cookie) == auth.policy.session_idle
    w.clock.after(minutes=25)
    auth.principal_from_session(cookie, touch=False)  # the page polling by itself
    assert auth.session_left(cookie) == timedelta(minutes=5)
    assert auth.keep_session(cookie) == auth.policy.session_idle  # "stay signed in"
    w.clock.after(minutes=20)
    auth.principal_from_session(cookie)  # a request the person made
    assert auth.session_left(cookie) == auth.policy.session_idle
    w.clock.after(minutes=31)
    with pytest.raises(AuthError, match="expired"):
        auth.principal_from_session(cookie)
    with pytest.raises(AuthError, match="not signed in"):  # and it is gone
        auth.session_left(cookie)
    with pytest.raises(AuthError, match="not signed in"):
        auth.principal_from_session("made-up-cookie")


def test_a_session_ends_at_its_maximum_age_however_busy(w: World, auth: AuthService) -> None:
    user = _rad(auth)
    cookie = auth.start_session(user)
    for _ in range(24):  # a request every 29 minutes for eleven and a half hours
        w.clock.after(minutes=29)
        auth.keep_session(cookie)
    left = auth.session_left(cookie)
    assert left == auth.policy.session_max - timedelta(minutes=29 * 24) < auth.policy.session_idle
    w.clock.now += left + timedelta(seconds=1)
    with pytest.raises(AuthError, match="expired"):
        auth.principal_from_session(cookie)
    other = auth.start_session(user)
    auth.end_session(other)
    with pytest.raises(AuthError):
        auth.principal_from_session(other)


def test_signing_needs_a_recent_sign_in(w: World, auth: AuthService) -> None:
    user = _rad(auth)
    cookie = auth.start_session(user)
    auth.require_recent(auth.principal_from_session(cookie))
    w.clock.after(minutes=10)
    with pytest.raises(Forbidden, match="sign in again"):
        auth.require_recent(auth.principal_from_session(cookie))
    with pytest.raises(AuthError):
        auth.reauthenticate(cookie, "not the password", None)
    auth.reauthenticate(cookie, PASSWORD, None)
    who = auth.principal_from_session(cookie)
    assert who.auth_time == w.clock()
    auth.require_recent(who)


def test_break_glass_is_reasoned_bounded_and_audited(w: World, auth: AuthService) -> None:
    user = _rad(auth)
    who = auth.principal_from_token(auth.issue_token(user))
    assert who.facility_ids == frozenset()
    with pytest.raises(ValueError, match="reason"):
        auth.break_glass(who, "1.2.3", "because", timedelta(minutes=30))
    with pytest.raises(ValueError, match="at most"):
        auth.break_glass(who, "1.2.3", "trauma patient transferred", timedelta(hours=9))
    expires = auth.break_glass(who, "1.2.3", " trauma patient transferred ", timedelta(minutes=30))
    assert expires == w.clock() + timedelta(minutes=30)
    who = auth.principal_from_token(auth.issue_token(user))
    assert who.sees(999, "1.2.3") and not who.sees(999, "1.2.4")
    [*_, record] = w.stores.audit.records()
    assert record.event_id == EventID.SECURITY_ALERT.code
    assert record.detail.endswith(": trauma patient transferred") and record.study_uid == "1.2.3"
    w.clock.after(minutes=31)
    auth.forget(user.id)
    assert not auth.principal_from_token(auth.issue_token(user)).sees(999, "1.2.3")
    auditor = auth.create_user("aud", Role.AUDITOR, password=PASSWORD)
    with pytest.raises(Forbidden):
        auth.break_glass(
            auth.principal_from_token(auth.issue_token(auditor)),
            "1.2.3",
            "just looking around here",
            timedelta(minutes=5),
        )


def test_an_identity_provider_s_person_signs_in_to_their_own_account(
    w: World, auth: AuthService
) -> None:
    user = _rad(auth)
    linked = auth.sign_in_federated("https://idp|42", "rad", "10.0.0.1")
    assert linked.id == user.id
    assert w.stores.identity.user_by_oidc_subject("https://idp|42").id == user.id
    assert _sign_ins(w)[-1] == (Outcome.SUCCESS, "login: oidc, linked")
    assert auth.sign_in_federated("https://idp|42", None).id == user.id  # by subject now
    with pytest.raises(Forbidden, match="belongs to another identity"):
        auth.sign_in_federated("https://idp|43", "rad")
    with pytest.raises(Forbidden, match="no telerad account"):
        auth.sign_in_federated("https://idp|44", "nobody")
    auth.disable(user)
    with pytest.raises(Forbidden, match="disabled"):
        auth.sign_in_federated("https://idp|42", None)
    assert [o for o, _ in _sign_ins(w)[-3:]] == [Outcome.MINOR_FAILURE] * 3


def test_derived_keys_are_per_purpose_and_per_secret(w: World, auth: AuthService) -> None:
    assert auth.derive_key("cookie") == auth.derive_key("cookie")
    assert auth.derive_key("cookie") != auth.derive_key("state")
    secret = b"another secret of 32 bytes or more"
    other = AuthService(w.stores.identity, secret, w.audit, hasher=CHEAP_HASHER)
    assert other.derive_key("cookie") != auth.derive_key("cookie")
