"""DICOM query semantics (PS3.4 C.2.2.2), independent of transport and storage.

C-FIND identifiers and QIDO-RS query parameters both become a :class:`Query`;
the index turns it into SQL. Kinds of matching: single value, wildcard
(``*`` and ``?``), range (dates and times), list of UIDs, and universal
(an empty value asks for the attribute to be returned, not matched).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from telerad.domain.model import Level


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: int
    vr: str
    level: Level


def _a(keyword: str, tag: int, vr: str, level: Level) -> Attribute:
    return Attribute(keyword, tag, vr, level)


P, ST, SE, IM = Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE

#: Every attribute the index can match and return, by keyword.
ATTRIBUTES: dict[str, Attribute] = {
    a.keyword: a
    for a in (
        _a("PatientName", 0x00100010, "PN", P),
        _a("PatientID", 0x00100020, "LO", P),
        _a("PatientBirthDate", 0x00100030, "DA", P),
        _a("PatientSex", 0x00100040, "CS", P),
        _a("NumberOfPatientRelatedStudies", 0x00201200, "IS", P),
        _a("StudyInstanceUID", 0x0020000D, "UI", ST),
        _a("StudyDate", 0x00080020, "DA", ST),
        _a("StudyTime", 0x00080030, "TM", ST),
        _a("AccessionNumber", 0x00080050, "SH", ST),
        _a("StudyID", 0x00200010, "SH", ST),
        _a("StudyDescription", 0x00081030, "LO", ST),
        _a("ReferringPhysicianName", 0x00080090, "PN", ST),
        _a("InstitutionName", 0x00080080, "LO", ST),
        _a("ModalitiesInStudy", 0x00080061, "CS", ST),
        _a("NumberOfStudyRelatedSeries", 0x00201206, "IS", ST),
        _a("NumberOfStudyRelatedInstances", 0x00201208, "IS", ST),
        _a("SeriesInstanceUID", 0x0020000E, "UI", SE),
        _a("Modality", 0x00080060, "CS", SE),
        _a("SeriesNumber", 0x00200011, "IS", SE),
        _a("SeriesDescription", 0x0008103E, "LO", SE),
        _a("SeriesDate", 0x00080021, "DA", SE),
        _a("SeriesTime", 0x00080031, "TM", SE),
        _a("BodyPartExamined", 0x00180015, "CS", SE),
        _a("NumberOfSeriesRelatedInstances", 0x00201209, "IS", SE),
        _a("SOPInstanceUID", 0x00080018, "UI", IM),
        _a("SOPClassUID", 0x00080016, "UI", IM),
        _a("InstanceNumber", 0x00200013, "IS", IM),
        _a("Rows", 0x00280010, "US", IM),
        _a("Columns", 0x00280011, "US", IM),
        _a("NumberOfFrames", 0x00280008, "IS", IM),
        _a("AvailableTransferSyntaxUID", 0x00083002, "UI", IM),
    )
}
BY_TAG: dict[int, Attribute] = {a.tag: a for a in ATTRIBUTES.values()}

#: The attributes returned by default at each level (QIDO-RS PS3.18 Table 10.6.3-3..5).
DEFAULT_RETURN: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "NumberOfPatientRelatedStudies",
    ),
    Level.STUDY: (
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "StudyDescription",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    Level.SERIES: (
        "Modality",
        "SeriesDescription",
        "SeriesInstanceUID",
        "SeriesNumber",
        "SeriesDate",
        "SeriesTime",
        "BodyPartExamined",
        "NumberOfSeriesRelatedInstances",
        "StudyInstanceUID",
    ),
    Level.IMAGE: (
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceNumber",
        "Rows",
        "Columns",
        "NumberOfFrames",
        "AvailableTransferSyntaxUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
    ),
}

LEVELS_UP_TO: dict[Level, tuple[Level, ...]] = {
    Level.PATIENT: (P,),
    Level.STUDY: (P, ST),
    Level.SERIES: (P, ST, SE),
    Level.IMAGE: (P, ST, SE, IM),
}


class QueryError(ValueError):
    """A query that cannot be understood; the message says why."""


@dataclass(frozen=True)
class Exact:
    value: str


@dataclass(frozen=True)
class Wildcard:
    pattern: str  # DICOM pattern with * and ?


@dataclass(frozen=True)
class Range:
    low: str | None
    high: str | None


@dataclass(frozen=True)
class UidList:
    uids: tuple[str, ...]


Match = Exact | Wildcard | Range | UidList


@dataclass
class Query:
    level: Level
    matches: dict[str, Match] = field(default_factory=dict)
    returns: set[str] = field(default_factory=set)
    #: None means every facility (network scope); otherwise only these.
    facility_ids: frozenset[int] | None = None
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0
    #: Studies visible beyond ``facility_ids`` (break-glass grants); not at PATIENT level.
    granted_studies: frozenset[str] = frozenset()
    #: STUDY level: the newest study (date, then time) first, as people browse a list;
    #: otherwise in the order the index holds them.
    newest_first: bool = False

    def return_keys(self) -> list[str]:
        """Keywords to return: the level's defaults, requested ones and matched ones."""
        wanted = set(self.returns) | set(self.matches)
        keys = [k for k in DEFAULT_RETURN[self.level]]
        keys += sorted(k for k in wanted if k not in keys)
        allowed = {lv for lv in LEVELS_UP_TO[self.level]}
        return [k for k in keys if ATTRIBUTES[k].level in allowed]


_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def _normalise_date(value: str, vr: str) -> str:
    value = value.strip()
    if vr == "DA":
        legacy = value.replace(".", "")  # ACR-NEMA style 1990.01.31
        if not _DA.match(legacy):
            raise QueryError(f"'{value}' is not a date (YYYYMMDD)")
        return legacy
    if vr == "TM":
        legacy = value.replace(":", "")
        if not _TM.match(legacy):
            raise QueryError(f"'{value}' is not a time (HHMMSS.FFFFFF)")
        return legacy
    return value


def parse_match(keyword: str, raw: str | list[str] | None) -> Match | None:
    """Turn one matching key's value into a :class:`Match` (None for universal matching)."""
    attribute = ATTRIBUTES.get(keyword)
    if attribute is None:
        raise QueryError(f"{keyword} is not a supported matching key")
    if raw is None:
        return None
    if isinstance(raw, list):
        values = [v for v in raw if v]
        if not values:
            return None
        if attribute.vr == "UI":
            return UidList(tuple(values))
        raw = values[0] if len(values) == 1 else "\\".join(values)
    value = raw.strip() if attribute.vr != "PN" else raw.rstrip()
    if value in ("", "*"):
        return None
    if attribute.vr == "UI":
        uids = tuple(u.strip() for u in re.split(r"[\\,]", value) if u.strip())
        return Exact(uids[0]) if len(uids) == 1 else UidList(uids)
    if attribute.vr in ("DA", "TM", "DT") and "-" in value:
        low, _, high = value.partition("-")
        if not low and not high:
            return None
        return Range(
            _normalise_date(low, attribute.vr) if low else None,
            _normalise_date(high, attribute.vr) if high else None,
        )
    if attribute.vr in ("DA", "TM"):
        return Exact(_normalise_date(value, attribute.vr))
    if "\\" in value and attribute.vr == "CS":
        # ModalitiesInStudy=CT\MR: any of the listed values.
        return UidList(tuple(v for v in value.split("\\") if v))
    if "*" in value or "?" in value:
        return Wildcard(value)
    return Exact(value)


def like_pattern(pattern: str) -> str:
    """DICOM wildcard → SQL LIKE pattern (escape character ``\\``)."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def normalise_person_name(name: str) -> str:
    """Case- and separator-insensitive form of a PN used for matching."""
    return name.upper().replace("^", " ").replace("=", " ").strip()


def typed_person_name(text: str) -> str:
    """A name as a person types it into a search box, in DICOM PN form.

    "Doe, Jane M" (how pages show a name) → "Doe^Jane M"; "Doe^Jane" and "doe"
    stay as they are. Matching then ignores case and separators
    (:func:`normalise_person_name`).
    """
    if "^" in text or "," not in text:
        return text
    family, _, given = text.partition(",")
    return f"{family.strip()}^{given.strip()}" if given.strip() else family.strip()
