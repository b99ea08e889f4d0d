"""``telerad reader``: profiles and shifts as data, refused with reasons; the demo's reader."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telerad.bootstrap import Platform, open_platform
from telerad.cli.main import app
from telerad.config import Settings
from telerad.demo import DEMO_FACILITY
from telerad.demo_people import ensure_demo_people
from telerad.domain.identity import Role
from telerad.workflow.model import Priority, ReadingStudy


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("TELERAD_DATA_DIR", str(path))
    monkeypatch.setenv("TELERAD_FSYNC", "false")
    monkeypatch.delenv("TELERAD_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    p = open_platform(Settings(data_dir=path, fsync=False))
    p.index.add_facility("North", country="US", state="CA")
    p.auth.create_user("dr.x", Role.RADIOLOGIST)
    p.auth.create_user("tech", Role.FACILITY_USER, 1)
    p.close()
    return path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_set_shift_show_and_refusals(data_dir: Path) -> None:
    code, out = _run(
        "reader", "set", "dr.x", "--subspecialty", "neuro", "--modality", "CT",
        "--modality", "mr", "--rvu-per-hour", "12", "--tz", "Europe/London",
    )  # fmt: skip
    assert code == 0, out
    assert "CT, MR" in out and "neuro" in out and "12 RVU/hour" in out and "Europe/London" in out
    code, out = _run(
        "reader", "shift", "add", "dr.x", "--days", "mon-fri", "--from", "08:00", "--to", "16:00"
    )
    assert code == 0, out
    assert "shift 1:" in out and "mon-fri 08:00-16:00 Europe/London" in out
    code, out = _run(
        "reader",
        "shift",
        "add",
        "dr.x",
        "--starts-at",
        "2026-12-24T20:00",
        "--ends-at",
        "2026-12-25T08:00",
    )
    assert code == 0 and "once 2026-12-24 20:00 to 2026-12-25 08:00 UTC" in out, out
    code, out = _run("reader", "set", "dr.x", "--queue-cap", "8")
    assert code == 0 and "8 RVU" in out and "CT, MR" in out, out  # the rest is kept
    code, out = _run("reader", "shift", "remove", "dr.x", "1")
    assert code == 0 and "mon-fri" not in out, out
    refusals = [
        (("reader", "set", "dr.x", "--tz", "Mars/Base"), "not an IANA time zone"),
        (("reader", "set", "tech", "--modality", "CT"), "reader profiles are for radiologists"),
        (("reader", "set", "nobody"), "no user named nobody"),
        (("reader", "set", "dr.x", "--read-kind", "maybe"), "not a kind of read"),
        (
            (
                "reader",
                "shift",
                "add",
                "dr.x",
                "--days",
                "funday",
                "--from",
                "8:00",
                "--to",
                "9:00",
            ),
            "mon-fri",
        ),
        (("reader", "shift", "add", "dr.x", "--days", "mon"), "--days, --from and --to"),
        (("reader", "shift", "remove", "dr.x", "99"), "no shift 99"),
    ]
    for args, why in refusals:
        code, out = _run(*args)
        assert code == 2 and why in out, (args, out)
    p = open_platform(Settings(data_dir=data_dir, fsync=False))
    try:
        user = p.identity.user_by_name("dr.x")
        assert user is not None
        profile = p.reading.store.profile(user.id)
        assert profile is not None and profile.modalities == frozenset({"CT", "MR"})
        assert profile.queue_cap_rvu == 8 and len(profile.shifts) == 1
        details = [r.detail for r in p.audit.repository.records()]
        assert any(d.startswith("reader profile of dr.x set") for d in details)
        assert any(d == "shift 1 of dr.x removed" for d in details)
    finally:
        p.close()


def test_the_demo_radiologist_reads_at_any_hour(platform: Platform) -> None:
    ensure_demo_people(platform)
    reed = platform.identity.user_by_name("dr.reed")
    assert reed is not None
    profile = platform.reading.store.profile(reed.id)
    assert profile is not None and {"CT", "MR", "CR"} <= profile.modalities
    [shift] = profile.shifts
    assert shift.days == frozenset(range(7)) and shift.start == shift.end == time(0, 0)
    facility = platform.index.facility_by_name(DEMO_FACILITY)
    assert facility is not None
    now = datetime(2026, 3, 8, 10, 30, tzinfo=UTC)  # 02:30 on Los Angeles' spring-forward night
    platform.reading.seen(reed.id, now, token=True)
    study = ReadingStudy(
        uid="1.2.3.99",
        facility_id=facility.id,
        jurisdiction=facility.jurisdiction,
        modality="MR",
        priority=Priority.STROKE,
        ready_at=now,
        deadline=platform.reading.deadline(facility.id, Priority.STROKE, now),
        subspecialty="neuro",
    )
    platform.reading.enqueue(study, now)
    assert platform.reading.holder("1.2.3.99") == reed.id
