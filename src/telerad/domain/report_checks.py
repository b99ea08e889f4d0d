"""Checks a report must pass before it is signed, each with a message a radiologist
understands at once. A check may be overridden with a reason, which is kept with
the signed version (domain/reports.py ``Override``).

The checks read the report as the referring clinician will: the template's
required parts filled, an impression, the side and the anatomy agreeing with the
order and the patient, values within their fields' ranges, and comparisons with
studies the patient really had.
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from telerad.domain.reports import Content, Override
from telerad.domain.templates import Heading, Template


class Check(enum.StrEnum):
    REQUIRED = "required-empty"
    IMPRESSION = "impression-empty"
    LATERALITY = "laterality"
    SEX = "sex-anatomy"
    RANGE = "out-of-range"
    COMPARISON = "comparison-unknown"


@dataclass(frozen=True)
class Finding:
    """One problem found: which check, what to tell the radiologist, where."""

    check: Check
    message: str
    where: str = ""  # a section or field id, for the editor to point at


@dataclass(frozen=True)
class Prior:
    """A study the patient had before, as the comparison section may name it."""

    study_date: date
    modality: str = ""
    description: str = ""
    study_uid: str = ""


@dataclass(frozen=True)
class Context:
    """What the report is checked against: the order and the patient."""

    procedure: str = ""  # the ordered procedure's description (and code)
    reason: str = ""  # the reason for the exam
    sex: str = ""  # DICOM: M, F, O or empty
    priors: Sequence[Prior] = field(default_factory=tuple)
    study_date: date | None = None


def check(template: Template, content: Content, context: Context) -> list[Finding]:
    """Every problem found in ``content``, in the order of the checks above."""
    return [
        *required(template, content),
        *impression(template, content),
        *laterality(template, content, context),
        *sex_anatomy(content, context),
        *ranges(template, content),
        *comparison(template, content, context),
    ]


def unresolved(findings: Iterable[Finding], overrides: Iterable[Override]) -> list[Finding]:
    """The findings no override with a reason covers."""
    covered = {o.check for o in overrides if o.reason.strip()}
    return [f for f in findings if f.check.value not in covered]


# -- the template's required parts --------------------------------------------------------
def required(template: Template, content: Content) -> list[Finding]:
    found = []
    for section in template.sections:
        if section.required and not content.text(section.id).strip():
            found.append(Finding(Check.REQUIRED, f"{section.title} is empty", section.id))
        for f in section.fields:
            if f.required and not content.value(f.id).strip():
                found.append(
                    Finding(Check.REQUIRED, f"{section.title}: {f.label} is required", f.id)
                )
    return found


def impression(template: Template, content: Content) -> list[Finding]:
    section = template.section(Heading.IMPRESSION)
    if section is None:
        return []
    filled = content.text(section.id).strip() or any(
        content.value(f.id).strip() for f in section.fields
    )
    if filled:
        return []
    return [Finding(Check.IMPRESSION, "the impression is empty", section.id)]


# -- laterality ---------------------------------------------------------------------------
_SIDE_WORDS = {
    "L": re.compile(r"\b(left|lt\.?|links|gauche|izquierd[oa])\b", re.IGNORECASE),
    "R": re.compile(r"\b(right|rt\.?|rechts|droite?|derech[oa])\b", re.IGNORECASE),
}
_BOTH = re.compile(r"\b(bilateral|bilaterally|both|bilat\.?)\b", re.IGNORECASE)
_SIDE_NAMES = {"L": "left", "R": "right"}


def ordered_side(text: str) -> str | None:
    """L or R when the order names one side only (not both, not bilateral)."""
    if _BOTH.search(text):
        return None
    sides = [s for s, pattern in _SIDE_WORDS.items() if pattern.search(text)]
    return sides[0] if len(sides) == 1 else None


def _texts(template: Template, content: Content, headings: set[Heading]) -> str:
    parts = []
    for section in template.sections:
        if section.heading in headings:
            parts.append(content.text(section.id))
            parts.extend(content.value(f.id) for f in section.fields)
    return "\n".join(parts)


def laterality(template: Template, content: Content, context: Context) -> list[Finding]:
    """The report speaks of the other side than the order: in the impression at all,
    or in the findings without ever naming the ordered side."""
    side = ordered_side(f"{context.procedure}\n{context.reason}")
    if side is None:
        return []
    other = "R" if side == "L" else "L"
    impression_text = _texts(template, content, {Heading.IMPRESSION, Heading.CONCLUSIONS})
    findings_text = _texts(template, content, {Heading.FINDINGS})
    mentioned = _SIDE_WORDS[side].search(impression_text + findings_text)
    if _SIDE_WORDS[other].search(impression_text) and not _BOTH.search(impression_text):
        where = "impression"
    elif _SIDE_WORDS[other].search(findings_text) and not mentioned:
        where = "findings"
    else:
        return []
    return [
        Finding(
            Check.LATERALITY,
            f"the order is for the {_SIDE_NAMES[side]} side; the {where} names the "
            f"{_SIDE_NAMES[other]}",
            where,
        )
    ]


# -- anatomy of one sex -------------------------------------------------------------------
_ANATOMY = {
    # Organs only one sex has; "cervix" alone (not "cervical", which is also the spine).
    "M": re.compile(
        r"\b(uterus|uterine|ovary|ovaries|ovarian|endometri(?:um|al)|cervix|fallopian|"
        r"vagina|vaginal|adnexa|adnexal)\b",
        re.IGNORECASE,
    ),
    "F": re.compile(
        r"\b(prostate|prostatic|testis|testes|testicle|testicles|testicular|scrotum|"
        r"scrotal|seminal vesicles?|epididym(?:is|al))\b",
        re.IGNORECASE,
    ),
}
_SEX_NAMES = {"M": "male", "F": "female"}


def sex_anatomy(content: Content, context: Context) -> list[Finding]:
    pattern = _ANATOMY.get(context.sex.strip().upper())
    if pattern is None:
        return []  # unknown or other: nothing to contradict
    words = sorted(
        {m.group(0).lower() for text in _all_text(content) for m in pattern.finditer(text)}
    )
    if not words:
        return []
    return [
        Finding(
            Check.SEX,
            f"the patient is {_SEX_NAMES[context.sex.strip().upper()]}; the report "
            f"mentions {', '.join(words)}",
        )
    ]


def _all_text(content: Content) -> list[str]:
    return [*content.sections.values(), *content.fields.values()]


# -- values in their fields' ranges -------------------------------------------------------
def ranges(template: Template, content: Content) -> list[Finding]:
    found = []
    for _, f in template.fields():
        problem = f.problem(content.value(f.id))
        if problem is not None:
            found.append(Finding(Check.RANGE, problem, f.id))
    return found


# -- comparison with studies the patient had ----------------------------------------------
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ]
    )
    for m in names
}
_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DICOM = re.compile(r"\b(19\d{2}|20\d{2})(\d{2})(\d{2})\b")
_SLASHED = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")  # US: month/day/year
_DOTTED = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b")  # day.month.year
_WORDS = re.compile(r"\b([A-Za-z]{3,9})\.? (\d{1,2}),? (\d{4})\b")  # March 4, 2025
_WORDS_DAY_FIRST = re.compile(r"\b(\d{1,2}) ([A-Za-z]{3,9})\.? (\d{4})\b")  # 4 March 2025
_NONE = re.compile(
    r"^\s*(none|no prior|no priors|no previous|no comparison|not available|n/?a)\b", re.I
)


def dates_in(text: str) -> list[date]:
    """The dates a comparison text names, in the forms reports write them."""
    found: list[date] = []

    def add(year: int, month: int, day: int) -> None:
        with contextlib.suppress(ValueError):
            found.append(date(year, month, day))

    for m in _ISO.finditer(text):
        add(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    for m in _DICOM.finditer(text):
        add(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    for m in _SLASHED.finditer(text):
        add(int(m.group(3)), int(m.group(1)), int(m.group(2)))
    for m in _DOTTED.finditer(text):
        add(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    for m in _WORDS.finditer(text):
        month = _MONTHS.get(m.group(1).lower())
        if month:
            add(int(m.group(3)), month, int(m.group(2)))
    for m in _WORDS_DAY_FIRST.finditer(text):
        month = _MONTHS.get(m.group(2).lower())
        if month:
            add(int(m.group(3)), month, int(m.group(1)))
    return sorted(set(found))


def comparison(template: Template, content: Content, context: Context) -> list[Finding]:
    """A comparison naming a date on which the patient had no study (one day either
    side is allowed: a study over midnight, a time zone)."""
    section = template.section(Heading.COMPARISON)
    if section is None:
        return []
    text = "\n".join([content.text(section.id), *(content.value(f.id) for f in section.fields)])
    if not text.strip() or _NONE.match(text):
        return []
    known = [p.study_date for p in context.priors]
    unknown = [d for d in dates_in(text) if not any(abs((d - k).days) <= 1 for k in known)]
    if context.study_date is not None:
        unknown = [d for d in unknown if d != context.study_date]
    if not unknown:
        return []
    listed = ", ".join(d.isoformat() for d in unknown)
    had = ", ".join(sorted({k.isoformat() for k in known})) or "none"
    return [
        Finding(
            Check.COMPARISON,
            f"the comparison names {listed}, but the patient has no study then "
            f"(their studies: {had})",
            section.id,
        )
    ]


def overrides_from(reasons: Mapping[str, str], findings: Sequence[Finding]) -> tuple[Override, ...]:
    """The overrides a signer gave (check → reason) for the findings they went past."""
    by_check = {f.check.value: f for f in findings}
    return tuple(
        Override(check, by_check[check].message, reason.strip())
        for check, reason in reasons.items()
        if check in by_check and reason.strip()
    )
