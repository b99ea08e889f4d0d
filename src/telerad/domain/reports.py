"""Reports: what the radiologist writes about a study, from draft to final and after.

A report moves through :data:`TRANSITIONS` only (draft → preliminary → final,
then appended by addenda or corrected); a move the table does not hold raises
:class:`ReportError` with the reason. Every change is a new :class:`Version`:
nothing is overwritten, and a write names the version it was made on, so two
people editing at once cannot lose each other's work (:class:`VersionConflict`).

Statuses are named as FHIR DiagnosticReport names them; HL7 v2 OBR-25 and the
DICOM SR flags are derived from them where the report is delivered.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType


class ReportError(ValueError):
    """The report cannot be changed this way; the text says why."""


class VersionConflict(ReportError):
    """The write was made on an older version than the report's current one."""

    def __init__(self, current: int, given: int) -> None:
        super().__init__(
            f"the report changed meanwhile: it is at version {current}, "
            f"the change was made on version {given}"
        )
        self.current = current
        self.given = given


class ReportStatus(enum.StrEnum):
    DRAFT = "draft"  # being written; nobody outside the reading room sees it
    PRELIMINARY = "preliminary"  # signed as a preliminary read (overnight, wet read)
    FINAL = "final"  # signed as final
    APPENDED = "appended"  # final, with one or more addenda
    CORRECTED = "corrected"  # final, replaced by a corrected report
    CANCELLED = "cancelled"  # a draft given up (the study was read elsewhere)


class ReportEvent(enum.StrEnum):
    SAVE = "save"  # a draft's text or fields changed
    SIGN_PRELIMINARY = "sign-preliminary"
    SIGN_FINAL = "sign-final"
    ADDEND = "addend"
    CORRECT = "correct"
    CANCEL = "cancel"


_S, _E = ReportStatus, ReportEvent
#: (status, event) → new status. Everything not here is refused.
TRANSITIONS: dict[tuple[ReportStatus, ReportEvent], ReportStatus] = {
    (_S.DRAFT, _E.SAVE): _S.DRAFT,
    (_S.DRAFT, _E.SIGN_PRELIMINARY): _S.PRELIMINARY,
    (_S.DRAFT, _E.SIGN_FINAL): _S.FINAL,
    (_S.DRAFT, _E.CANCEL): _S.CANCELLED,
    # The radiologist who finalises a preliminary may revise it first.
    (_S.PRELIMINARY, _E.SAVE): _S.PRELIMINARY,
    (_S.PRELIMINARY, _E.SIGN_FINAL): _S.FINAL,
    (_S.PRELIMINARY, _E.CORRECT): _S.PRELIMINARY,  # a corrected preliminary
    (_S.FINAL, _E.ADDEND): _S.APPENDED,
    (_S.FINAL, _E.CORRECT): _S.CORRECTED,
    (_S.APPENDED, _E.ADDEND): _S.APPENDED,
    (_S.APPENDED, _E.CORRECT): _S.CORRECTED,
    (_S.CORRECTED, _E.ADDEND): _S.CORRECTED,
    (_S.CORRECTED, _E.CORRECT): _S.CORRECTED,
}

_REFUSALS: dict[ReportEvent, str] = {
    _E.SAVE: "only a draft or an unfinalised preliminary can be edited; "
    "a signed final report takes an addendum or a correction",
    _E.SIGN_PRELIMINARY: "only a draft can be signed as preliminary",
    _E.SIGN_FINAL: "only a draft or a preliminary can be signed as final",
    _E.ADDEND: "only a signed final report takes an addendum",
    _E.CORRECT: "only a signed report can be corrected (edit the draft instead)",
    _E.CANCEL: "only a draft can be cancelled; a signed report is corrected",
}

#: Statuses a referring clinician sees (the report has been signed at least once).
SIGNED = frozenset({_S.PRELIMINARY, _S.FINAL, _S.APPENDED, _S.CORRECTED})
#: Statuses that end the read: the worklist entry completes, TAT stops.
FINISHED = frozenset({_S.FINAL, _S.APPENDED, _S.CORRECTED})


def next_status(status: ReportStatus, event: ReportEvent) -> ReportStatus:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise ReportError(f"a {status.value} report: {_REFUSALS[event]}") from None


class Difference(enum.StrEnum):
    """How a final report differs from the preliminary read it finalised."""

    NONE = "none"
    MINOR = "minor"  # wording, or findings without consequence for care
    MAJOR = "major"  # a finding that changes management

    @classmethod
    def parse(cls, value: str) -> Difference:
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ReportError(f"{value!r} is not none, minor or major") from None


@dataclass(frozen=True)
class Content:
    """What a report says: free text per section and values per field (by the
    template's ids), written with one template."""

    template_id: str
    template_version: str = "1"
    sections: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sections", MappingProxyType(dict(self.sections)))
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def text(self, section_id: str) -> str:
        return self.sections.get(section_id, "")

    def value(self, field_id: str) -> str:
        return self.fields.get(field_id, "")

    def same_words(self, other: Content) -> bool:
        """The same text and values, ignoring whitespace differences."""

        def norm(m: Mapping[str, str]) -> dict[str, str]:
            return {k: " ".join(v.split()) for k, v in m.items() if v.strip()}

        return norm(self.sections) == norm(other.sections) and norm(self.fields) == norm(
            other.fields
        )


@dataclass(frozen=True)
class Override:
    """A pre-sign check the signer went past, and the reason they gave (kept)."""

    check: str
    message: str
    reason: str


@dataclass(frozen=True)
class Version:
    """One state of a report, kept for ever."""

    number: int
    status: ReportStatus
    content: Content
    author_id: int
    author: str  # the name shown (DICOM PN form)
    made_at: datetime
    event: ReportEvent
    signed: bool = False  # a signature (not a save)
    addendum: str = ""  # the text an ADDEND added
    reason: str = ""  # why a correction was made
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True)
class Report:
    """A study's report and its versions (newest last)."""

    study_instance_uid: str
    facility_id: int
    accession_number: str
    versions: tuple[Version, ...]
    id: int | None = None
    difference: Difference | None = None  # final vs preliminary, when both signed
    preliminary_by: int | None = None  # who signed the preliminary
    final_by: int | None = None  # who signed the final

    @property
    def current(self) -> Version:
        return self.versions[-1]

    @property
    def status(self) -> ReportStatus:
        return self.current.status

    @property
    def version(self) -> int:
        return self.current.number

    @property
    def content(self) -> Content:
        return self.current.content

    @property
    def signed(self) -> Version | None:
        """The newest signed version (what clinicians see), or None."""
        for v in reversed(self.versions):
            if v.signed:
                return v
        return None

    def addenda(self) -> list[Version]:
        return [v for v in self.versions if v.event is ReportEvent.ADDEND]

    def preliminary(self) -> Version | None:
        for v in self.versions:
            if v.signed and v.event is ReportEvent.SIGN_PRELIMINARY:
                return v
        return None


def new_report(
    study_instance_uid: str,
    facility_id: int,
    accession_number: str,
    content: Content,
    author_id: int,
    author: str,
    now: datetime,
) -> Report:
    """A draft report, version 1."""
    first = Version(1, ReportStatus.DRAFT, content, author_id, author, now, ReportEvent.SAVE)
    return Report(study_instance_uid, facility_id, accession_number, (first,))


def _check_base(report: Report, base_version: int) -> None:
    if base_version != report.version:
        raise VersionConflict(report.version, base_version)


def _moved(
    report: Report,
    event: ReportEvent,
    base_version: int,
    content: Content,
    author_id: int,
    author: str,
    now: datetime,
    *,
    signed: bool = False,
    addendum: str = "",
    reason: str = "",
    overrides: tuple[Override, ...] = (),
) -> Report:
    _check_base(report, base_version)
    status = next_status(report.status, event)
    version = Version(
        report.version + 1,
        status,
        content,
        author_id,
        author,
        now,
        event,
        signed=signed,
        addendum=addendum,
        reason=reason,
        overrides=overrides,
    )
    return replace(report, versions=(*report.versions, version))


def save(
    report: Report, content: Content, base_version: int, author_id: int, author: str, now: datetime
) -> Report:
    """A new version of a draft (or of a preliminary being finalised)."""
    if report.content.template_id != content.template_id and report.status is not _S.DRAFT:
        raise ReportError("a signed preliminary keeps its template")
    return _moved(report, ReportEvent.SAVE, base_version, content, author_id, author, now)


def sign(
    report: Report,
    final: bool,
    base_version: int,
    author_id: int,
    author: str,
    now: datetime,
    overrides: tuple[Override, ...] = (),
    difference: Difference | None = None,
) -> Report:
    """Sign the current content as preliminary or final. Finalising another
    radiologist's preliminary states how the final differs from it."""
    event = ReportEvent.SIGN_FINAL if final else ReportEvent.SIGN_PRELIMINARY
    prelim = report.preliminary()
    signed = _moved(
        report,
        event,
        base_version,
        report.content,
        author_id,
        author,
        now,
        signed=True,
        overrides=overrides,
    )
    if not final:
        return replace(signed, preliminary_by=author_id)
    if prelim is None or prelim.author_id == author_id:
        return replace(signed, final_by=author_id)  # one reader's own read: nothing to compare
    if prelim.content.same_words(report.content):
        if difference not in (None, Difference.NONE):
            raise ReportError("the final says what the preliminary said: there is no difference")
        difference = Difference.NONE
    elif difference in (None, Difference.NONE):
        raise ReportError(
            "the final differs from the preliminary read: say whether the difference "
            "is minor or major"
        )
    return replace(signed, final_by=author_id, difference=difference)


def addend(
    report: Report, text: str, base_version: int, author_id: int, author: str, now: datetime
) -> Report:
    """An addendum to a signed final report (signed as it is made)."""
    if not text.strip():
        raise ReportError("an addendum needs text")
    return _moved(
        report,
        ReportEvent.ADDEND,
        base_version,
        report.content,
        author_id,
        author,
        now,
        signed=True,
        addendum=text.strip(),
    )


def correct(
    report: Report,
    content: Content,
    reason: str,
    base_version: int,
    author_id: int,
    author: str,
    now: datetime,
    overrides: tuple[Override, ...] = (),
) -> Report:
    """A corrected report replacing what was signed, with the reason (signed)."""
    if not reason.strip():
        raise ReportError("a correction needs its reason")
    if report.content.same_words(content):
        raise ReportError("the correction changes nothing")
    return _moved(
        report,
        ReportEvent.CORRECT,
        base_version,
        content,
        author_id,
        author,
        now,
        signed=True,
        reason=reason.strip(),
        overrides=overrides,
    )


def cancel(report: Report, base_version: int, author_id: int, author: str, now: datetime) -> Report:
    return _moved(report, ReportEvent.CANCEL, base_version, report.content, author_id, author, now)
