"""Reports in memory: the same promises as storage/db/report_repository.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from telerad.domain.reports import Difference, Report, ReportError, VersionConflict
from telerad.services.reports import Outgoing, ReportFilter, ReportSummary


@dataclass
class FakeReports:
    reports: dict[int, Report] = field(default_factory=dict)
    patients: dict[int, str] = field(default_factory=dict)
    queued: list[tuple[int, Outgoing]] = field(default_factory=list)
    #: Set to make the next write fail after the versions were taken (a crash).
    fail_next_write: bool = False

    def add(self, report: Report, patient_id: str) -> Report:
        for known in self.reports.values():
            if (known.study_instance_uid, known.accession_number) == (
                report.study_instance_uid,
                report.accession_number,
            ):
                raise ReportError("this study already has a report for its accession")
        stored = replace(report, id=len(self.reports) + 1)
        self.reports[stored.id or 0] = stored
        self.patients[stored.id or 0] = patient_id
        return stored

    def write(self, report: Report, seen: int, outgoing: Sequence[Outgoing] = ()) -> Report:
        assert report.id is not None
        current = self.reports[report.id]
        if current.version != seen:
            raise VersionConflict(current.version, seen)
        if self.fail_next_write:
            self.fail_next_write = False
            raise RuntimeError("the database went away")
        self.reports[report.id] = report
        self.queued.extend((report.id, o) for o in outgoing)
        return report

    def get(self, report_id: int) -> Report | None:
        return self.reports.get(report_id)

    def for_study(self, study_uid: str, accession_number: str | None = None) -> list[Report]:
        return [
            r
            for _, r in sorted(self.reports.items())
            if r.study_instance_uid == study_uid
            and (accession_number is None or r.accession_number == accession_number)
        ]

    def find(self, f: ReportFilter) -> list[ReportSummary]:
        rows = [
            self._summary(r)
            for r in self.reports.values()
            if (f.facility_ids is None or r.facility_id in f.facility_ids)
            and (not f.study_uids or r.study_instance_uid in f.study_uids)
            and (not f.patient_id or self.patients[r.id or 0] == f.patient_id)
            and (not f.accession_number or r.accession_number == f.accession_number)
            and (not f.statuses or r.status in f.statuses)
            and (f.since is None or r.current.made_at >= f.since)
        ]
        rows.sort(key=lambda s: (s.updated_at, s.id), reverse=True)
        return rows[f.offset : f.offset + f.limit]

    def differences(self, since: datetime) -> dict[tuple[int, Difference], int]:
        counts: dict[tuple[int, Difference], int] = {}
        for r in self.reports.values():
            signed = r.signed
            if r.difference is None or r.preliminary_by is None or signed is None:
                continue
            if signed.made_at >= since:
                key = (r.preliminary_by, r.difference)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _summary(self, r: Report) -> ReportSummary:
        signed = r.signed
        return ReportSummary(
            id=r.id or 0,
            facility_id=r.facility_id,
            study_instance_uid=r.study_instance_uid,
            accession_number=r.accession_number,
            patient_id=self.patients[r.id or 0],
            status=r.status,
            version=r.version,
            updated_at=r.current.made_at,
            signed_at=signed.made_at if signed else None,
            difference=r.difference,
            preliminary_by=r.preliminary_by,
            final_by=r.final_by,
        )
