"""Who sees what: the pure rules of telerad.domain.identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telerad.domain.identity import (
    OPEN_ACCESS,
    IdentityError,
    LockoutPolicy,
    Permission,
    Role,
    User,
    check_account,
    parse_permissions,
    principal_for,
    visible_facilities,
)


def test_scope_by_role() -> None:
    assert visible_facilities(Role.NETWORK_ADMIN, None, frozenset({1})) is None
    assert visible_facilities(Role.FACILITY_USER, 7, frozenset()) == {7}
    assert visible_facilities(Role.FACILITY_ADMIN, 7, frozenset({1, 2})) == {7}
    assert visible_facilities(Role.RADIOLOGIST, None, frozenset({1, 2})) == {1, 2}
    assert visible_facilities(Role.RADIOLOGIST, None, frozenset()) == frozenset()
    assert visible_facilities(Role.AUDITOR, None, frozenset({1})) == frozenset()
    assert visible_facilities(Role.SERVICE, 3, frozenset()) == {3}
    assert visible_facilities(Role.SERVICE, None, frozenset()) is None


def test_permissions_are_narrowed_never_widened() -> None:
    auditor = User(1, "aud", Role.AUDITOR)
    assert principal_for(auditor, frozenset()).permissions == {Permission.AUDIT}
    asked = frozenset({Permission.READ, Permission.AUDIT})
    assert principal_for(auditor, frozenset(), asked).permissions == {Permission.AUDIT}
    rad = User(2, "rad", Role.RADIOLOGIST)
    only_read = principal_for(rad, frozenset({4}), frozenset({Permission.READ}))
    assert only_read.can(Permission.READ) and not only_read.can(Permission.WRITE)
    assert only_read.sees(4) and not only_read.sees(5)


def test_break_glass_opens_one_study_only() -> None:
    rad = principal_for(
        User(2, "rad", Role.RADIOLOGIST), frozenset({4}), break_glass=frozenset({"1.2.3"})
    )
    assert rad.sees(9, "1.2.3")
    assert not rad.sees(9, "1.2.4") and not rad.sees(9)
    assert OPEN_ACCESS.sees(9)


def test_accounts_must_fit_their_role() -> None:
    check_account(Role.FACILITY_USER, 1)
    check_account(Role.SERVICE, None)
    check_account(Role.SERVICE, 1)
    for role, facility in (
        (Role.FACILITY_USER, None),
        (Role.FACILITY_ADMIN, None),
        (Role.RADIOLOGIST, 1),
        (Role.NETWORK_ADMIN, 1),
    ):
        with pytest.raises(IdentityError):
            check_account(role, facility)


def test_lockout_policy() -> None:
    policy = LockoutPolicy(max_failures=3, lock_for=timedelta(minutes=10))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.after_failure(0, now) == (1, None)
    assert policy.after_failure(1, now) == (2, None)
    assert policy.after_failure(2, now) == (0, now + timedelta(minutes=10))
    locked = User(1, "x", Role.RADIOLOGIST, locked_until=now + timedelta(minutes=1))
    assert policy.is_locked(locked, now)
    assert not policy.is_locked(locked, now + timedelta(minutes=2))


def test_parse_permissions() -> None:
    assert parse_permissions(None) is None
    assert parse_permissions("dicomweb:read, audit") == {Permission.READ, Permission.AUDIT}
    with pytest.raises(IdentityError, match="unknown scope"):
        parse_permissions("root")
