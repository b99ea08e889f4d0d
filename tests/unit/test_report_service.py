"""Report use cases over fakes (services/reports.py): who may write a draft, signing
with re-authentication and the pre-sign checks, the worklist entry completed by a
final signature, addenda and corrections, conflicts, scope and audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import pyotp
import pytest
from tests.fakes.reports import FakeReports
from tests.fakes.world import World, world

from telerad.domain import templates as tpl
from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.identity import Principal, Role, User, principal_for
from telerad.domain.report_checks import Check, Prior
from telerad.domain.reports import Content, Difference, Report, ReportStatus, VersionConflict
from telerad.domain.templates import Field, FieldKind, Heading, Section, Template
from telerad.services.reports import (
    ChecksFailed,
    Forbidden,
    NotFound,
    Outgoing,
    Proof,
    ReportFacts,
    ReportFilter,
    ReportService,
    normal,
)

PASSWORD = "correct horse battery"
STUDY, OTHER_STUDY, FACILITY = "1.2.840.1", "1.2.840.2", 1

HEAD = Template(
    "ct-head",
    "CT head",
    sections=(
        Section("history", "History", Heading.HISTORY, default_text="Headache."),
        Section("comparison", "Comparison", Heading.COMPARISON),
        Section(
            "findings",
            "Findings",
            Heading.FINDINGS,
            fields=(
                Field(
                    "midline",
                    "Midline shift (mm)",
                    FieldKind.NUMBER,
                    unit="mm",
                    minimum=0,
                    maximum=30,
                ),
            ),
            normal_text="No haemorrhage, mass or infarct.",
        ),
        Section("impression", "Impression", Heading.IMPRESSION, normal_text="Normal CT head."),
    ),
    availability=tpl.Availability(modalities=frozenset({"CT"})),
)
GENERIC = Template(
    "generic",
    "Any study",
    sections=(Section("impression", "Impression", Heading.IMPRESSION),),
    fallback=True,
)


@dataclass
class Templates:
    known: Sequence[Template] = (HEAD, GENERIC)

    def get(self, template_id: str) -> Template | None:
        return next((t for t in self.known if t.id == template_id), None)

    def choose(
        self, procedure_code: str, modality: str, sex: str, age: int | None, description: str = ""
    ) -> tpl.Choice:
        return tpl.choose(self.known, procedure_code, modality, sex, age, description)

    def offered(self, modality: str, sex: str, age: int | None) -> list[Template]:
        return tpl.offered(self.known, modality, sex, age)


@dataclass
class Studies:
    facts_of: dict[str, ReportFacts] = field(default_factory=dict)

    def facts(self, who: Principal, study_uid: str) -> ReportFacts | None:
        found = self.facts_of.get(study_uid)
        return found if found is not None and who.sees(found.facility_id, study_uid) else None


@dataclass
class Holds:
    held: dict[str, int] = field(default_factory=dict)
    completed: list[tuple[str, int]] = field(default_factory=list)

    def holder(self, uid: str) -> int | None:
        return self.held.get(uid)

    def complete(self, uid: str, reader_id: int, now: datetime | None = None) -> None:
        self.completed.append((uid, reader_id))
        self.held.pop(uid, None)


@dataclass
class Setup:
    w: World
    store: FakeReports
    holds: Holds
    service: ReportService
    night: User
    day: User
    night_seed: str
    day_seed: str

    def who(self, user: User, facilities: frozenset[int] = frozenset({FACILITY})) -> Principal:
        return principal_for(user, facilities, auth_time=self.w.clock.now)

    def proof(self, seed: str) -> Proof:
        self.w.clock.after(seconds=31)  # a fresh TOTP step: a code is taken once
        return Proof(PASSWORD, pyotp.TOTP(seed).at(self.w.clock.now), "10.1.2.3")


def _facts(uid: str, **changes: object) -> ReportFacts:
    values: dict[str, object] = {
        "study_instance_uid": uid,
        "facility_id": FACILITY,
        "accession_number": "ACC-" + uid[-1],
        "patient_id": "PID-1",
        "patient_name": "Doe^Jane",
        "sex": "F",
        "age": 47,
        "modality": "CT",
        "procedure_code": "CTHEAD",
        "procedure": "CT HEAD WITHOUT CONTRAST",
        "reason": "headache",
        "study_date": date(2026, 12, 3),
        "priors": (Prior(date(2025, 6, 1), "CT", "CT HEAD"),),
    }
    values.update(changes)
    return ReportFacts(**values)  # type: ignore[arg-type]


def _sent(report: Report, facts: ReportFacts, now: datetime) -> Sequence[Outgoing]:
    return [Outgoing("hl7", f"R{report.id}V{report.version}", report.status.value, now)]


@pytest.fixture
def s() -> Setup:
    w = world()
    store, holds = FakeReports(), Holds()
    studies = Studies({STUDY: _facts(STUDY), OTHER_STUDY: _facts(OTHER_STUDY, facility_id=2)})
    service = ReportService(store, studies, Templates(), holds, w.auth, w.audit, _sent, w.clock)
    night = w.auth.create_user("night", Role.RADIOLOGIST, password=PASSWORD)
    day = w.auth.create_user("day", Role.RADIOLOGIST, password=PASSWORD)
    seeds = [w.auth.enroll_totp(u).split("secret=")[1].split("&")[0] for u in (night, day)]
    return Setup(w, store, holds, service, night, day, *seeds)


def _report_records(s: Setup) -> list[tuple[str, int, str]]:
    return [
        (r.action or "", r.outcome, r.detail)
        for r in s.w.stores.audit.records()
        if r.event_id == EventID.PROCEDURE_RECORD.code
    ]


def _written(s: Setup, report: Report, impression: str = "Normal CT head.") -> Report:
    content = normal(HEAD, report.content)
    content = Content(
        content.template_id,
        content.template_version,
        {**content.sections, "impression": impression},
        content.fields,
    )
    return s.service.save(s.who(s.night), report.id or 0, content, report.version)


def test_only_the_holder_starts_and_writes_a_draft_with_the_chosen_template(s: Setup) -> None:
    with pytest.raises(Forbidden, match="open the study from your worklist"):
        s.service.start(s.who(s.night), STUDY)
    s.holds.held[STUDY] = s.night.id
    with pytest.raises(Forbidden, match="another radiologist holds"):
        s.service.start(s.who(s.day), STUDY)
    draft = s.service.start(s.who(s.night), STUDY)
    assert draft.status is ReportStatus.DRAFT and draft.content.template_id == "ct-head"
    assert draft.content.text("history") == "Headache."  # the template's default
    assert s.service.start(s.who(s.night), STUDY) == draft  # the same report, not a second
    with pytest.raises(NotFound):
        s.service.start(s.who(s.night), OTHER_STUDY)  # another facility's study
    s.holds.held[STUDY] = s.day.id
    with pytest.raises(Forbidden, match="another radiologist holds"):
        _written(s, draft)
    assert [a for a, _, _ in _report_records(s)] == [Action.CREATE.value, Action.READ.value]


def test_sign_final_needs_the_password_and_code_and_completes_the_read(s: Setup) -> None:
    s.holds.held[STUDY] = s.night.id
    report = _written(s, s.service.start(s.who(s.night), STUDY))
    with pytest.raises(Forbidden):
        s.service.sign(
            s.who(s.night), report.id or 0, report.version, True, Proof("wrong password", "000000")
        )
    assert s.store.get(report.id or 0) == report and s.holds.completed == []
    final = s.service.sign(
        s.who(s.night), report.id or 0, report.version, True, s.proof(s.night_seed)
    )
    assert final.status is ReportStatus.FINAL and final.current.signed
    assert s.holds.completed == [(STUDY, s.night.id)]
    assert [o.message_id for _, o in s.store.queued] == [f"R{report.id}V{final.version}"]
    records = _report_records(s)
    assert (
        Action.UPDATE.value,
        Outcome.MINOR_FAILURE.value,
        f"report {report.id} (ACC-1): signature refused: re-authentication failed",
    ) in [(a, int(o), d) for a, o, d in records]
    assert records[-1][2].endswith("signed final")


def test_the_checks_block_a_signature_until_fixed_or_overridden_with_a_reason(s: Setup) -> None:
    s.holds.held[STUDY] = s.night.id
    report = s.service.start(s.who(s.night), STUDY)
    content = Content(
        "ct-head",
        "1",
        {"comparison": "CT of 2024-01-01.", "findings": "Prostate unremarkable."},
        {"midline": "45"},
    )
    report = s.service.save(s.who(s.night), report.id or 0, content, report.version)
    assert {f.check for f in s.service.checks(s.who(s.night), report.id or 0)} == {
        Check.IMPRESSION,
        Check.SEX,
        Check.RANGE,
        Check.COMPARISON,
    }
    with pytest.raises(ChecksFailed) as err:
        s.service.sign(s.who(s.night), report.id or 0, report.version, True, s.proof(s.night_seed))
    assert "the impression is empty" in str(err.value) and len(err.value.findings) == 4
    fixed = Content(
        "ct-head",
        "1",
        {"comparison": "CT of 2025-06-01.", "findings": "Normal.", "impression": "Normal."},
        {"midline": "45"},
    )
    report = s.service.save(s.who(s.night), report.id or 0, fixed, report.version)
    with pytest.raises(ChecksFailed, match="above 30 mm"):
        s.service.sign(
            s.who(s.night),
            report.id or 0,
            report.version,
            True,
            s.proof(s.night_seed),
            {"out-of-range": "  "},
        )
    signed = s.service.sign(
        s.who(s.night),
        report.id or 0,
        report.version,
        True,
        s.proof(s.night_seed),
        {"out-of-range": "measured twice: 45 mm"},
    )
    assert [(o.check, o.reason) for o in signed.current.overrides] == [
        ("out-of-range", "measured twice: 45 mm")
    ]


def test_a_preliminary_finalised_by_the_day_reader_records_the_difference(s: Setup) -> None:
    s.holds.held[STUDY] = s.night.id
    report = _written(s, s.service.start(s.who(s.night), STUDY), "No bleed.")
    prelim = s.service.sign(
        s.who(s.night), report.id or 0, report.version, False, s.proof(s.night_seed)
    )
    assert (
        prelim.status is ReportStatus.PRELIMINARY and s.holds.completed == []
    )  # still to be finalised
    s.holds.held[STUDY] = s.day.id
    revised = _written_by(s, s.day, prelim, "Small subdural haematoma.")
    with pytest.raises(Exception, match="minor or major"):
        s.service.sign(s.who(s.day), revised.id or 0, revised.version, True, s.proof(s.day_seed))
    final = s.service.sign(
        s.who(s.day),
        revised.id or 0,
        revised.version,
        True,
        s.proof(s.day_seed),
        difference="major",
    )
    assert final.difference is Difference.MAJOR and (final.preliminary_by, final.final_by) == (
        s.night.id,
        s.day.id,
    )
    assert s.store.differences(s.w.clock.now.replace(year=2000)) == {
        (s.night.id, Difference.MAJOR): 1
    }
    assert s.holds.completed == [(STUDY, s.day.id)]


def _written_by(s: Setup, user: User, report: Report, impression: str) -> Report:
    c = report.content
    content = Content(
        c.template_id, c.template_version, {**c.sections, "impression": impression}, c.fields
    )
    return s.service.save(s.who(user), report.id or 0, content, report.version)


def test_two_readers_on_one_draft_one_wins_the_other_gets_the_current_version(s: Setup) -> None:
    s.holds.held[STUDY] = s.night.id
    report = s.service.start(s.who(s.night), STUDY)
    first = _written(s, report, "First.")
    with pytest.raises(VersionConflict) as err:
        _written(s, report, "Second, on the old version.")
    assert err.value.current == first.version
    kept = s.store.get(report.id or 0)
    assert kept is not None and kept.content.text("impression") == "First."


def test_addenda_and_corrections_after_the_final_go_out_again(s: Setup) -> None:
    s.holds.held[STUDY] = s.night.id
    report = _written(s, s.service.start(s.who(s.night), STUDY))
    final = s.service.sign(
        s.who(s.night), report.id or 0, report.version, True, s.proof(s.night_seed)
    )
    appended = s.service.addend(
        s.who(s.day), final.id or 0, "Sinus disease noted.", final.version, s.proof(s.day_seed)
    )
    assert (
        appended.status is ReportStatus.APPENDED
        and appended.current.addendum == "Sinus disease noted."
    )
    c = appended.content
    changed = Content(
        c.template_id, c.template_version, {**c.sections, "impression": "Small subdural."}, c.fields
    )
    corrected = s.service.correct(
        s.who(s.day),
        final.id or 0,
        changed,
        "missed on first read",
        appended.version,
        s.proof(s.day_seed),
    )
    assert corrected.status is ReportStatus.CORRECTED
    assert [o.payload for _, o in s.store.queued] == ["final", "appended", "corrected"]
    outsider = s.w.auth.create_user("outsider", Role.RADIOLOGIST, password=PASSWORD)
    with pytest.raises(NotFound):
        s.service.addend(
            s.who(outsider, frozenset({2})), final.id or 0, "x", corrected.version, None
        )


def test_drafts_stay_in_the_reading_room_signed_reports_are_read_by_who_sees_the_study(
    s: Setup,
) -> None:
    s.holds.held[STUDY] = s.night.id
    report = _written(s, s.service.start(s.who(s.night), STUDY))
    tech = s.w.auth.create_user("tech", Role.FACILITY_USER, password=PASSWORD, facility_id=FACILITY)
    tech_who = principal_for(tech, frozenset())
    with pytest.raises(NotFound):
        s.service.get(tech_who, report.id or 0)
    assert s.service.for_study(tech_who, STUDY) == []
    assert s.service.find(tech_who, ReportFilter()) == []
    final = s.service.sign(
        s.who(s.night), report.id or 0, report.version, True, s.proof(s.night_seed)
    )
    assert s.service.get(tech_who, report.id or 0) == final
    assert [r.id for r in s.service.for_study(tech_who, STUDY)] == [final.id]
    assert [x.id for x in s.service.find(tech_who, ReportFilter())] == [final.id]
    with pytest.raises(Forbidden, match="only radiologists"):
        s.service.save(tech_who, final.id or 0, final.content, final.version)


def test_a_new_draft_takes_the_reason_for_the_exam_as_its_history() -> None:
    from telerad.services.reports import defaults

    bare = Template(
        "bare",
        "Bare",
        sections=(
            Section("history", "History", Heading.HISTORY),
            Section("impression", "Impression", Heading.IMPRESSION),
        ),
    )
    assert defaults(bare, "suspected pulmonary embolism").sections == {
        "history": "suspected pulmonary embolism"
    }
    assert defaults(HEAD, "dizzy").text("history") == "Headache."  # a default stays
    assert defaults(GENERIC, "dizzy").sections == {}  # no history section: nowhere to go
