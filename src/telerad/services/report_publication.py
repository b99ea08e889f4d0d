"""Signed reports as the facilities' systems read them (FHIR DiagnosticReport): one
report, or a search, each with what its resource is made of (the study's facts, the
template, the order, the facility's name).

Only signed reports are published: a draft, even to a radiologist, answers like a
report that does not exist, as does another facility's. Every read goes through
:class:`~telerad.services.reports.ReportService` (scoped, audited as a Procedure
Record read) and a search is audited as a Query first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from telerad.domain.identity import Principal
from telerad.domain.orders import Order
from telerad.domain.reports import Report, ReportStatus
from telerad.domain.templates import Template
from telerad.services.reports import NotFound, ReportFacts, ReportFilter, ReportService

#: At most this many reports are looked at for one search (its filters that the store
#: cannot apply — the study date, the order — are applied to these).
SCAN = 2000


class Orders(Protocol):
    def get(self, order_id: int, facility_ids: frozenset[int] | None = None) -> Order | None: ...

    def by_accession(self, facility_id: int, accession_number: str) -> Order | None: ...


@dataclass(frozen=True)
class Published:
    """A signed report and what its published form is made of."""

    report: Report
    facts: ReportFacts
    template: Template | None
    order: Order | None
    facility: str
    pdf: bytes | None = None


@dataclass(frozen=True)
class DateBound:
    """One ``date`` search bound on the study date: ``op`` is eq, ne, lt, le, gt, ge
    (FHIR's prefixes); ``first``/``last`` the days the value's precision covers."""

    op: str
    first: date
    last: date

    def holds(self, day: date) -> bool:
        return {
            "eq": self.first <= day <= self.last,
            "ne": not self.first <= day <= self.last,
            "lt": day < self.first,
            "le": day <= self.last,
            "gt": day > self.last,
            "ge": day >= self.first,
        }[self.op]


@dataclass(frozen=True)
class ReportQuery:
    """A search: the patient's identifier, the facility (by name), the order (its id),
    statuses, study-date bounds, a page."""

    patient_id: str = ""
    facility: str = ""
    order_id: int | None = None
    statuses: frozenset[ReportStatus] = frozenset()
    dates: tuple[DateBound, ...] = ()
    count: int = 50
    offset: int = 0
    #: A parameter that can match nothing (an identifier system not ours, an unknown
    #: order reference): the search is made (and audited) and finds nothing.
    nothing: bool = False


#: The rendered report as PDF (report, facts, template), when a renderer is wired in.
PdfRenderer = Callable[[Report, ReportFacts, Template | None], bytes | None]


@dataclass
class ReportPublication:
    reports: ReportService
    orders: Orders
    #: The facility's name by id, None when there is none.
    facility_name: Callable[[int], str | None]
    #: The facility's id by name, None when there is none.
    facility_id: Callable[[str], int | None]
    pdf: PdfRenderer | None = None

    def read(self, who: Principal, report_id: int, source: str = "") -> Published:
        """A signed report the caller may see (NotFound otherwise), its read audited."""
        stored = self.reports.store.get(report_id)
        if stored is None or stored.signed is None:
            raise NotFound(f"no report {report_id}")
        report = self.reports.get(who, report_id, source)  # scoped and audited
        facts = self.reports.studies.facts(who, report.study_instance_uid)
        if facts is None:
            raise NotFound(f"no report {report_id}")
        return self._with(report, facts, with_pdf=True)

    def search(
        self, who: Principal, q: ReportQuery, source: str = ""
    ) -> tuple[list[Published], bool]:
        """The page of signed reports ``q`` finds among those the caller may see (newest
        first), and whether there are more; the search and each report shown audited."""
        facilities = who.facility_ids
        order = None
        if q.nothing:
            facilities = frozenset()
        if q.facility:
            fid = self.facility_id(q.facility)
            wanted = frozenset({fid}) if fid is not None else frozenset()
            facilities = wanted if facilities is None else facilities & wanted
        if q.order_id is not None:
            order = self.orders.get(q.order_id, facilities)
            wanted = frozenset({order.facility_id}) if order is not None else frozenset()
            facilities = wanted if facilities is None else facilities & wanted
        since = None
        lower = [b.first for b in q.dates if b.op in ("eq", "ge", "gt")]
        if lower:  # a report is written after its study: a bound on the store's rows
            since = datetime.combine(max(lower), time(), UTC) - timedelta(days=1)
        study_uids: tuple[str, ...] = ()
        if order is not None and order.study_instance_uid:
            study_uids = (order.study_instance_uid,)
        found = self.reports.find(
            who,
            ReportFilter(
                facility_ids=facilities,
                study_uids=study_uids,
                patient_id=q.patient_id,
                statuses=q.statuses,
                since=since,
                limit=SCAN,
            ),
        )
        candidates = [
            s
            for s in found
            if s.signed_at is not None
            and (facilities is None or s.facility_id in facilities)
            and (
                order is None
                or (s.facility_id, s.accession_number)
                == (order.facility_id, order.accession_number)
            )
        ]
        if order is None and q.order_id is not None:
            candidates = []
        matched: list[Published] = []
        wanted_up_to = q.offset + q.count + 1
        for summary in candidates:
            if len(matched) >= wanted_up_to:
                break
            facts = self.reports.studies.facts(who, summary.study_instance_uid)
            if facts is None:
                continue
            if q.dates and (
                facts.study_date is None or not all(b.holds(facts.study_date) for b in q.dates)
            ):
                continue
            stored = self.reports.store.get(summary.id)
            if stored is None or stored.signed is None:
                continue
            matched.append(self._with(stored, facts))
        page = matched[q.offset : q.offset + q.count]
        for p in page:  # each report shown is a read
            self.reports.get(who, p.report.id or 0, source)
        return page, len(matched) > q.offset + q.count

    def for_delivery(self, report: Report, facts: ReportFacts) -> Published:
        """What a signature's delivery is made of (no caller: the platform sends it)."""
        return self._with(report, facts, with_pdf=True)

    def _with(self, report: Report, facts: ReportFacts, with_pdf: bool = False) -> Published:
        order = None
        if report.accession_number:
            order = self.orders.by_accession(report.facility_id, report.accession_number)
        template = self.reports.templates.get((report.signed or report.current).content.template_id)
        pdf = self.pdf(report, facts, template) if with_pdf and self.pdf is not None else None
        return Published(
            report,
            facts,
            template,
            order,
            self.facility_name(report.facility_id) or str(report.facility_id),
            pdf,
        )
