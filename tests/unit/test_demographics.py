from __future__ import annotations

from datetime import date

import pytest

from telerad.domain.demographics import patient_age, sex_label


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        ("19790315", "20260314", "46 y"),
        ("19790315", "20260315", "47 y"),
        ("20240101", "20260101", "2 y"),
        ("20250101", "20251231", "11 mo"),
        ("20251101", "20251215", "1 mo"),
        ("20251201", "20251215", "14 d"),
        ("20000229", "20250228", "24 y"),
        ("", "20260101", ""),
        ("19700101", "", ""),
        ("1970", "20260101", ""),
        ("20270101", "20260101", ""),  # born after the study: not an age
        ("19701301", "20260101", ""),
    ],
)
def test_patient_age(born: str, on: str, age: str) -> None:
    assert patient_age(born, on) == age


def test_patient_age_on_a_date() -> None:
    assert patient_age("19700101", date(2026, 12, 2)) == "56 y"


def test_sex_label() -> None:
    assert [sex_label(s) for s in ("F", "m", "O", "", "X")] == ["F", "M", "other", "", ""]
