"""The demo's facilities and accounts: created once, random passwords that work, kept private."""

from __future__ import annotations

import stat

import pytest

from telerad.bootstrap import Platform
from telerad.demo import DEMO_FACILITY
from telerad.demo_people import ensure_demo_people


def test_demo_people_are_created_once_and_can_sign_in(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ensure_demo_people(platform)
    printed = capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = path.read_text()
    passwords = {
        line.split()[0]: line.split()[1]
        for line in kept.splitlines()
        if line.startswith("  ") and len(line.split()) > 2
    }
    assert set(passwords) == {"dr.reed", "tech.demo", "admin", "auditor"}
    assert len(set(passwords.values())) == 4 and all(len(p) >= 12 for p in passwords.values())
    assert "otpauth://" in kept
    # The console (often a log file) says where they are, never what they are.
    assert printed.strip() == (
        f"telerad demo: accounts, passwords and the admin's second factor are in {path}"
        " (readable by you only)"
    )
    assert not any(p in printed for p in passwords.values()) and "otpauth" not in printed
    reed = platform.auth.sign_in("dr.reed", passwords["dr.reed"], None)
    who = platform.auth.principal_from_token(platform.auth.issue_token(reed))
    hospital = platform.index.facility_by_name(DEMO_FACILITY)
    assert hospital is not None and who.facility_ids == frozenset({hospital.id})
    assert hospital.ae_title == "STORESCU" and hospital.host == "127.0.0.1"
    assert platform.auth.identity.user_by_name("admin").totp_enabled  # type: ignore[union-attr]
    # A second start leaves everything as it is and only says where the accounts are.
    assert ensure_demo_people(platform) == path
    assert f"are in {path}" in capsys.readouterr().out
    assert len(platform.auth.identity.list_users()) == 4
