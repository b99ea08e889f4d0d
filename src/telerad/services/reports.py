"""Report use cases: start a draft, edit it, sign it (preliminary or final), add an
addendum, correct a signed report; read and list reports. Every read and write is
scoped to the caller's facilities and audited (a Procedure Record event, PS3.15).

Who may do what:
- a draft is written only by the radiologist holding the study on the reading
  worklist (the one who opened it);
- signing proves again who is at the keyboard: the password (and TOTP code where
  enrolled), or a sign-in at the identity provider within the last minutes;
- signing runs the pre-sign checks (domain/report_checks.py): each finding must be
  fixed or overridden with a reason, which is kept with the signed version;
- a final signature completes the worklist entry (TAT to signature) and queues
  the deliveries to the facility in the same transaction as the status change;
- addenda and corrections are by radiologists who read for the facility.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Protocol

from telerad.domain import reports as domain
from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.identity import Permission, Principal
from telerad.domain.report_checks import (
    Context,
    Finding,
    Prior,
    check,
    overrides_from,
    unresolved,
)
from telerad.domain.reports import (
    Content,
    Difference,
    Override,
    Report,
    ReportError,
    ReportStatus,
    VersionConflict,
)
from telerad.domain.templates import Choice, Heading, Template
from telerad.services.audit import AuditService

__all__ = [
    "ChecksFailed",
    "Outgoing",
    "Proof",
    "ReportFacts",
    "ReportFilter",
    "ReportService",
    "ReportStore",
    "ReportSummary",
    "VersionConflict",
]


class Forbidden(PermissionError):
    """The caller may not do this with this report; the text says why."""


class NotFound(LookupError):
    """No such report or study among those the caller may see."""


class ChecksFailed(ReportError):
    """Pre-sign checks found problems that were neither fixed nor overridden."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__("; ".join(f.message for f in findings))
        self.findings = list(findings)


@dataclass(frozen=True)
class Outgoing:
    """A message to queue for the facility with a signature (the outbox's row)."""

    channel: str  # hl7, fhir, dicom
    message_id: str
    payload: str
    due: datetime


@dataclass(frozen=True)
class ReportSummary:
    id: int
    facility_id: int
    study_instance_uid: str
    accession_number: str
    patient_id: str
    status: ReportStatus
    version: int
    updated_at: datetime
    signed_at: datetime | None
    difference: Difference | None = None
    preliminary_by: int | None = None
    final_by: int | None = None


@dataclass(frozen=True)
class ReportFilter:
    facility_ids: frozenset[int] | None = None
    study_uids: tuple[str, ...] = ()
    patient_id: str = ""
    statuses: frozenset[ReportStatus] = frozenset()
    since: datetime | None = None
    limit: int = 100
    offset: int = 0
    accession_number: str = ""


class ReportStore(Protocol):
    def add(self, report: Report, patient_id: str) -> Report: ...

    def write(self, report: Report, seen: int, outgoing: Sequence[Outgoing] = ()) -> Report:
        """Versions after ``seen`` and the new head (and ``outgoing``), atomically;
        VersionConflict when the stored report is no longer at ``seen``."""
        ...

    def get(self, report_id: int) -> Report | None: ...

    def for_study(self, study_uid: str, accession_number: str | None = None) -> list[Report]: ...

    def find(self, f: ReportFilter) -> list[ReportSummary]: ...

    def differences(self, since: datetime) -> dict[tuple[int, Difference], int]: ...


@dataclass(frozen=True)
class ReportFacts:
    """What reporting needs to know about a study (from the archive and its order)."""

    study_instance_uid: str
    facility_id: int
    accession_number: str
    patient_id: str
    patient_name: str
    sex: str  # M, F, O, ""
    age: int | None  # years at the study
    modality: str
    procedure_code: str
    procedure: str  # the ordered procedure's (or the study's) description
    reason: str
    study_date: date | None
    priors: tuple[Prior, ...] = ()


class StudyFacts(Protocol):
    def facts(self, who: Principal, study_uid: str) -> ReportFacts | None:
        """The study's facts when ``who`` may see it, else None."""
        ...


class TemplateSource(Protocol):
    def get(self, template_id: str) -> Template | None: ...

    def choose(
        self,
        procedure_code: str,
        modality: str,
        sex: str,
        age: int | None,
        description: str = "",
    ) -> Choice: ...

    def offered(self, modality: str, sex: str, age: int | None) -> Sequence[Template]: ...


class Holds(Protocol):
    """The reading worklist, as reporting sees it."""

    def holder(self, uid: str) -> int | None: ...

    def complete(self, uid: str, reader_id: int, now: datetime | None = None) -> None: ...


class Identity(Protocol):
    """Re-authentication before a signature."""

    def sign_in(
        self, username: str, password: str, code: str | None, source: str = ""
    ) -> object: ...

    def require_recent(self, principal: Principal) -> None: ...


@dataclass(frozen=True)
class Proof:
    """What the signer typed to sign: the password and, when enrolled, a TOTP code.
    None of it is kept."""

    password: str
    code: str | None = None
    source: str = ""


#: What to deliver when a report is signed: (report, facts, now) → messages.
Deliveries = Callable[[Report, ReportFacts, datetime], Sequence[Outgoing]]


def _no_deliveries(report: Report, facts: ReportFacts, now: datetime) -> Sequence[Outgoing]:
    return ()


@dataclass
class ReportService:
    store: ReportStore
    studies: StudyFacts
    templates: TemplateSource
    reading: Holds
    identity: Identity
    audit: AuditService
    deliveries: Deliveries = _no_deliveries
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    # -- reading ----------------------------------------------------------------------
    def get(self, who: Principal, report_id: int, source: str = "") -> Report:
        """A report the caller may see (drafts only for radiologists); audited."""
        report = self.store.get(report_id)
        if report is None or not who.sees(report.facility_id, report.study_instance_uid):
            raise NotFound(f"no report {report_id}")
        if report.signed is None and not who.can(Permission.READING):
            raise NotFound(f"no report {report_id}")  # an unsigned draft is not shown
        self._audit(who, report, Action.READ, "read", source)
        return report

    def for_study(self, who: Principal, study_uid: str, source: str = "") -> list[Report]:
        """The study's reports the caller may see, each audited."""
        facts = self.studies.facts(who, study_uid)
        if facts is None:
            raise NotFound("no such study among those you may see")
        found = [
            r
            for r in self.store.for_study(study_uid)
            if r.signed is not None or who.can(Permission.READING)
        ]
        for report in found:
            self._audit(who, report, Action.READ, "read", source)
        return found

    def signed_of(
        self, who: Principal, study_uids: Sequence[str], source: str = ""
    ) -> dict[str, Report]:
        """The signed report of each of ``study_uids`` the caller may see (one per study:
        the newest), each read audited."""
        if not study_uids:
            return {}
        found: dict[str, Report] = {}
        listed = self.store.find(
            ReportFilter(who.facility_ids, tuple(study_uids), limit=4 * len(study_uids))
        )
        for summary in listed:
            if summary.signed_at is None or summary.study_instance_uid in found:
                continue
            report = self.store.get(summary.id)
            if report is not None:
                found[summary.study_instance_uid] = report
                self._audit(who, report, Action.READ, "read as a prior", source)
        return found

    def impression(self, report: Report) -> str:
        """What the newest signed version says in its impression ("" when nothing)."""
        signed = report.signed
        template = self.templates.get(report.content.template_id)
        section = template.section(Heading.IMPRESSION) if template else None
        if signed is None or section is None:
            return ""
        return signed.content.text(section.id).strip()

    def find(self, who: Principal, f: ReportFilter) -> list[ReportSummary]:
        scope = who.facility_ids
        if f.facility_ids is not None:
            scope = f.facility_ids if scope is None else scope & f.facility_ids
        found = self.store.find(replace(f, facility_ids=scope))
        if not who.can(Permission.READING):
            found = [s for s in found if s.signed_at is not None]
        self.audit.record(
            EventID.QUERY,
            who.username,
            actor_role=str(who.role or ""),
            actor_is_user=who.is_user,
            detail=f"reports: {len(found)} listed",
        )
        return found

    def compose(
        self,
        who: Principal,
        report_id: int,
        sections: Mapping[str, str],
        fields: Mapping[str, str],
        template_id: str = "",
    ) -> Content:
        """The content a writer sends, with the template it is written in (the report's
        own unless ``template_id`` switches it); unknown section or field ids refused."""
        report = self._writable(who, report_id)
        chosen = template_id or report.content.template_id
        template = self.templates.get(chosen)
        if template is None:
            raise ReportError(f"no template {chosen!r}")
        known_sections = {s.id for s in template.sections}
        known_fields = {f.id for _, f in template.fields()}
        unknown = sorted(set(sections) - known_sections) + sorted(set(fields) - known_fields)
        if unknown:
            raise ReportError(f"template {chosen!r} has no {', '.join(unknown)}")
        return Content(chosen, template.version, sections, fields)

    def template_of(self, report: Report) -> Template:
        template = self.templates.get(report.content.template_id)
        if template is None:
            raise ReportError(f"the report's template {report.content.template_id!r} is gone")
        return template

    # -- writing ----------------------------------------------------------------------
    def start(
        self, who: Principal, study_uid: str, template_id: str = "", source: str = ""
    ) -> Report:
        """The study's report to work on: the existing one, else a new draft with the
        template chosen for the study (or the one asked for), its defaults filled in."""
        facts = self._facts(who, study_uid)
        existing = self.store.for_study(study_uid, facts.accession_number)
        if existing:
            self._audit(who, existing[0], Action.READ, "opened", source)
            return existing[0]
        self._holding(who, study_uid)
        if template_id:
            template = self.templates.get(template_id)
            if template is None:
                raise ReportError(f"no template {template_id!r}")
        else:
            template = self.templates.choose(
                facts.procedure_code, facts.modality, facts.sex, facts.age, facts.procedure
            ).template
        report = domain.new_report(
            study_uid,
            facts.facility_id,
            facts.accession_number,
            defaults(template, facts.reason),
            who.user_id or 0,
            who.username,
            self.clock(),
        )
        stored = self.store.add(report, facts.patient_id)
        self._audit(who, stored, Action.CREATE, f"draft with template {template.id}", source)
        return stored

    def save(
        self, who: Principal, report_id: int, content: Content, base_version: int, source: str = ""
    ) -> Report:
        report = self._writable(who, report_id)
        self._holding(who, report.study_instance_uid)
        changed = domain.save(
            report, content, base_version, who.user_id or 0, who.username, self.clock()
        )
        self.store.write(changed, report.version)
        self._audit(who, changed, Action.UPDATE, f"saved version {changed.version}", source)
        return changed

    def checks(self, who: Principal, report_id: int) -> list[Finding]:
        """What the pre-sign checks find in the report as it stands."""
        report = self._writable(who, report_id)
        return self._findings(report.content, self.studies.facts(who, report.study_instance_uid))

    def sign(
        self,
        who: Principal,
        report_id: int,
        base_version: int,
        final: bool,
        proof: Proof | None,
        overrides: Mapping[str, str] | None = None,
        difference: str = "",
    ) -> Report:
        """Sign as preliminary or final; see the module's rules."""
        report = self._writable(who, report_id)
        self._holding(who, report.study_instance_uid)
        # The checks first: nobody types a password (and spends a code) to hear of them.
        given, facts = self._cleared(who, report, report.content, overrides)
        self._prove(who, report, proof)
        now = self.clock()
        signed = domain.sign(
            report,
            final,
            base_version,
            who.user_id or 0,
            who.username,
            now,
            overrides=given,
            difference=Difference.parse(difference) if difference else None,
        )
        self._commit(signed, report.version, facts, now)
        if final:
            self.reading.complete(report.study_instance_uid, who.user_id or 0, now)
        what = "signed final" if final else "signed preliminary"
        if signed.difference is not None:
            what += f" (difference from the preliminary: {signed.difference.value})"
        if given:
            what += "; checks overridden: " + ", ".join(o.check for o in given)
        self._audit(who, signed, Action.UPDATE, what, proof.source if proof else "")
        return signed

    def addend(
        self, who: Principal, report_id: int, text: str, base_version: int, proof: Proof | None
    ) -> Report:
        report = self._signed_for(who, report_id)
        self._prove(who, report, proof)
        now = self.clock()
        changed = domain.addend(report, text, base_version, who.user_id or 0, who.username, now)
        facts = self.studies.facts(who, report.study_instance_uid)
        self._commit(changed, report.version, facts, now)
        self._audit(who, changed, Action.UPDATE, "addendum", proof.source if proof else "")
        return changed

    def correct(
        self,
        who: Principal,
        report_id: int,
        content: Content,
        reason: str,
        base_version: int,
        proof: Proof | None,
        overrides: Mapping[str, str] | None = None,
    ) -> Report:
        report = self._signed_for(who, report_id)
        given, facts = self._cleared(who, report, content, overrides)
        self._prove(who, report, proof)
        now = self.clock()
        changed = domain.correct(
            report, content, reason, base_version, who.user_id or 0, who.username, now, given
        )
        self._commit(changed, report.version, facts, now)
        self._audit(who, changed, Action.UPDATE, "corrected", proof.source if proof else "")
        return changed

    # -- the rules ----------------------------------------------------------------------
    def _facts(self, who: Principal, study_uid: str) -> ReportFacts:
        facts = self.studies.facts(who, study_uid)
        if facts is None:
            raise NotFound("no such study among those you may see")
        return facts

    def _writable(self, who: Principal, report_id: int) -> Report:
        if not who.can(Permission.READING) or who.user_id is None:
            raise Forbidden("only radiologists write reports")
        report = self.store.get(report_id)
        if report is None or not who.sees(report.facility_id, report.study_instance_uid):
            raise NotFound(f"no report {report_id}")
        return report

    def _holding(self, who: Principal, study_uid: str) -> None:
        holder = self.reading.holder(study_uid)
        if holder != who.user_id:
            raise Forbidden(
                "open the study from your worklist first: only the radiologist holding it "
                "may write its report"
                if holder is None
                else "another radiologist holds this study: only they may write its report"
            )

    def _signed_for(self, who: Principal, report_id: int) -> Report:
        report = self._writable(who, report_id)
        if who.facility_ids is not None and report.facility_id not in who.facility_ids:
            raise Forbidden("only radiologists who read for this facility amend its reports")
        return report

    def _prove(self, who: Principal, report: Report, proof: Proof | None) -> None:
        """Refuse, audited, unless the signer proves again who they are."""
        try:
            if proof is not None:
                self.identity.sign_in(who.username, proof.password, proof.code, proof.source)
            else:
                self.identity.require_recent(who)
        except Exception as exc:
            self._audit(
                who,
                report,
                Action.UPDATE,
                "signature refused: re-authentication failed",
                proof.source if proof else "",
                Outcome.MINOR_FAILURE,
            )
            raise Forbidden(str(exc)) from exc

    def _cleared(
        self,
        who: Principal,
        report: Report,
        content: Content,
        overrides: Mapping[str, str] | None,
    ) -> tuple[tuple[Override, ...], ReportFacts | None]:
        """The overrides given for what the checks find in ``content`` (ChecksFailed when
        something is neither fixed nor overridden), and the study's facts, read once for
        the checks and the deliveries."""
        facts = self.studies.facts(who, report.study_instance_uid)
        findings = self._findings(content, facts)
        given = overrides_from(overrides or {}, findings)
        left = unresolved(findings, given)
        if left:
            raise ChecksFailed(left)
        return given, facts

    def _findings(self, content: Content, facts: ReportFacts | None) -> list[Finding]:
        template = self.templates.get(content.template_id)
        if template is None:
            raise ReportError(f"the report's template {content.template_id!r} is gone")
        context = (
            Context(
                procedure=facts.procedure,
                reason=facts.reason,
                sex=facts.sex,
                priors=facts.priors,
                study_date=facts.study_date,
            )
            if facts is not None
            else Context()
        )
        return check(template, content, context)

    def _commit(self, report: Report, seen: int, facts: ReportFacts | None, now: datetime) -> None:
        outgoing = self.deliveries(report, facts, now) if facts is not None else ()
        self.store.write(report, seen, outgoing)

    def _audit(
        self,
        who: Principal,
        report: Report,
        action: Action,
        what: str,
        source: str = "",
        outcome: Outcome = Outcome.SUCCESS,
    ) -> None:
        self.audit.record(
            EventID.PROCEDURE_RECORD,
            who.username,
            actor_role=str(who.role or ""),
            actor_is_user=who.is_user,
            outcome=outcome,
            action=action,
            source_address=source,
            study_uid=report.study_instance_uid,
            detail=f"report {report.id} ({report.accession_number or 'no accession'}): {what}",
        )


def defaults(template: Template, reason: str = "") -> Content:
    """A new report's content: each section's and field's default, and the order's
    reason for the exam as the history (or indication) when it has no default."""
    sections = {s.id: s.default_text for s in template.sections if s.default_text}
    for heading in (Heading.HISTORY, Heading.INDICATIONS, Heading.CLINICAL_INFORMATION):
        section = template.section(heading)
        if section is not None and reason.strip():
            sections.setdefault(section.id, reason.strip())
            break
    return Content(
        template.id,
        template.version,
        sections,
        {f.id: f.default for _, f in template.fields() if f.default},
    )


def normal(template: Template, content: Content) -> Content:
    """``content`` with every empty section and field given its normal-study value."""
    sections = dict(content.sections)
    for s in template.sections:
        if s.normal_text and not sections.get(s.id, "").strip():
            sections[s.id] = s.normal_text
    fields = dict(content.fields)
    for _, f in template.fields():
        if f.normal and not fields.get(f.id, "").strip():
            fields[f.id] = f.normal
    return Content(content.template_id, content.template_version, sections, fields)
