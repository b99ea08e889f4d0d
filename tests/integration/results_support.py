"""Signatures that queue results as ReportService does: the report store's write with
the platform's deliveries, in one transaction (shared by the delivery tests)."""

from __future__ import annotations

from datetime import date, datetime

from telerad.bootstrap import Platform
from telerad.domain import reports as r
from telerad.domain.reports import Content, Report
from telerad.services.reports import ReportFacts
from telerad.storage.db.report_repository import SqlReports

READER = (7, "Night^Reader")


def facts(platform: Platform, report: Report) -> ReportFacts:
    return ReportFacts(
        study_instance_uid=report.study_instance_uid,
        facility_id=report.facility_id,
        accession_number=report.accession_number,
        patient_id=f"MRN-{report.accession_number}",
        patient_name="Ødegård^Zoë",
        sex="F",
        age=56,
        modality="CT",
        procedure_code="70450",
        procedure="CT head without contrast",
        reason="headache",
        study_date=date(2026, 12, 2),
    )


def _write(platform: Platform, before: Report, after: Report, now: datetime) -> Report:
    outgoing = platform.deliveries(after, facts(platform, after), now)
    return SqlReports(platform.engine).write(after, before.version, outgoing)


def signed(
    platform: Platform, facility_id: int, n: int, now: datetime, final: bool = True
) -> Report:
    """Report ``n`` of the facility, signed (preliminary or final) at ``now``."""
    content = Content(
        "ct-head",
        "1",
        {"findings": f"Study {n}: ventricles normal | no shift.", "impression": f"No bleed ({n})."},
    )
    uid, accession = f"1.2.826.0.1.3680043.10.9999.{facility_id}.{n}", f"A{facility_id}-{n}"
    draft = r.new_report(uid, facility_id, accession, content, *READER, now)
    stored = SqlReports(platform.engine).add(draft, f"MRN-{accession}")
    return _write(platform, stored, r.sign(stored, final, stored.version, *READER, now), now)


def finalised(platform: Platform, report: Report, now: datetime) -> Report:
    return _write(platform, report, r.sign(report, True, report.version, *READER, now), now)


def appended(platform: Platform, report: Report, text: str, now: datetime) -> Report:
    return _write(platform, report, r.addend(report, text, report.version, *READER, now), now)


def corrected(platform: Platform, report: Report, now: datetime) -> Report:
    changed = Content("ct-head", "1", {"impression": "Small left subdural haematoma."})
    after = r.correct(report, changed, "left side missed", report.version, *READER, now)
    return _write(platform, report, after, now)
