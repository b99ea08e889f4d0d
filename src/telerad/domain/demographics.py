"""Patient demographics as people read them: age at the study, sex."""

from __future__ import annotations

from datetime import date

_SEX = {"F": "F", "M": "M", "O": "other"}


def dicom_date(value: str) -> date | None:
    """A DICOM date (YYYYMMDD) as a date; None when missing or unreadable."""
    text = value.strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def patient_age(birth_date: str, on: str | date) -> str:
    """The patient's age on a day, as an Age String reads (PS3.5 AS): "47 y", "3 mo",
    "12 d"; "" when either date is missing or unreadable (DICOM dates, YYYYMMDD)."""
    born = dicom_date(birth_date)
    day = on if isinstance(on, date) else dicom_date(on)
    if born is None or day is None or day < born:
        return ""
    years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    if years >= 2:
        return f"{years} y"
    months = (day.year - born.year) * 12 + day.month - born.month - (day.day < born.day)
    if months >= 1:
        return f"{months} mo"
    return f"{(day - born).days} d"


def sex_label(sex: str) -> str:
    """Patient's Sex (0010,0040) for display: F, M, other, or "" when not given."""
    return _SEX.get(sex.strip().upper(), "")
