"""De-identification: the Basic Application Level Confidentiality Profile (PS3.15 Annex E).

Pure: the profile is data (``TABLE``, transcribed from PS3.15 Table E.1-1), the rules act
on a pydicom ``Dataset`` in memory. Files, folders, the secret and quarantine live in
``telerad.services.deid``.

Actions are those of Table E.1-1: X remove, Z zero length, D dummy, K keep, C clean,
U replace UID; combined codes are resolved without IOD knowledge to the choice that is
valid whatever the attribute's type (X/Z → Z, X/D, Z/D, X/Z/D → D; X/Z/U* → keep the
sequence and replace the UIDs in it). Attributes the table does not name are kept,
except that every UI value that is not a UID of the standard is replaced (U), every
private element is removed (unless Retain Safe Private keeps a known safe one), and
curve and overlay groups are removed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from telerad.domain.deid_table import SAFE_PRIVATE, TABLE_TEXT
from telerad.domain.uids import MAX_UID_LENGTH


class Action(StrEnum):
    REMOVE = "X"
    ZERO = "Z"
    DUMMY = "D"
    KEEP = "K"
    CLEAN = "C"
    REPLACE_UID = "U"
    REMOVE_OR_ZERO = "X/Z"
    REMOVE_OR_DUMMY = "X/D"
    ZERO_OR_DUMMY = "Z/D"
    REMOVE_ZERO_OR_DUMMY = "X/Z/D"
    REMOVE_ZERO_OR_REPLACE_UIDS = "X/Z/U*"


class Option(StrEnum):
    """The profile options of PS3.15 E.3, as the command line names them."""

    RETAIN_SAFE_PRIVATE = "retain-safe-private"
    RETAIN_UIDS = "retain-uids"
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    RETAIN_INSTITUTION_IDENTITY = "retain-institution-identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    RETAIN_FULL_DATES = "retain-full-dates"
    RETAIN_MODIFIED_DATES = "retain-modified-dates"
    CLEAN_DESCRIPTORS = "clean-descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean-structured-content"
    CLEAN_GRAPHICS = "clean-graphics"


#: Column names used in ``TABLE_TEXT`` for each option.
_COLUMN = {
    "safe": Option.RETAIN_SAFE_PRIVATE,
    "uids": Option.RETAIN_UIDS,
    "device": Option.RETAIN_DEVICE_IDENTITY,
    "inst": Option.RETAIN_INSTITUTION_IDENTITY,
    "chars": Option.RETAIN_PATIENT_CHARACTERISTICS,
    "full": Option.RETAIN_FULL_DATES,
    "mod": Option.RETAIN_MODIFIED_DATES,
    "desc": Option.CLEAN_DESCRIPTORS,
    "struct": Option.CLEAN_STRUCTURED_CONTENT,
    "graph": Option.CLEAN_GRAPHICS,
}

#: CID 7050 De-identification Method codes (scheme DCM).
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
OPTION_CODES: dict[Option, tuple[str, str]] = {
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.RETAIN_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}


@dataclass(frozen=True)
class Rule:
    keyword: str
    basic: Action
    options: dict[Option, Action] = field(default_factory=dict)


def _parse_table(text: str) -> dict[BaseTag, Rule]:
    table: dict[BaseTag, Rule] = {}
    for line in text.strip().splitlines():
        keyword, basic, *columns = line.split()
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"Table E.1-1 transcription: unknown keyword {keyword}")
        options = {}
        for column in columns:
            name, action = column.split("=")
            options[_COLUMN[name]] = Action(action)
        table[Tag(tag)] = Rule(keyword, Action(basic), options)
    return table


#: Tag → rule, for the attributes of Table E.1-1 this module covers.
TABLE: dict[BaseTag, Rule] = _parse_table(TABLE_TEXT)


class ProfileError(ValueError):
    """Options that cannot be applied together."""


@dataclass(frozen=True)
class Profile:
    """The Basic Profile with a set of options."""

    options: frozenset[Option] = frozenset()

    def __post_init__(self) -> None:
        both = {Option.RETAIN_FULL_DATES, Option.RETAIN_MODIFIED_DATES}
        if both <= self.options:
            raise ProfileError("retain-full-dates and retain-modified-dates exclude each other")

    @classmethod
    def of(cls, options: Iterable[Option | str]) -> Profile:
        return cls(frozenset(Option(o) for o in options))

    def action(self, rule: Rule) -> Action:
        """The action for ``rule`` under the chosen options: keeping wins over cleaning."""
        chosen = [rule.options[o] for o in self.options if o in rule.options]
        for preferred in (Action.KEEP, Action.CLEAN):
            if preferred in chosen:
                return preferred
        return rule.basic

    def method_codes(self) -> list[tuple[str, str]]:
        """CID 7050 codes for the profile and each option applied, in code order."""
        codes = [BASIC_PROFILE_CODE] + [OPTION_CODES[o] for o in self.options]
        return sorted(codes)


@dataclass(frozen=True)
class Keys:
    """Per-facility secret material: UIDs and date shifts derive from it, nothing else."""

    secret: bytes
    facility: str

    def _mac(self, *parts: str) -> bytes:
        message = "\x00".join((self.facility, *parts)).encode()
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """``2.25.<int>``: HMAC-SHA256 truncated to a version-8 UUID (RFC 9562), ≤ 44 chars."""
        value = int.from_bytes(self._mac("uid", original.rstrip("\x00 "))[:16], "big")
        value &= ~(0xF000 << 64) & ~(0xC000 << 48)  # clear version and variant bits
        value |= (0x8000 << 64) | (0x8000 << 48)  # version 8, variant 10
        uid = f"2.25.{value}"
        assert len(uid) <= MAX_UID_LENGTH
        return uid

    def date_shift(self, patient_id: str) -> dt.timedelta:
        """A shift of 1 to 3650 days back, the same for every study of one patient."""
        digest = self._mac("date-shift", patient_id.rstrip("\x00 "))
        return dt.timedelta(days=-(1 + int.from_bytes(digest[:8], "big") % 3650))


DICOM_ROOT = "1.2.840.10008."
DUMMY_TEXT = "ANONYMIZED"
_DUMMY: dict[str, object] = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000D",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "FL": 0.0,
    "FD": 0.0,
}
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_CURVE_OR_OVERLAY = frozenset(range(0x5000, 0x5020, 2)) | frozenset(range(0x6000, 0x6020, 2))
_SECONDS = re.compile(r"^\d{14}")


class Context:
    """What one instance's de-identification needs besides the rules."""

    def __init__(self, profile: Profile, keys: Keys, source: Dataset) -> None:
        self.profile = profile
        self.keys = keys
        patient_id = str(source.get("PatientID", "") or "")
        self.shift = keys.date_shift(patient_id)
        self.identifiers = _identifiers(source)

    def new_uid(self, value: str) -> str:
        if Option.RETAIN_UIDS in self.profile.options or not value:
            return value
        if value in UID_dictionary or value.startswith(DICOM_ROOT):
            return value  # well-known UIDs of the standard (e.g. a Frame of Reference)
        return self.keys.uid(value)

    def clean_text(self, value: str) -> str:
        for token in self.identifiers:
            value = re.sub(re.escape(token), "", value, flags=re.IGNORECASE)
        return " ".join(value.split())

    def shift_date(self, value: str, vr: str) -> str:
        if Option.RETAIN_FULL_DATES in self.profile.options:
            return value
        if Option.RETAIN_MODIFIED_DATES not in self.profile.options:
            return str(_DUMMY[vr])
        try:
            if vr == "DA":
                day = dt.datetime.strptime(value[:8], "%Y%m%d") + self.shift
                return day.strftime("%Y%m%d")
            if _SECONDS.match(value):  # DT: the date part moves, the time of day stays
                moved = dt.datetime.strptime(value[:8], "%Y%m%d") + self.shift
                return moved.strftime("%Y%m%d") + value[8:]
        except ValueError:
            pass
        return str(_DUMMY[vr]) if vr in ("DA", "DT") else value


def _identifiers(ds: Dataset) -> list[str]:
    """Values a descriptor must not repeat: names, IDs, dates of the patient and staff."""
    found: set[str] = set()
    for keyword in (
        "PatientName",
        "PatientID",
        "OtherPatientIDs",
        "PatientBirthDate",
        "AccessionNumber",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "InstitutionName",
        "StationName",
    ):
        element = ds.get(keyword)
        if element is None:
            continue
        values = element if isinstance(element, list | tuple) else [element]
        for value in values:
            for token in re.split(r"[\^=\s,]+", str(value)):
                if len(token) >= 3:
                    found.add(token)
    return sorted(found, key=len, reverse=True)


def deidentify(ds: Dataset, profile: Profile, keys: Keys) -> Dataset:
    """De-identify ``ds`` in place (pixel data untouched) and record the method; return it."""
    context = Context(profile, keys, ds)
    _apply(ds, context)
    _clean_file_meta(ds)
    record_method(ds, profile)
    return ds


#: File Meta elements that name where the file came from (PS3.10 7.1).
_SOURCE_META = (
    "SourceApplicationEntityTitle",
    "SendingApplicationEntityTitle",
    "ReceivingApplicationEntityTitle",
    "SourcePresentationAddress",
    "SendingPresentationAddress",
    "ReceivingPresentationAddress",
    "PrivateInformationCreatorUID",
    "PrivateInformation",
)


def _clean_file_meta(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for keyword in _SOURCE_META:
        if keyword in meta:
            delattr(meta, keyword)
    if "MediaStorageSOPInstanceUID" in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _apply(ds: Dataset, context: Context) -> None:
    for element in list(ds):
        tag = element.tag
        if tag.is_private:
            if not _safe_private(ds, element, context.profile):
                del ds[tag]
            continue
        if tag.group in _CURVE_OR_OVERLAY:
            del ds[tag]  # curves and overlays: bitmaps and text we cannot clean
            continue
        rule = TABLE.get(tag)
        if rule is None:
            _default(element, context)
            continue
        _act(ds, element, context.profile.action(rule), context)


def _default(element: DataElement, context: Context) -> None:
    if element.VR == "UI" and not _names_a_kind(element):
        _replace_uids(element, context)
    elif element.VR == "SQ":
        for item in element.value:
            _apply(item, context)


def _names_a_kind(element: DataElement) -> bool:
    """UIDs of SOP classes, transfer syntaxes and coding schemes name kinds, not patients."""
    keyword = element.keyword or ""
    return keyword.endswith(_KIND_SUFFIXES) or keyword in _KIND_KEYWORDS


_KIND_SUFFIXES = ("ClassUID", "SyntaxUID", "ClassesSupported")
_KIND_KEYWORDS = frozenset({"CodingSchemeUID", "MappingResourceUID", "ContextUID"})


def _act(ds: Dataset, element: DataElement, action: Action, context: Context) -> None:
    if action is Action.REMOVE:
        del ds[element.tag]
    elif action in (Action.ZERO, Action.REMOVE_OR_ZERO):
        _zero(element)
    elif action in (
        Action.DUMMY,
        Action.REMOVE_OR_DUMMY,
        Action.ZERO_OR_DUMMY,
        Action.REMOVE_ZERO_OR_DUMMY,
    ):
        _dummy(element, context)
    elif action is Action.REPLACE_UID:
        _replace_uids(element, context)
    elif action is Action.CLEAN:
        _clean(element, context)
    else:  # KEEP, and X/Z/U*: keep the sequence, its UIDs are replaced by the default rule
        _default(element, context)


def _zero(element: DataElement) -> None:
    element.value = Sequence() if element.VR == "SQ" else None


def _dummy(element: DataElement, context: Context) -> None:
    vr = element.VR
    if vr == "SQ":
        element.value = Sequence()
    elif vr == "UI":
        _replace_uids(element, context)
    elif vr in _TEXT_VRS:
        element.value = DUMMY_TEXT
    elif vr in _DUMMY:
        element.value = _DUMMY[vr]
    else:
        element.value = None


def _replace_uids(element: DataElement, context: Context) -> None:
    if element.VR != "UI" or element.value in (None, ""):
        if element.VR == "SQ":
            _default(element, context)
        return
    values: list[str] = list(element.value) if element.VM > 1 else [element.value]
    mapped = [context.new_uid(str(v)) for v in values]
    element.value = mapped if element.VM > 1 else mapped[0]


def _clean(element: DataElement, context: Context) -> None:
    vr = element.VR
    if vr == "SQ":
        for item in element.value:
            _apply(item, context)
    elif vr in ("DA", "DT", "TM"):
        if element.value in (None, ""):
            return
        if vr == "TM":
            if Option.RETAIN_FULL_DATES not in context.profile.options and (
                Option.RETAIN_MODIFIED_DATES not in context.profile.options
            ):
                element.value = _DUMMY["TM"]
            return
        values = list(element.value) if element.VM > 1 else [element.value]
        shifted = [context.shift_date(str(v), vr) for v in values]
        element.value = shifted if element.VM > 1 else shifted[0]
    elif vr in _TEXT_VRS and vr != "PN":
        if element.value in (None, ""):
            return
        values = list(element.value) if element.VM > 1 else [element.value]
        cleaned = [context.clean_text(str(v)) for v in values]
        element.value = cleaned if element.VM > 1 else cleaned[0]
    else:
        _dummy(element, context)


def _safe_private(ds: Dataset, element: DataElement, profile: Profile) -> bool:
    if Option.RETAIN_SAFE_PRIVATE not in profile.options:
        return False
    tag = element.tag
    if tag.element < 0x0100:  # a private creator: kept when a block it reserves keeps data
        creator = str(element.value).strip()
        return any(c == creator and g == tag.group for c, g, _ in SAFE_PRIVATE)
    creator_tag = Tag(tag.group, tag.element >> 8)
    if creator_tag not in ds:
        return False
    creator = str(ds[creator_tag].value).strip()
    return (creator, tag.group, tag.element & 0xFF) in SAFE_PRIVATE


def record_method(ds: Dataset, profile: Profile) -> None:
    """PatientIdentityRemoved, DeidentificationMethod(+CodeSequence), temporal status."""
    ds.PatientIdentityRemoved = "YES"
    names = ["Basic Application Confidentiality Profile"] + sorted(o.value for o in profile.options)
    ds.DeidentificationMethod = [f"telerad: {n}"[:64] for n in names]
    codes = Sequence()
    for value, meaning in profile.method_codes():
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = codes
    if Option.RETAIN_FULL_DATES in profile.options:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif Option.RETAIN_MODIFIED_DATES in profile.options:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


# Burned-in annotation (PS3.15 E.3.1): we do not clean pixels, we hold risky instances back.
RISKY_MODALITIES = frozenset({"US", "SC", "OT", "XA", "RF", "ES", "XC"})
SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    }
)


def burned_in_risk(ds: Dataset) -> str | None:
    """Why ``ds`` may carry burned-in text, or None. The reason never quotes patient data."""
    burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned_in == "YES":
        return "BurnedInAnnotation is YES"
    if str(ds.get("SOPClassUID", "")) in SECONDARY_CAPTURE_CLASSES:
        return "secondary capture SOP class"
    image_type = ds.get("ImageType") or []
    image_type = [image_type] if isinstance(image_type, str) else list(image_type)
    flags = {str(v).strip().upper() for v in image_type}
    for flag in ("SCREEN SAVE", "SECONDARY"):
        if flag in flags:
            return f"ImageType has {flag}"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in RISKY_MODALITIES and burned_in != "NO":
        return f"modality {modality} without BurnedInAnnotation NO"
    return None


def keyword_actions(profile: Profile) -> dict[str, Action]:
    """Keyword → action under ``profile``: what the tests and docs check against."""
    return {rule.keyword: profile.action(rule) for rule in TABLE.values()}


def vr_of(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return dictionary_VR(tag) if tag is not None else "UN"
