"""The report aggregate: its status table, versions, optimistic locking, and the
difference between a preliminary and the final that finalised it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telerad.domain import reports as r
from telerad.domain.reports import (
    Content,
    Difference,
    ReportError,
    ReportEvent,
    ReportStatus,
    VersionConflict,
)

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
NIGHT, DAY = 7, 9  # the overnight reader and the day radiologist


def content(impression: str = "No acute intracranial abnormality.") -> Content:
    return Content("ct-head", "1", {"findings": "Normal.", "impression": impression})


def draft() -> r.Report:
    return r.new_report("1.2.3", 1, "ACC1", content(""), NIGHT, "Night^Reader", NOW)


def test_every_move_the_table_does_not_hold_is_refused_with_its_reason() -> None:
    for status in ReportStatus:
        for event in ReportEvent:
            if (status, event) in r.TRANSITIONS:
                assert r.next_status(status, event) is r.TRANSITIONS[(status, event)]
                continue
            with pytest.raises(ReportError) as err:
                r.next_status(status, event)
            assert status.value in str(err.value) and len(str(err.value)) > 30


def test_a_draft_is_saved_as_new_versions_and_nothing_is_overwritten() -> None:
    report = draft()
    one = r.save(report, content("First words."), 1, NIGHT, "Night^Reader", NOW)
    two = r.save(one, content("Second words."), 2, NIGHT, "Night^Reader", NOW)
    assert [v.number for v in two.versions] == [1, 2, 3]
    assert [v.content.text("impression") for v in two.versions] == [
        "",
        "First words.",
        "Second words.",
    ]
    assert two.status is ReportStatus.DRAFT and two.signed is None


def test_a_change_made_on_an_older_version_is_a_conflict_naming_both() -> None:
    report = r.save(draft(), content("Mine."), 1, NIGHT, "Night^Reader", NOW)
    with pytest.raises(VersionConflict) as err:
        r.save(report, content("Theirs."), 1, DAY, "Day^Reader", NOW)
    assert (err.value.current, err.value.given) == (2, 1)
    assert "version 2" in str(err.value) and "version 1" in str(err.value)
    with pytest.raises(VersionConflict):
        r.sign(report, True, 1, NIGHT, "Night^Reader", NOW)


def test_sign_final_then_addenda_and_a_correction() -> None:
    report = r.save(draft(), content(), 1, DAY, "Day^Reader", NOW)
    final = r.sign(report, True, 2, DAY, "Day^Reader", NOW + timedelta(minutes=5))
    assert final.status is ReportStatus.FINAL and final.final_by == DAY
    assert final.signed is final.current and final.difference is None
    with pytest.raises(ReportError, match="addendum or a correction"):
        r.save(final, content("Changed."), 3, DAY, "Day^Reader", NOW)
    with pytest.raises(ReportError, match="needs text"):
        r.addend(final, "  ", 3, DAY, "Day^Reader", NOW)
    appended = r.addend(final, "Also: sinus disease.", 3, DAY, "Day^Reader", NOW)
    assert appended.status is ReportStatus.APPENDED
    assert [v.addendum for v in appended.addenda()] == ["Also: sinus disease."]
    with pytest.raises(ReportError, match="reason"):
        r.correct(appended, content("Fixed."), "", 4, DAY, "Day^Reader", NOW)
    with pytest.raises(ReportError, match="changes nothing"):
        r.correct(appended, content(), "typo", 4, DAY, "Day^Reader", NOW)
    corrected = r.correct(appended, content("Small subdural."), "missed", 4, DAY, "D", NOW)
    assert corrected.status is ReportStatus.CORRECTED and corrected.current.reason == "missed"
    assert corrected.versions[2].content.text("impression") == content().text("impression")


def test_a_preliminary_finalised_by_another_reader_records_the_difference() -> None:
    prelim = r.sign(
        r.save(draft(), content("No bleed."), 1, NIGHT, "N", NOW), False, 2, NIGHT, "N", NOW
    )
    assert prelim.status is ReportStatus.PRELIMINARY and prelim.preliminary_by == NIGHT
    same = r.sign(prelim, True, 3, DAY, "D", NOW)
    assert same.difference is Difference.NONE and same.final_by == DAY
    with pytest.raises(ReportError, match="no difference"):
        r.sign(prelim, True, 3, DAY, "D", NOW, difference=Difference.MAJOR)

    revised = r.save(prelim, content("Small subdural haematoma."), 3, DAY, "D", NOW)
    with pytest.raises(ReportError, match="minor or major"):
        r.sign(revised, True, 4, DAY, "D", NOW)
    with pytest.raises(ReportError, match="minor or major"):
        r.sign(revised, True, 4, DAY, "D", NOW, difference=Difference.NONE)
    major = r.sign(revised, True, 4, DAY, "D", NOW, difference=Difference.MAJOR)
    assert major.difference is Difference.MAJOR
    assert major.preliminary() is not None and major.preliminary().author_id == NIGHT  # type: ignore[union-attr]


def test_a_reader_finalising_their_own_preliminary_is_not_a_discrepancy() -> None:
    prelim = r.sign(r.save(draft(), content(), 1, NIGHT, "N", NOW), False, 2, NIGHT, "N", NOW)
    revised = r.save(prelim, content("Worded better."), 3, NIGHT, "N", NOW)
    final = r.sign(revised, True, 4, NIGHT, "N", NOW)
    assert final.status is ReportStatus.FINAL and final.difference is None


def test_whitespace_is_not_a_difference_and_difference_parses() -> None:
    assert content("No  bleed.\n").same_words(content("No bleed."))
    assert not content("No bleed.").same_words(content("Bleed."))
    assert Difference.parse(" Major ") is Difference.MAJOR
    with pytest.raises(ReportError, match="none, minor or major"):
        Difference.parse("huge")


def test_a_draft_can_be_cancelled_a_signed_report_cannot() -> None:
    cancelled = r.cancel(draft(), 1, NIGHT, "N", NOW)
    assert cancelled.status is ReportStatus.CANCELLED
    final = r.sign(draft(), True, 1, NIGHT, "N", NOW)
    with pytest.raises(ReportError, match="corrected"):
        r.cancel(final, 2, NIGHT, "N", NOW)


def test_content_cannot_be_changed_through_its_mappings() -> None:
    c = content()
    with pytest.raises(TypeError):
        c.sections["impression"] = "x"  # type: ignore[index]
