"""Request and response bodies of ``/api/reports``.

A write names the version it was made on (``version``); a report that moved on
meanwhile answers 409 with its current state. Signing bodies carry the password
(and TOTP code) that re-authenticate the signer; they are used once, never kept.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from telerad.domain.report_checks import Finding
from telerad.domain.reports import Report, Version
from telerad.services.reports import ReportSummary

_UID = r"^[0-2](\.(0|[1-9][0-9]*))+$"
_ID = r"^[A-Za-z0-9._-]{1,64}$"
#: A section's text or a field's value: generous, but bounded.
TEXT_MAX = 20_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class StartIn(_Body):
    study_instance_uid: str = Field(max_length=64, pattern=_UID)
    template_id: str = Field(default="", max_length=64, description="empty: the study's own")


class ContentIn(_Body):
    version: int = Field(ge=1, description="the version this change was made on")
    sections: dict[str, str] = Field(default_factory=dict, max_length=64)
    fields: dict[str, str] = Field(default_factory=dict, max_length=512)
    template_id: str = Field(default="", max_length=64, description="switch template (drafts)")


class Reauthentication(_Body):
    password: str = Field(default="", max_length=256)
    code: str = Field(default="", max_length=16, description="the TOTP code, when enrolled")


class SignIn(Reauthentication):
    version: int = Field(ge=1)
    final: bool = True
    overrides: dict[str, str] = Field(
        default_factory=dict, description="check → the reason it is overridden"
    )
    difference: str = Field(
        default="", description="finalising another's preliminary: none, minor or major"
    )


class AddendumIn(Reauthentication):
    version: int = Field(ge=1)
    text: str = Field(min_length=1, max_length=TEXT_MAX)


class CorrectionIn(Reauthentication):
    version: int = Field(ge=1)
    sections: dict[str, str] = Field(default_factory=dict, max_length=64)
    fields: dict[str, str] = Field(default_factory=dict, max_length=512)
    reason: str = Field(min_length=1, max_length=1000)
    overrides: dict[str, str] = Field(default_factory=dict)


class FindingOut(BaseModel):
    check: str
    message: str
    where: str

    @classmethod
    def of(cls, f: Finding) -> FindingOut:
        return cls(check=f.check.value, message=f.message, where=f.where)


class OverrideOut(BaseModel):
    check: str
    message: str
    reason: str


class VersionOut(BaseModel):
    number: int
    status: str
    event: str
    author: str
    made_at: dt.datetime
    signed: bool
    sections: dict[str, str]
    fields: dict[str, str]
    addendum: str = ""
    reason: str = ""
    overrides: list[OverrideOut] = []

    @classmethod
    def of(cls, v: Version) -> VersionOut:
        return cls(
            number=v.number,
            status=v.status.value,
            event=v.event.value,
            author=v.author,
            made_at=v.made_at,
            signed=v.signed,
            sections=dict(v.content.sections),
            fields=dict(v.content.fields),
            addendum=v.addendum,
            reason=v.reason,
            overrides=[OverrideOut(**o.__dict__) for o in v.overrides],
        )


class ReportOut(BaseModel):
    id: int
    study_instance_uid: str
    accession_number: str
    status: str
    version: int
    template_id: str
    template_version: str
    sections: dict[str, str]
    fields: dict[str, str]
    difference: str | None = None
    addenda: list[str] = []
    versions: list[VersionOut] = []

    @classmethod
    def of(cls, r: Report, with_versions: bool = True) -> ReportOut:
        c = r.content
        return cls(
            id=r.id or 0,
            study_instance_uid=r.study_instance_uid,
            accession_number=r.accession_number,
            status=r.status.value,
            version=r.version,
            template_id=c.template_id,
            template_version=c.template_version,
            sections=dict(c.sections),
            fields=dict(c.fields),
            difference=r.difference.value if r.difference else None,
            addenda=[v.addendum for v in r.addenda()],
            versions=[VersionOut.of(v) for v in r.versions] if with_versions else [],
        )


class ReportListItem(BaseModel):
    id: int
    study_instance_uid: str
    accession_number: str
    patient_id: str
    status: str
    version: int
    updated_at: dt.datetime
    signed_at: dt.datetime | None

    @classmethod
    def of(cls, s: ReportSummary) -> ReportListItem:
        return cls(
            id=s.id,
            study_instance_uid=s.study_instance_uid,
            accession_number=s.accession_number,
            patient_id=s.patient_id,
            status=s.status.value,
            version=s.version,
            updated_at=s.updated_at,
            signed_at=s.signed_at,
        )
