"""The reading desk: everything the reading screen shows for one study at once.

The study's context (patient, order, facility), its report to work on (a draft
started for the radiologist who holds the study, or the signed report for anyone
else who may see it), the template it is written in and those it may switch to,
the patient's priors each with its signed report, and the next study on the
radiologist's worklist (for "sign and next").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from telerad.domain.identity import Permission, Principal
from telerad.domain.reports import Report
from telerad.domain.templates import Template
from telerad.services.reading import ReadingService
from telerad.services.reading_context import ReadingContext, StudyContext
from telerad.services.reading_views import Item
from telerad.services.reports import Forbidden, NotFound, ReportService


@dataclass(frozen=True)
class PriorRead:
    """A prior study of the patient and what its signed report concluded."""

    study_uid: str
    study_date: date
    modality: str
    description: str
    report_id: int | None
    status: str  # the report's status, "" without one
    impression: str  # the signed impression, "" without a signed report


@dataclass(frozen=True)
class Desk:
    uid: str
    context: StudyContext
    report: Report | None
    template: Template | None
    editable: bool
    why_not: str  # why the caller may not write (when not editable)
    priors: Sequence[PriorRead]
    next_uid: str | None
    templates: Sequence[Template]  # those the draft may switch to
    item: Item | None = None  # where it stands on the reading worklist


class ReadingDesk:
    def __init__(
        self, reports: ReportService, context: ReadingContext, reading: ReadingService
    ) -> None:
        self.reports = reports
        self.context = context
        self.reading = reading

    def open(self, who: Principal, uid: str, source: str = "") -> Desk:
        """The desk for ``uid``; NotFound when the caller may not see the study."""
        found = self.context.of(who, [uid]).get(uid)
        if found is None:
            raise NotFound("no such study among those you may see")
        report, why_not = self._report(who, uid, source)
        editable = report is not None and not why_not and who.can(Permission.READING)
        template = self.reports.templates.get(report.content.template_id) if report else None
        facts = self.reports.studies.facts(who, uid)
        offered: Sequence[Template] = ()
        if editable and facts is not None:
            offered = self.reports.templates.offered(facts.modality, facts.sex, facts.age)
        return Desk(
            uid=uid,
            context=found,
            report=report,
            template=template,
            editable=editable,
            why_not=why_not,
            priors=self._priors(who, uid),
            next_uid=self.next_study(who, uid),
            templates=offered,
            item=self.reading.item(uid),
        )

    def _report(self, who: Principal, uid: str, source: str) -> tuple[Report | None, str]:
        """The report to show, and why it may not be written ("" when it may)."""
        if who.can(Permission.READING):
            try:
                report = self.reports.start(who, uid, source=source)
            except Forbidden as exc:
                existing = self.reports.for_study(who, uid, source)
                return (existing[0] if existing else None), str(exc)
            if report.signed is not None and report.status.value != "preliminary":
                return report, "Signed: an addendum may be added below (corrections: the API)."
            return report, ""
        existing = self.reports.for_study(who, uid, source)
        return (existing[0] if existing else None), "only radiologists write reports"

    def _priors(self, who: Principal, uid: str) -> list[PriorRead]:
        facts = self.reports.studies.facts(who, uid)
        if facts is None:
            return []
        signed = self.reports.signed_of(who, [p.study_uid for p in facts.priors if p.study_uid])
        out = []
        for p in facts.priors:
            report = signed.get(p.study_uid)
            impression = self.reports.impression(report) if report is not None else ""
            out.append(
                PriorRead(
                    study_uid=p.study_uid,
                    study_date=p.study_date,
                    modality=p.modality,
                    description=p.description,
                    report_id=report.id if report else None,
                    status=report.status.value if report else "",
                    impression=impression,
                )
            )
        return out

    def next_study(self, who: Principal, after: str) -> str | None:
        """The most urgent other study the radiologist holds, else the first they may claim."""
        if who.user_id is None or not who.can(Permission.READING):
            return None
        for item in self.reading.worklist_of(who.user_id):
            if item.study.uid != after and who.sees(item.study.facility_id):
                return item.study.uid
        return None
