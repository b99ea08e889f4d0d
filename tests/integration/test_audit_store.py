"""The audit trail in the database: append-only triggers, concurrent appends, and
``telerad audit verify`` / ``export`` run as a user runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, exc, text

from telerad.bootstrap import Platform
from telerad.domain.audit import EventID, Outcome
from telerad.storage.db.audit_repository import SqlAuditRepository

STUDY = "1.2.826.0.1.3680043.8.498.77"


def telerad(
    data_dir: Path, *args: str, database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TELERAD_DATA_DIR=str(data_dir), TELERAD_FSYNC="false", COLUMNS="200")
    env.pop("TELERAD_DATABASE_URL", None)
    if database_url:
        env["TELERAD_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "telerad.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def fill(platform: Platform, n: int) -> None:
    events = [EventID.QUERY, EventID.INSTANCES_ACCESSED, EventID.EXPORT, EventID.IMPORT]
    for i in range(1, n + 1):
        platform.audit.record(
            events[i % len(events)],
            f"MODALITY{i % 7}",
            actor_role="source",
            source_address=f"10.1.0.{i % 250}",
            patient_id=f"PID-{i}",
            study_uid=f"{STUDY}.{i}",
            facility="North",
            detail=f"event {i}",
        )


def raw(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def db_url(platform: Platform) -> str | None:
    url = platform.settings.database_url
    return url if url and not url.startswith("sqlite") else None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_platform(request: pytest.FixtureRequest) -> Platform:
    name = "platform" if request.param == "sqlite" else "pg_platform"
    return request.getfixturevalue(name)


def test_triggers_refuse_update_and_delete(any_platform: Platform) -> None:
    fill(any_platform, 3)
    for statement in (
        "UPDATE audit_record SET detail = 'x' WHERE sequence = 2",
        "DELETE FROM audit_record WHERE sequence = 3",
        "DELETE FROM audit_record",
    ):
        with pytest.raises(exc.DBAPIError, match="append-only"):
            raw(any_platform.engine, statement)
    if any_platform.engine.dialect.name == "postgresql":
        with pytest.raises(exc.DBAPIError, match="append-only"):
            raw(any_platform.engine, "TRUNCATE audit_record")
    assert any_platform.audit.verify().ok
    assert any_platform.audit.repository.count() == 3
    assert not hasattr(SqlAuditRepository, "update") and not hasattr(SqlAuditRepository, "delete")


def test_concurrent_appends_keep_one_chain(any_platform: Platform) -> None:
    threads_n, per_thread = 8, 40
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def work(k: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                any_platform.audit.record(EventID.QUERY, f"T{k}", detail=f"{k}/{i}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = list(any_platform.audit.repository.records())
    assert [r.sequence for r in records] == list(range(1, threads_n * per_thread + 1))
    assert sorted(r.detail for r in records) == sorted(
        f"{k}/{i}" for k in range(threads_n) for i in range(per_thread)
    )
    verdict = any_platform.audit.verify()
    assert verdict.ok and verdict.checked == threads_n * per_thread


def test_concurrent_appends_from_two_processes(platform: Platform) -> None:
    """The CLI (or a second server) beside a running one: SQLite's write lock orders them."""
    data_dir = platform.settings.data_dir
    code = (
        "import sys\n"
        "from telerad.bootstrap import open_platform\n"
        "from telerad.config import Settings\n"
        "from telerad.domain.audit import EventID\n"
        "p = open_platform(Settings(data_dir=sys.argv[1], fsync=False))\n"
        "for i in range(60): p.audit.record(EventID.QUERY, 'CHILD', detail=str(i))\n"
        "p.close()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(data_dir)])
    for i in range(60):
        platform.audit.record(EventID.QUERY, "PARENT", detail=str(i))
    assert child.wait(timeout=120) == 0
    records = list(platform.audit.repository.records())
    assert len(records) == 120
    assert [r.detail for r in records if r.actor_id == "CHILD"] == [str(i) for i in range(60)]
    assert platform.audit.verify().ok


def test_intact_chain_of_1000_verifies(any_platform: Platform) -> None:
    fill(any_platform, 1000)
    result = telerad(
        any_platform.settings.data_dir, "audit", "verify", database_url=db_url(any_platform)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact: 1000 records" in result.stdout


def drop_triggers(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        raw(engine, "DROP TRIGGER audit_record_append_only ON audit_record")
    else:
        raw(engine, "DROP TRIGGER audit_record_no_update", "DROP TRIGGER audit_record_no_delete")


def test_tampered_record_is_named(any_platform: Platform) -> None:
    fill(any_platform, 60)
    drop_triggers(any_platform.engine)
    raw(
        any_platform.engine,
        "UPDATE audit_record SET outcome = 0, detail = 'nothing' WHERE sequence = 37",
    )
    result = telerad(
        any_platform.settings.data_dir, "audit", "verify", database_url=db_url(any_platform)
    )
    assert result.returncode == 1
    assert "record 37" in result.stderr and "hash does not match" in result.stderr
    assert "36 records before it" in result.stderr


def test_deleted_record_is_named(any_platform: Platform) -> None:
    fill(any_platform, 60)
    drop_triggers(any_platform.engine)
    raw(any_platform.engine, "DELETE FROM audit_record WHERE sequence = 40")
    result = telerad(
        any_platform.settings.data_dir, "audit", "verify", database_url=db_url(any_platform)
    )
    assert result.returncode == 1
    assert "record 41" in result.stderr and "record 40 is missing" in result.stderr


def test_swapped_records_are_named(platform: Platform) -> None:
    fill(platform, 20)
    drop_triggers(platform.engine)
    raw(
        platform.engine,
        "UPDATE audit_record SET sequence = -1 WHERE sequence = 12",
        "UPDATE audit_record SET sequence = 12 WHERE sequence = 13",
        "UPDATE audit_record SET sequence = 13 WHERE sequence = -1",
    )
    verdict = platform.audit.verify()
    assert verdict.bad_sequence == 12 and verdict.checked == 11


def test_export_dicom_and_fhir(platform: Platform) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for day in range(4):
        platform.audit.record(
            EventID.INSTANCES_ACCESSED,
            "dr.who",
            actor_is_user=True,
            outcome=Outcome.SUCCESS if day else Outcome.SERIOUS_FAILURE,
            patient_id=f"PID-{day}",
            study_uid=f"{STUDY}.{day}",
            time=start + timedelta(days=day),
        )
    data_dir = platform.settings.data_dir
    dicom = telerad(data_dir, "audit", "export", "--format", "dicom", "--since", "2026-03-02")
    assert dicom.returncode == 0, dicom.stderr
    lines = dicom.stdout.splitlines()
    assert len(lines) == 3
    roots = [ET.fromstring(line.encode()) for line in lines]
    assert [r.findtext("EventIdentification/EventID") is not None for r in roots] == [True] * 3
    assert [
        r.find("ParticipantObjectIdentification").get("ParticipantObjectID")  # type: ignore[union-attr]
        for r in roots
    ] == ["PID-1", "PID-2", "PID-3"]
    fhir = telerad(data_dir, "audit", "export", "--format", "fhir")
    assert fhir.returncode == 0, fhir.stderr
    events = [json.loads(line) for line in fhir.stdout.splitlines()]
    # Four records, plus the "Audit Log Used" the first export recorded.
    assert [e["type"]["code"] for e in events] == ["110103"] * 4 + ["110101"]
    assert events[0]["outcome"] == "8"
    bad = telerad(data_dir, "audit", "export", "--format", "dicom", "--since", "yesterday")
    assert bad.returncode == 2
    assert platform.audit.verify().ok
