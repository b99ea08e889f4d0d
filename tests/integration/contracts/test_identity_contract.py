"""Accounts, sessions, grants (``services.auth.IdentityStore``) and the audit trail
(``services.audit.AuditRepository``): what the fakes and the SQL stores both do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from tests.fakes.common import Clock
from tests.fakes.world import Stores

from telerad.domain.audit import AuditEvent, EventID, verify
from telerad.domain.identity import Role


def test_accounts_are_unique_by_name_and_read_back(stores: Stores) -> None:
    identity = stores.identity
    north = stores.index.add_facility("North").id
    rad = identity.add_user("rad", Role.RADIOLOGIST, None, "hash", "Dr Rad")
    tech = identity.add_user("tech", Role.FACILITY_USER, north)
    assert (rad.username, rad.role, rad.display_name, rad.facility_id) == (
        "rad",
        Role.RADIOLOGIST,
        "Dr Rad",
        None,
    )
    assert (rad.disabled, rad.totp_enabled, rad.token_version, rad.failed_logins) == (
        False,
        False,
        0,
        0,
    )
    assert identity.user_by_name("rad") == rad == identity.user_by_id(rad.id)
    assert identity.user_by_name("nobody") is None and identity.user_by_id(999) is None
    assert tech.facility_id == north
    with pytest.raises(IntegrityError):
        identity.add_user("rad", Role.AUDITOR)
    assert identity.credentials(rad.id) == ("hash", None)
    assert identity.credentials(tech.id) == (None, None)
    identity.add_user("admin", Role.NETWORK_ADMIN)
    assert [u.username for u in identity.list_users()] == ["admin", "rad", "tech"]
    assert identity.count_users() == 3


def test_updates_lockout_totp_and_oidc_subjects(stores: Stores, clock: Clock) -> None:
    identity = stores.identity
    rad = identity.add_user("rad", Role.RADIOLOGIST, None, "hash")
    other = identity.add_user("other", Role.RADIOLOGIST)
    until = clock.now + timedelta(minutes=15)
    identity.update_user(rad.id, failed_logins=5, locked_until=until, totp_secret="sealed")
    found = identity.user_by_id(rad.id)
    assert (found.failed_logins, found.locked_until, found.totp_enabled) == (5, until, True)
    assert identity.credentials(rad.id) == ("hash", "sealed")
    identity.update_user(rad.id, disabled=1)
    assert identity.user_by_id(rad.id).disabled is True
    identity.update_user(rad.id, oidc_subject="https://idp|123")
    assert identity.user_by_oidc_subject("https://idp|123").id == rad.id
    assert identity.user_by_oidc_subject("https://idp|999") is None
    with pytest.raises(IntegrityError):
        identity.update_user(other.id, oidc_subject="https://idp|123")
    with pytest.raises(Exception, match="no_such_column"):
        identity.update_user(rad.id, no_such_column=1)


def test_a_new_password_or_a_revocation_ends_older_tokens_and_sessions(
    stores: Stores, clock: Clock
) -> None:
    identity = stores.identity
    rad = identity.add_user("rad", Role.RADIOLOGIST, None, "old")
    other = identity.add_user("other", Role.RADIOLOGIST)
    identity.update_user(rad.id, failed_logins=3, locked_until=clock.now)
    identity.set_password(rad.id, "new")
    found = identity.user_by_id(rad.id)
    assert (found.token_version, found.failed_logins, found.locked_until) == (1, 0, None)
    assert identity.credentials(rad.id)[0] == "new"
    identity.add_session("a" * 64, rad.id, clock.now, "10.0.0.1")
    identity.add_session("b" * 64, other.id, clock.now, "")
    identity.revoke_tokens(rad.id)
    assert identity.user_by_id(rad.id).token_version == 2
    assert identity.session("a" * 64) is None
    assert identity.session("b" * 64) is not None


def test_licences_and_privileges_are_sets(stores: Stores) -> None:
    identity = stores.identity
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    rad = identity.add_user("rad", Role.RADIOLOGIST)
    identity.add_licences(rad.id, ["US-CA", "US-CA", "GB"])
    identity.add_licences(rad.id, ["GB"])
    assert identity.licences(rad.id) == frozenset({"US-CA", "GB"})
    identity.grant_privileges(rad.id, [north, north])
    identity.grant_privileges(rad.id, [north, south])
    assert identity.privileges(rad.id) == frozenset({north, south})
    identity.revoke_privileges(rad.id, [north])
    assert identity.privileges(rad.id) == frozenset({south})
    assert identity.licences(999) == frozenset() and identity.privileges(999) == frozenset()


def test_sessions_are_kept_touched_and_deleted(stores: Stores, clock: Clock) -> None:
    identity = stores.identity
    rad = identity.add_user("rad", Role.RADIOLOGIST)
    start = clock.now
    identity.add_session("s" * 64, rad.id, start, "10.0.0.1")
    with pytest.raises(IntegrityError):
        identity.add_session("s" * 64, rad.id, start, "")
    row = identity.session("s" * 64)
    assert (row.user_id, row.created_at, row.last_seen, row.auth_time) == (
        rad.id,
        start,
        start,
        start,
    )
    later = start + timedelta(minutes=5)
    identity.touch_session("s" * 64, later)
    row = identity.session("s" * 64)
    assert (row.last_seen, row.auth_time, row.created_at) == (later, start, start)
    identity.touch_session("s" * 64, later, later)
    assert identity.session("s" * 64).auth_time == later
    identity.delete_session("s" * 64)
    identity.delete_session("s" * 64)
    assert identity.session("s" * 64) is None


def test_break_glass_grants_expire_and_are_listed(stores: Stores, clock: Clock) -> None:
    identity = stores.identity
    rad = identity.add_user("rad", Role.RADIOLOGIST)
    now = clock.now
    identity.add_break_glass(rad.id, "1.2.3", "trauma transfer", now, now + timedelta(hours=1))
    identity.add_break_glass(rad.id, "1.2.4", "stroke transfer", now - timedelta(hours=2), now)
    assert identity.active_break_glass(rad.id, now) == frozenset({"1.2.3"})
    assert identity.active_break_glass(rad.id, now + timedelta(hours=1)) == frozenset()
    grants = identity.break_glass_grants(now - timedelta(days=1))
    assert [(g.study_instance_uid, g.username, g.reason) for g in grants] == [
        ("1.2.4", "rad", "stroke transfer"),
        ("1.2.3", "rad", "trauma transfer"),
    ]
    assert [g.study_instance_uid for g in identity.break_glass_grants(now)] == ["1.2.3"]


def test_the_audit_trail_is_a_chain_read_in_sequence(stores: Stores, clock: Clock) -> None:
    audit = stores.audit
    assert audit.count() == 0 and list(audit.records()) == []
    first = audit.append(AuditEvent(EventID.SECURITY_ALERT, "admin", detail="one"))
    clock.after(minutes=1)
    second = audit.append(AuditEvent(EventID.USER_AUTHENTICATION, "rad", detail="two"))
    assert (first.sequence, second.sequence) == (1, 2)
    records = list(audit.records())
    assert records == [first, second]
    assert verify(records).ok
    assert [r.detail for r in audit.records(since=clock.now)] == ["two"]
    assert [r.detail for r in audit.records(batch=1)] == ["one", "two"]
    assert audit.count() == 2
