"""What the MRRT reader (``domain/mrrt``) collects from an HTML template, and how it
becomes a :class:`Template`: sections and fields as drafts, the codes of the
template attributes block, the metas.

Sections inside a top-level section are its parts (an organ of the findings):
their fields join the outer section's, grouped under the part's title, and a
part's bare text becomes a text field of its own.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from telerad.domain.template_codec import parse_code, slug
from telerad.domain.templates import (
    Availability,
    Code,
    Field,
    FieldKind,
    Option,
    Section,
    Sex,
    Template,
    TemplateError,
    heading_of,
    scheme_of,
)


@dataclass
class FieldDraft:
    id: str
    kind: FieldKind
    line: int
    element: str  # '<select id="x"> at line 12', for messages
    label: str = ""
    fallback_label: str = ""  # the text written before it
    required: bool = False
    options: list[Option] = field(default_factory=list)
    option_ids: list[str] = field(default_factory=list)
    defaults: list[str] = field(default_factory=list)
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    normal: str = ""
    code: Code | None = None
    group: str = ""
    grouped: bool = False  # radio buttons or check boxes sharing a name
    order: int = 0  # where it starts in the file, among fields and sections


@dataclass
class LabelDraft:
    target: str  # its for=
    parts: list[str] = field(default_factory=list)
    wrapped: list[tuple[FieldDraft, int | None]] = field(default_factory=list)


@dataclass
class SectionDraft:
    id: str
    title: str
    line: int
    parent: SectionDraft | None
    code: Code | None = None
    required: bool = False
    normal: str = ""
    fields: list[FieldDraft] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    parts: list[SectionDraft] = field(default_factory=list)
    order: int = 0

    def all(self) -> list[SectionDraft]:
        """It and the parts inside it, at any depth."""
        return [self, *(s for part in self.parts for s in part.all())]


@dataclass
class Drafts:
    """Everything read from one file."""

    warnings: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)  # <meta name> (lower case) → content
    language: str = ""
    title: str = ""
    top: list[SectionDraft] = field(default_factory=list)
    fields: dict[str, FieldDraft] = field(default_factory=dict)  # by id (groups by name)
    elements: dict[str, tuple[FieldDraft, int | None]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # <label for> → its text
    coded: dict[str, Code] = field(default_factory=dict)  # ORIGTXT → code
    template_code: Code | None = None
    outside: str = ""  # the first field outside every section
    started: int = 0  # fields and sections so far

    def next(self) -> int:
        self.started += 1
        return self.started


def name(draft: FieldDraft, option: int | None, text: str) -> None:
    """Give a field (``option`` None) or one of its options its label."""
    if not text:
        return
    if option is None:
        draft.label = draft.label or text
    else:
        draft.options[option] = replace(draft.options[option], label=text)


def clean(text: str) -> str:
    """Text with its white space (line breaks, ``&nbsp;``) as single spaces."""
    return " ".join(text.split())


def data_code(attrs: dict[str, str], meaning: str) -> Code | None:
    """A code from ``data-code-value``/``-scheme``/``-meaning`` (or ``data-code="RADLEX:RID…"``)."""
    if attrs.get("data-code"):
        return parse_code(attrs["data-code"], attrs.get("data-code-meaning", "") or meaning)
    value = attrs.get("data-code-value", "").strip()
    if not value:
        return None
    scheme = scheme_of(attrs.get("data-code-scheme", "") or "RADLEX")
    return Code(value, scheme, attrs.get("data-code-meaning", "").strip() or meaning)


# -- the template attributes block (<script type="text/xml">) ---------------------------
def read_attributes(drafts: Drafts, xml: str, line: int) -> None:
    """The codes of MRRT ``<coded_content>`` entries (by ``ORIGTXT``) and the template's
    own ``<term>``; an XML block that is not well-formed is read entry by entry."""
    try:
        root = ET.fromstring(xml.strip())
    except ET.ParseError as exc:
        leading = xml[: len(xml) - len(xml.lstrip())].count("\n")
        at = line + leading + exc.position[0] - 1
        drafts.warnings.append(
            f'the template attributes (<script type="text/xml"> at line {line})'
            f" are not well-formed XML at line {at}: their coded entries were read one by one"
        )
        _entries_by_pattern(drafts, xml)
        return
    for entry in root.iter():
        if _local(entry.tag) != "entry":
            continue
        origin = entry.get("ORIGTXT") or entry.get("origtxt") or ""
        code = _first_code(entry)
        if origin and code is not None:
            _coded(drafts, origin, code.attrib)
    for term in root:
        if _local(term.tag) == "term" and (code := _first_code(term)) is not None:
            drafts.template_code = _code_of(drafts, code.attrib, "the template")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _first_code(element: ET.Element) -> ET.Element | None:
    return next((e for e in element.iter() if _local(e.tag) == "code"), None)


_ENTRY = re.compile(
    r"<entry\b[^>]*ORIGTXT\s*=\s*[\"']([^\"']+)[\"'](.*?)(?=</entry|<entry\b|</coded|$)",
    re.S | re.I,
)


def _entries_by_pattern(drafts: Drafts, xml: str) -> None:
    for match in _ENTRY.finditer(xml):
        code = re.search(r"<code\b([^>]*)/?>", match.group(2))
        if code is not None:
            attrs = dict(re.findall(r"(\w+)\s*=\s*[\"']([^\"']*)[\"']", code.group(1)))
            _coded(drafts, match.group(1), attrs)


def _coded(drafts: Drafts, origin: str, attrs: dict[str, str]) -> None:
    code = _code_of(drafts, attrs, f"coded entry {origin!r}")
    if code is not None:
        drafts.coded[origin.strip()] = code


def _code_of(drafts: Drafts, attrs: dict[str, str], what: str) -> Code | None:
    value, scheme = attrs.get("value", "").strip(), attrs.get("scheme", "").strip()
    if not value or not scheme:
        drafts.warnings.append(f"{what}: a code without a value or scheme is ignored")
        return None
    try:
        return Code(value, scheme_of(scheme), attrs.get("meaning", "").strip())
    except TemplateError as exc:
        drafts.warnings.append(f"{what}: {exc}; ignored")
        return None


# -- the template -----------------------------------------------------------------------
def build(drafts: Drafts, default_id: str) -> Template:
    """The template the drafts describe (not validated yet)."""
    if not drafts.top:
        raise TemplateError("no <section> elements: not an MRRT template")
    if drafts.outside:
        raise TemplateError(f"{drafts.outside} is outside every <section>")
    section_ids = {s.id for top in drafts.top for s in top.all()}
    for element_id, text in drafts.labels.items():
        if element_id in drafts.elements:
            name(*drafts.elements[element_id], text)
        elif element_id not in section_ids:
            drafts.warnings.append(f"<label for={element_id!r}> names no field")
    meta = drafts.meta
    title = meta.get("dcterms.title") or drafts.title or meta.get("title", "")
    template_id = (
        meta.get("telerad.id") or slug(meta.get("dcterms.identifier", "")) or default_id
    ) or slug(title)
    macro = "telerad.macro."
    return Template(
        id=template_id,
        title=title,
        version=meta.get("telerad.version") or meta.get("version") or "1",
        language=meta.get("dcterms.language") or drafts.language or "en",
        sections=tuple(_section(drafts, s) for s in drafts.top),
        availability=Availability(
            modalities=frozenset(w.upper() for w in _words(meta, "telerad.modalities")),
            sexes=frozenset(_sex(w) for w in _words(meta, "telerad.sexes")),
            min_age=_age(meta, "telerad.min_age"),
            max_age=_age(meta, "telerad.max_age"),
        ),
        procedure_codes=frozenset(_words(meta, "telerad.procedure_codes")),
        macros={k[len(macro) :]: v for k, v in meta.items() if k.startswith(macro)},
        code=drafts.template_code,
        fallback=meta.get("telerad.fallback", "").lower() in ("true", "yes", "1"),
        default_for=frozenset(w.upper() for w in _words(meta, "telerad.default_for")),
    )


def _section(drafts: Drafts, draft: SectionDraft) -> Section:
    code = drafts.coded.get(draft.id) or draft.code
    heading = heading_of(draft.title, code.value if code and code.scheme == "LN" else "")
    placed = [(f.order, _field(drafts, f)) for f in draft.fields]
    for part in draft.parts:
        placed.extend(_part(drafts, part))
    return Section(
        id=draft.id,
        title=draft.title or draft.id,
        heading=heading,
        fields=tuple(f for _, f in sorted(placed, key=lambda p: p[0])),
        default_text="\n".join(draft.text),
        normal_text=draft.normal,
        required=draft.required,
    )


def _part(drafts: Drafts, draft: SectionDraft) -> list[tuple[int, Field]]:
    """A section inside another: its fields, and its bare text as a text field (each
    with where it starts, to keep the file's order)."""
    placed = [(f.order, _field(drafts, f)) for f in draft.fields]
    if draft.text or draft.normal or not draft.fields:
        if draft.id in drafts.fields:
            raise TemplateError(
                f"<section id={draft.id!r}> at line {draft.line}: the id is a field's too"
            )
        outer = draft.parent
        text = Field(
            draft.id,
            draft.title or draft.id,
            FieldKind.TEXT,
            draft.required,
            drafts.coded.get(draft.id) or draft.code,
            default="\n".join(draft.text),
            normal=draft.normal,
            group=outer.title if outer is not None and outer.parent is not None else "",
        )
        placed.append((draft.order, text))
    for part in draft.parts:
        placed.extend(_part(drafts, part))
    return placed


def _field(drafts: Drafts, draft: FieldDraft) -> Field:
    kind, options, defaults = draft.kind, tuple(draft.options), draft.defaults
    if kind is FieldKind.CHECKBOX and len(options) > 1:
        kind = FieldKind.MULTIPLE  # check boxes sharing a name
    elif kind is FieldKind.CHECKBOX:
        options, defaults = (), ["yes"] if defaults else []  # one box: a yes/no
    options = tuple(
        replace(o, code=drafts.coded.get(i) or o.code) if i else o
        for o, i in zip(options, draft.option_ids, strict=False)
    )
    label = draft.label or drafts.labels.get(draft.id, "") or draft.fallback_label
    label = label or draft.id.replace("-", " ").replace("_", " ").capitalize()
    default = "; ".join(defaults) if kind is FieldKind.MULTIPLE else next(iter(defaults), "")
    return Field(
        id=draft.id,
        label=label,
        kind=kind,
        required=draft.required,
        code=drafts.coded.get(draft.id) or draft.code,
        options=options,
        unit=draft.unit,
        minimum=draft.minimum,
        maximum=draft.maximum,
        step=draft.step,
        default=default,
        normal=draft.normal,
        group=draft.group,
    )


def _words(meta: dict[str, str], key: str) -> list[str]:
    return [w for w in re.split(r"[\s,;]+", meta.get(key, "")) if w]


def _sex(value: str) -> Sex:
    try:
        return Sex(value.upper())
    except ValueError:
        raise TemplateError(
            f'<meta name="telerad.sexes">: a sex is F or M, not {value!r}'
        ) from None


def _age(meta: dict[str, str], key: str) -> int | None:
    value = meta.get(key, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise TemplateError(f'<meta name="{key}">: {value!r} is not whole years')
    return int(value)
