"""Report templates as data: the IHE MRRT model (sections, coded fields, pick lists,
numbers with units and ranges, default text), which template fits a study, and macros.

A template is what a radiologist fills in; it is imported from MRRT / RadReport
HTML (``domain/mrrt``) or from a TOML/JSON form an administrator writes
(``domain/template_codec``) and stored as data, never as code. Sections carry the
CID 7001 headings (LOINC), so every output (HL7 ORU OBX, FHIR DiagnosticReport,
DICOM SR TID 2000) names a section the same way.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class TemplateError(ValueError):
    """A template that cannot be used; the message names the element at fault."""


@dataclass(frozen=True)
class Code:
    """A coded concept: value, coding scheme designator (as DICOM writes it: ``LN``
    for LOINC, ``RADLEX``, ``SCT`` for SNOMED CT, ``DCM``) and meaning."""

    value: str
    scheme: str
    meaning: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value} ({self.meaning})"


#: The coding schemes MRRT templates use, by the names their HTML writes.
SCHEMES = {
    "RADLEX": "RADLEX",
    "RADLEX.ORG": "RADLEX",
    "RID": "RADLEX",
    "LOINC": "LN",
    "LN": "LN",
    "SNOMED": "SCT",
    "SNOMEDCT": "SCT",
    "SNOMED-CT": "SCT",
    "SCT": "SCT",
    "DCM": "DCM",
    "UCUM": "UCUM",
}


def scheme_of(name: str) -> str:
    """The designator of a coding scheme named ``name`` (LOINC → LN, …)."""
    key = name.strip().upper().replace(" ", "")
    if key not in SCHEMES:
        raise TemplateError(f"unknown coding scheme {name!r} (known: RadLex, LOINC, SNOMED CT)")
    return SCHEMES[key]


class Heading(enum.Enum):
    """DICOM CID 7001 Diagnostic Imaging Report Headings (LOINC), the sections a
    report may have. The value is the LOINC code."""

    HISTORY = "11329-0"
    CLINICAL_INFORMATION = "55752-0"
    INDICATIONS = "18785-6"
    REQUEST = "55115-0"
    PROCEDURE = "55111-9"
    COMPARISON = "18834-2"
    FINDINGS = "59776-5"
    IMPRESSION = "19005-8"
    RECOMMENDATIONS = "18783-1"
    CONCLUSIONS = "55110-1"
    ADDENDUM = "55107-7"
    CRITICAL_RESULTS = "73568-8"
    SUMMARY = "55112-7"

    @property
    def code(self) -> Code:
        return Code(self.value, "LN", _HEADING_MEANINGS[self])


_HEADING_MEANINGS = {
    Heading.HISTORY: "History",
    Heading.CLINICAL_INFORMATION: "Clinical Information",
    Heading.INDICATIONS: "Indications for Procedure",
    Heading.REQUEST: "Request",
    Heading.PROCEDURE: "Current Procedure Descriptions",
    Heading.COMPARISON: "Previous Findings",
    Heading.FINDINGS: "Findings",
    Heading.IMPRESSION: "Impressions",
    Heading.RECOMMENDATIONS: "Recommendations",
    Heading.CONCLUSIONS: "Conclusions",
    Heading.ADDENDUM: "Addendum",
    Heading.CRITICAL_RESULTS: "Communication of Critical Results",
    Heading.SUMMARY: "Summary",
}

#: Section titles as templates write them, mapped to their heading (lower case).
HEADING_NAMES: Mapping[str, Heading] = {
    "history": Heading.HISTORY,
    "clinical history": Heading.HISTORY,
    "clinical information": Heading.CLINICAL_INFORMATION,
    "indication": Heading.INDICATIONS,
    "indications": Heading.INDICATIONS,
    "reason for exam": Heading.INDICATIONS,
    "request": Heading.REQUEST,
    "procedure": Heading.PROCEDURE,
    "technique": Heading.PROCEDURE,
    "comparison": Heading.COMPARISON,
    "comparisons": Heading.COMPARISON,
    "findings": Heading.FINDINGS,
    "impression": Heading.IMPRESSION,
    "impressions": Heading.IMPRESSION,
    "recommendation": Heading.RECOMMENDATIONS,
    "recommendations": Heading.RECOMMENDATIONS,
    "conclusion": Heading.CONCLUSIONS,
    "conclusions": Heading.CONCLUSIONS,
    "addendum": Heading.ADDENDUM,
    "critical results": Heading.CRITICAL_RESULTS,
    "communication of critical results": Heading.CRITICAL_RESULTS,
    "summary": Heading.SUMMARY,
}


def heading_of(title: str, code: str = "") -> Heading | None:
    """The CID 7001 heading a section is: by its LOINC code, else by its title."""
    for heading in Heading:
        if code and heading.value == code.strip():
            return heading
    return HEADING_NAMES.get(re.sub(r"\s+", " ", title.strip().lower()).rstrip(":"))


class FieldKind(enum.StrEnum):
    """The MRRT field types (HTML5 input types and elements)."""

    TEXT = "text"  # <input type=text> or <textarea>
    NUMBER = "number"  # <input type=number>, with unit and range
    CHOICE = "choice"  # <select> (one) or radio buttons
    MULTIPLE = "multiple"  # <select multiple> or check boxes
    CHECKBOX = "checkbox"  # a yes/no
    DATE = "date"


@dataclass(frozen=True)
class Option:
    """One value of a pick list, with its code when the template codes it."""

    value: str
    label: str
    code: Code | None = None


@dataclass(frozen=True)
class Field:
    """A field of a section: what the radiologist enters, and what it means."""

    id: str
    label: str
    kind: FieldKind = FieldKind.TEXT
    required: bool = False
    code: Code | None = None
    options: tuple[Option, ...] = ()
    unit: str = ""  # UCUM, for numbers
    minimum: float | None = None
    maximum: float | None = None
    default: str = ""
    normal: str = ""  # the value of a normal study (the "normal" button)
    step: float | None = None  # for numbers: the precision entered (MRRT ``step``)
    group: str = ""  # the part of its section it belongs to (an organ, "Nodule 1")

    def option(self, value: str) -> Option | None:
        for option in self.options:
            if option.value == value:
                return option
        return None

    def problem(self, value: str) -> str | None:
        """Why ``value`` is not a value of this field, or None when it is one (an
        empty value is always accepted here: whether it is required is a check)."""
        value = value.strip()
        if not value:
            return None
        if self.kind is FieldKind.NUMBER:
            number = as_number(value)
            if number is None:
                return f"{self.label}: {value!r} is not a number"
            unit = f" {self.unit}" if self.unit else ""
            if self.minimum is not None and number < self.minimum:
                return f"{self.label}: {value}{unit} is below {self.minimum:g}{unit}"
            if self.maximum is not None and number > self.maximum:
                return f"{self.label}: {value}{unit} is above {self.maximum:g}{unit}"
        elif self.kind is FieldKind.CHOICE:
            if self.option(value) is None:
                return f"{self.label}: {value!r} is not one of {', '.join(self.values())}"
        elif self.kind is FieldKind.MULTIPLE:
            unknown = [v for v in split_values(value) if self.option(v) is None]
            if unknown:
                return f"{self.label}: {', '.join(unknown)} not among {', '.join(self.values())}"
        elif self.kind is FieldKind.CHECKBOX:
            if value not in ("yes", "no"):
                return f"{self.label}: {value!r} is not yes or no"
        elif self.kind is FieldKind.DATE and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return f"{self.label}: {value!r} is not a date (YYYY-MM-DD)"
        return None

    def values(self) -> list[str]:
        return [o.value for o in self.options]

    def shown(self, value: str) -> str:
        """``value`` as a reader reads it: a number with its unit, options by their
        labels (several joined by commas), anything else as it is."""
        if self.kind is FieldKind.NUMBER and self.unit:
            return f"{value} {self.unit}"
        if self.kind in (FieldKind.CHOICE, FieldKind.MULTIPLE):
            labels = []
            for v in value.split(";"):
                option = self.option(v.strip())
                labels.append(option.label if option is not None else v.strip())
            return ", ".join(x for x in labels if x)
        return value


def as_number(value: str) -> float | None:
    """A number as radiologists type it: ``12.5``, or ``12,5`` with a decimal comma."""
    text = value.strip()
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
        return None  # not "1e4", "nan", "inf" or "1_000", which float() would take
    return float(text)


def split_values(value: str) -> list[str]:
    """The values of a MULTIPLE field, kept as one ``;``-separated text."""
    return [v.strip() for v in value.split(";") if v.strip()]


def narrative(section: Section, text: str, values: Mapping[str, str]) -> str:
    """A section as prose: its free text, then one ``Label: value`` line per field
    filled in (what HL7, FHIR, the PDF and the CLI show of it)."""
    lines = [text.rstrip()] if text.strip() else []
    for f in section.fields:
        value = str(values.get(f.id, "")).strip()
        if value:
            lines.append(f"{f.label}: {f.shown(value)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Section:
    """A report section: a CID 7001 heading, its fields and its free text."""

    id: str
    title: str
    heading: Heading | None
    fields: tuple[Field, ...] = ()
    default_text: str = ""
    normal_text: str = ""  # the text of a normal study
    required: bool = False  # the section's free text must not be empty

    @property
    def code(self) -> Code | None:
        return self.heading.code if self.heading is not None else None


class Sex(enum.StrEnum):
    FEMALE = "F"
    MALE = "M"


@dataclass(frozen=True)
class Availability:
    """Which studies a template fits: modalities, patient sex and age (in years).
    Empty means any."""

    modalities: frozenset[str] = frozenset()
    sexes: frozenset[Sex] = frozenset()
    min_age: int | None = None
    max_age: int | None = None

    def fits(self, modality: str, sex: str, age: int | None) -> str | None:
        """Why a study does not fit, or None when it does. An unknown sex or age
        does not exclude (the template is offered; the checks look at the text)."""
        if self.modalities and modality.upper() not in self.modalities:
            return f"for {', '.join(sorted(self.modalities))}, not {modality or 'no modality'}"
        if self.sexes and sex in ("F", "M") and Sex(sex) not in self.sexes:
            return "not for this patient's sex"
        if age is not None and self.min_age is not None and age < self.min_age:
            return f"for patients of {self.min_age} years or more"
        if age is not None and self.max_age is not None and age > self.max_age:
            return f"for patients of {self.max_age} years or less"
        return None


@dataclass(frozen=True)
class Template:
    """A report template (an MRRT template's content, as data)."""

    id: str  # a short stable name: "ct-head"
    title: str
    version: str = "1"
    language: str = "en"
    sections: tuple[Section, ...] = ()
    availability: Availability = field(default_factory=Availability)
    procedure_codes: frozenset[str] = frozenset()  # the catalogue's codes it is for
    macros: Mapping[str, str] = field(default_factory=dict)  # keyword → snippet
    code: Code | None = None  # the template's own code (RadReport RPT id, LOINC)
    fallback: bool = False  # offered when no other template fits
    #: The modalities whose studies get it when their procedure code is mapped to none.
    default_for: frozenset[str] = frozenset()

    def section(self, heading: Heading) -> Section | None:
        for section in self.sections:
            if section.heading is heading:
                return section
        return None

    def fields(self) -> list[tuple[Section, Field]]:
        return [(s, f) for s in self.sections for f in s.fields]

    def field(self, field_id: str) -> Field | None:
        for _, f in self.fields():
            if f.id == field_id:
                return f
        return None


def validate(template: Template) -> Template:
    """``template`` when it is usable, else a TemplateError naming what is wrong:
    unique section and field ids, pick lists with options, sane ranges, defaults
    that are values of their field, an impression section."""
    where = f"template {template.id!r}"
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", template.id):
        raise TemplateError(f"{where}: the id must be lower-case letters, digits, . _ -")
    if not template.title.strip():
        raise TemplateError(f"{where}: no title")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", template.version):
        raise TemplateError(f"{where}: a version is up to 16 letters, digits, . _ - (2, 1.4)")
    if not template.sections:
        raise TemplateError(f"{where}: no sections")
    seen: set[str] = set()
    for section in template.sections:
        if section.id in seen:
            raise TemplateError(f"{where}: section id {section.id!r} is used twice")
        seen.add(section.id)
        for f in section.fields:
            at = f"{where}, field {f.id!r} in section {section.title!r}"
            if f.id in seen:
                raise TemplateError(f"{at}: the id is used twice")
            seen.add(f.id)
            if f.kind in (FieldKind.CHOICE, FieldKind.MULTIPLE) and not f.options:
                raise TemplateError(f"{at}: a pick list without options")
            if f.minimum is not None and f.maximum is not None and f.minimum > f.maximum:
                raise TemplateError(f"{at}: minimum {f.minimum:g} above maximum {f.maximum:g}")
            if f.step is not None and f.step <= 0:
                raise TemplateError(f"{at}: a step must be above 0, not {f.step:g}")
            for value, what in ((f.default, "default"), (f.normal, "normal value")):
                problem = f.problem(value)
                if problem is not None:
                    raise TemplateError(f"{at}: the {what} is wrong: {problem}")
    if template.section(Heading.IMPRESSION) is None:
        raise TemplateError(f"{where}: no impression section (LOINC 19005-8)")
    low, high = template.availability.min_age, template.availability.max_age
    if low is not None and high is not None and low > high:
        raise TemplateError(f"{where}: min_age {low} is above max_age {high}")
    modalities = template.availability.modalities
    if modalities and not template.default_for <= modalities:
        extra = ", ".join(sorted(template.default_for - modalities))
        raise TemplateError(f"{where}: the default for {extra}, which it is not available for")
    for keyword in template.macros:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", keyword):
            raise TemplateError(f"{where}: macro keyword {keyword!r} is not a short word")
    return template


@dataclass(frozen=True)
class Choice:
    """The template chosen for a study, and why (shown to the radiologist)."""

    template: Template
    reason: str


def choose(
    templates: Sequence[Template],
    procedure_code: str,
    modality: str,
    sex: str = "",
    age: int | None = None,
    description: str = "",
) -> Choice:
    """The template for a study, among those that fit the patient (the first of
    ``templates`` wins a tie, so list the preferred ones first):

    1. the one mapped to its procedure code; when no template is (a study that came
       without an order, a facility's local code), the one whose title's words are
       all in the study's ``description`` ("CT head" for "CT HEAD WITHOUT
       CONTRAST"), the longest title;
    2. the one that is the default for its modality (mammography for MG);
    3. one for its modality that is mapped to no procedure code (a template for
       all of a modality's studies; most specific availability first);
    4. the fallback.

    A template mapped to some procedures of a modality (CT head) is not chosen for
    its other procedures (CT cervical spine): those get the fallback."""
    fitting = [t for t in templates if t.availability.fits(modality, sex, age) is None]
    code = procedure_code.strip()
    if code:
        for t in fitting:
            if code in t.procedure_codes:
                return Choice(t, f"mapped to procedure {code}")
    if description.strip():
        said = set(_words(description))
        named = [t for t in fitting if not t.fallback and _words(t.title) <= said]
        if named:
            best = max(named, key=lambda t: len(_words(t.title)))
            return Choice(best, f"by the study's description ({description.strip()[:64]})")
    modality = modality.strip().upper()
    for t in fitting:
        if modality and modality in t.default_for:
            return Choice(t, f"the default for {modality}")
    by_modality = [
        t
        for t in fitting
        if not t.fallback and not t.procedure_codes and modality in t.availability.modalities
    ]
    if by_modality:
        best = min(by_modality, key=lambda t: len(t.availability.modalities))
        return Choice(best, f"for {modality}")
    for t in fitting:
        if t.fallback:
            return Choice(t, "no template for this procedure: the general one")
    raise TemplateError("no template fits this study and there is no fallback template")


_FILLER = frozenset({"and", "or", "of", "the", "with", "without", "w", "wo", "for"})


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _FILLER}


def offered(
    templates: Sequence[Template], modality: str, sex: str = "", age: int | None = None
) -> list[Template]:
    """The templates a radiologist may switch to for a study."""
    return [t for t in templates if t.availability.fits(modality, sex, age) is None]


_MACRO = re.compile(r"(?<![\w.])\.([a-z0-9][a-z0-9_-]{0,31})\b")


def expand_macros(text: str, macros: Mapping[str, str]) -> str:
    """``text`` with each ``.keyword`` of a known macro replaced by its snippet
    (unknown keywords stay as typed)."""
    return _MACRO.sub(lambda m: macros.get(m.group(1), m.group(0)), text)


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A template version as it orders: ``"1.10"`` after ``"1.9"``, ``"2"`` after
    ``"1.4"``, numbers before words (``"2022"`` before ``"draft"``)."""
    parts = re.split(r"[.\-_ ]+", version.strip().lower())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)
