"""A report version's SR and PDF, made once and kept in the study in the archive.

:meth:`ReportObjects.ensure` is what both DICOM deliveries of a signature call: the
local archive step (``Channel.ARCHIVE``) and the C-STORE to the facility's PACS
(``Channel.DICOM``). It returns the two objects as the archive holds them; when the
archive does not hold them yet, it builds them (the SR with highdicom, the PDF with
weasyprint) from the report as it stood at that version and stores them into the
study as the platform's own service account, origin READING, so the objects never
make a study look incomplete again and never withdraw it from the reading worklist.

Their UIDs come from the study, the report and the version (``report_sr.uids_of``):
two workers that both find them missing build the same instances, the archive keeps
the first, and the second reads back what was kept (a CONFLICT answered by reading).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

from highdicom.sr import CodedConcept
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO

from telerad.adapters.sr.report_pdf import (
    Letterhead,
    build_pdf_dataset,
    page_facts,
    render_pdf,
    report_html,
)
from telerad.adapters.sr.report_sr import (
    LOCAL_SCHEME,
    Issuer,
    SrError,
    as_of,
    build_sr,
    uids_of,
)
from telerad.domain.modalities import InstanceOrigin, is_acquired_image
from telerad.domain.model import Facility, InstanceLocation
from telerad.domain.orders import Order
from telerad.domain.reports import Report
from telerad.domain.templates import Template
from telerad.services.access_audit import Actor
from telerad.services.studies import NotFound, Scope, Studies

log = logging.getLogger(__name__)

#: Who stores the report objects: the platform's service account for reporting.
REPORTS_ACTOR = Actor("telerad-reports", "service", is_user=False, source="outbox")
#: Coding schemes of procedure codes as DICOM designates them (PS3.16 8).
_SCHEMES = {"CPT": "C4", "CPT4": "C4", "C4": "C4", "LN": "LN", "LOINC": "LN", "SCT": "SCT"}


def to_part10(ds: Dataset) -> bytes:
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class Made:
    """A version's two objects as Part 10 bytes, with their SOP Instance UIDs."""

    sr: bytes
    pdf: bytes
    sr_uid: str
    pdf_uid: str


@dataclass
class ReportObjects:
    studies: Studies
    report_of: Callable[[int], Report | None]
    template_of: Callable[[str], Template | None]
    facility_of: Callable[[int], Facility | None]
    order_of: Callable[[int, str], Order | None]
    #: The reading network's name: the verifying organisation, the letterhead's "by".
    organization: str = "telerad"
    station: str = "TELERAD"

    def ensure(self, report_id: int, version: int) -> Made:
        """The SR and PDF of ``report_id`` at ``version``, stored in its study if they
        were not (SrError when the report, the version or the study is not there)."""
        report = self.report_of(report_id)
        if report is None:
            raise SrError(f"no report {report_id}")
        report = as_of(report, version)
        uids = uids_of(report.study_instance_uid, report_id, version)
        scope = Scope(frozenset({report.facility_id}))
        kept = self._kept(report, scope, uids.sr_series, uids.sr_instance)
        kept_pdf = self._kept(report, scope, uids.pdf_series, uids.pdf_instance)
        if kept is not None and kept_pdf is not None:
            return Made(kept, kept_pdf, uids.sr_instance, uids.pdf_instance)
        sr, pdf = self._build(report, scope)
        sr = kept if kept is not None else self._store(report, scope, sr, uids.sr_series)
        pdf = kept_pdf if kept_pdf is not None else self._store(report, scope, pdf, uids.pdf_series)
        return Made(sr, pdf, uids.sr_instance, uids.pdf_instance)

    # -- the archive ----------------------------------------------------------------------
    def _kept(self, report: Report, scope: Scope, series: str, sop: str) -> bytes | None:
        try:
            found = self.studies.locate(
                REPORTS_ACTOR, scope, report.study_instance_uid, series, sop
            )
        except NotFound:
            return None
        return self.studies.archive.read(found[0]) if found else None

    def _store(self, report: Report, scope: Scope, data: bytes, series: str) -> bytes:
        result = self.studies.receive(
            REPORTS_ACTOR, report.facility_id, data, InstanceOrigin.READING
        )
        if result.ok:
            return data
        sop = result.sop_instance_uid or ""
        kept = self._kept(report, scope, series, sop) if sop else None
        if kept is not None:  # another worker stored it first
            return kept
        raise SrError(f"the archive did not keep the report object: {result.reason}")

    def _study(self, report: Report, scope: Scope) -> tuple[Dataset, list[Dataset]]:
        """An acquired instance's header (patient and study attributes) and the study's
        acquired instances as evidence."""
        try:
            found = self.studies.locate(REPORTS_ACTOR, scope, report.study_instance_uid)
        except NotFound:
            raise SrError("the report's study is not in the archive") from None
        images = [i for i in found if is_acquired_image(i.sop_class_uid)] or found
        header = dcmread(
            io.BytesIO(self.studies.archive.read(images[0])), stop_before_pixels=True, force=True
        )
        evidence = [header] + [_reference(i) for i in images[1:]]
        return header, evidence

    # -- building -------------------------------------------------------------------------
    def _build(self, report: Report, scope: Scope) -> tuple[bytes, bytes]:
        header, evidence = self._study(report, scope)
        template = self.template_of(report.content.template_id)
        facility = self.facility_of(report.facility_id)
        name = facility.name if facility is not None else str(header.get("InstitutionName", ""))
        issuer = Issuer(self.organization, name, self.station)
        order = self.order_of(report.facility_id, report.accession_number)
        procedure = _procedure(order, header)
        sr = build_sr(report, template, header, evidence, issuer, procedure)
        letterhead = Letterhead(name, _address(facility), self.organization)
        described = order.procedure.description if order is not None else ""
        html = report_html(report, template, page_facts(header, described), letterhead)
        pdf = build_pdf_dataset(report, render_pdf(html), header, issuer)
        log.info("report %s version %d: SR and PDF built", report.id, report.version)
        return to_part10(sr), to_part10(pdf)


def _reference(location: InstanceLocation) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = location.sop_class_uid
    ds.SOPInstanceUID = location.sop_instance_uid
    ds.StudyInstanceUID = location.study_instance_uid
    ds.SeriesInstanceUID = location.series_instance_uid
    return ds


def _procedure(order: Order | None, header: Dataset) -> CodedConcept | None:
    if order is not None and order.procedure.code:
        scheme = _SCHEMES.get(order.procedure.coding_scheme.upper(), LOCAL_SCHEME)
        meaning = order.procedure.description or order.procedure.code
        return CodedConcept(order.procedure.code[:64], scheme, meaning[:64])
    described = str(header.get("StudyDescription", "")).strip()
    return CodedConcept("STUDY", LOCAL_SCHEME, described[:64]) if described else None


def _address(facility: Facility | None) -> str:
    if facility is None:
        return ""
    return ", ".join(p for p in (facility.state, facility.country) if p)
