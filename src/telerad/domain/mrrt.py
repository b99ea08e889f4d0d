"""IHE MRRT / RSNA RadReport templates (HTML5) read into a :class:`Template`, tolerantly.

What is read:

* ``<section>`` elements, their title from ``data-section-name``, a ``<header>`` (or
  ``<h1>``…``<h6>``) or the id; a section inside another is a part of it (an
  organ): its fields are the outer section's, grouped under its title, and its
  bare text becomes a text field;
* fields: ``<input type=text|number|checkbox|radio|date|time>``, ``<select>`` with
  ``<option>``\\s (``multiple``), ``<textarea>``; ``data-field-type`` (MRRT:
  TEXT, NUMBER, BOOLEAN, DATE, TIME, …); ``required``, ``min``, ``max``, ``step``,
  ``value``/``selected``/``checked`` as the default; labels from ``<label for=…>``,
  a wrapping ``<label>``, or the text before the field; units from
  ``data-field-unit`` or the unit written after a number (``mm``, ``g/mL``);
  radio buttons (and check boxes) sharing a name are one pick list;
* codes from the template attributes block (``<script type="text/xml">``: MRRT
  ``<coded_content>`` entries, ``ORIGTXT`` naming the element's id) and from
  ``data-code-value``/``data-code-scheme``/``data-code-meaning`` attributes;
  schemes RadLex, LOINC, SNOMED CT; a section coded with a CID 7001 LOINC code
  takes that heading;
* title, id, version from ``<title>`` and ``<meta name=…>`` (``dcterms.title``,
  ``dcterms.identifier``, ``telerad.version``…); availability, procedure codes
  and macros from ``telerad.*`` metas.

Tolerated: unclosed ``<p>``, ``<li>``, ``<option>`` and ``<section>``, stray end
tags, unquoted attributes, entities, comments (XML in them is not read: what is
commented out is not part of the template), a template attributes block that is
not well-formed XML (its entries are read one by one; a warning says so).

Refused with a :class:`TemplateError` naming the element and its line: no
sections, a pick list without options, an input of an unknown type, a field
outside every section or without a name, two fields with one id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from telerad.domain.mrrt_drafts import (
    Drafts,
    FieldDraft,
    LabelDraft,
    SectionDraft,
    build,
    clean,
    data_code,
    name,
    read_attributes,
)
from telerad.domain.template_codec import slug
from telerad.domain.templates import FieldKind, Option, Template, TemplateError, validate


@dataclass(frozen=True)
class MrrtImport:
    """A template read from MRRT HTML, and what was tolerated on the way."""

    template: Template
    warnings: tuple[str, ...] = ()


def parse_mrrt(text: str, name: str = "", default_id: str = "") -> MrrtImport:
    """The template an MRRT / RadReport HTML file holds, validated. ``default_id`` is
    its id when the file names none (``<meta name="telerad.id">``, ``dcterms.identifier``)."""
    prefix = f"{name}: " if name else ""
    reader = _Reader()
    try:
        reader.feed(text)
        reader.close()
        template = validate(build(reader.d, default_id))
    except TemplateError as exc:
        raise TemplateError(prefix + str(exc)) from exc
    return MrrtImport(template, tuple(prefix + w for w in reader.d.warnings))


# MRRT data-field-type values (and the HTML input types) → the field kind.
_FIELD_TYPES = {
    "TEXT": FieldKind.TEXT,
    "NUMBER": FieldKind.NUMBER,
    "INTEGER": FieldKind.NUMBER,
    "BOOLEAN": FieldKind.CHECKBOX,
    "CHECKBOX": FieldKind.CHECKBOX,
    "DATE": FieldKind.DATE,
    "TIME": FieldKind.TEXT,
    "DATETIME": FieldKind.TEXT,
    "SELECTION": FieldKind.CHOICE,
    "CHOICE": FieldKind.CHOICE,
    "MULTIPLE": FieldKind.MULTIPLE,
}
_INPUT_TYPES = {
    "text": FieldKind.TEXT,
    "number": FieldKind.NUMBER,
    "checkbox": FieldKind.CHECKBOX,
    "radio": FieldKind.CHOICE,
    "date": FieldKind.DATE,
    "time": FieldKind.TEXT,
}
_NOT_FIELDS = frozenset({"hidden", "button", "submit", "reset", "image"})
_BLOCKS = frozenset(
    str.split("p div li ul ol br tr td th table dl dt dd fieldset legend footer hr")
)
_HEADERS = frozenset({"header", "h1", "h2", "h3", "h4", "h5", "h6"})
#: Units written after a number field, as MRRT templates write them.
_UNITS = frozenset(
    str.split(
        "mm cm m mL ml L cc cm3 cm2 mm2 mm3 g kg mg % HU g/mL mg/dL cm/s m/s mmHg bpm "
        "/min s sec min h d wk mo y years days months weeks MBq mCi mSv mGy"
    )
)


def _describe(tag: str, attrs: dict[str, str], line: int) -> str:
    shown = " ".join(f'{k}="{attrs[k]}"' for k in ("type", "id", "name") if attrs.get(k))
    return f"<{tag}{' ' + shown if shown else ''}> at line {line}"


_STRUCTURE = _BLOCKS | _HEADERS | {"section", "input", "select", "textarea", "label"}


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.d = Drafts()
        self.open: list[SectionDraft] = []
        self.buffer: list[str] = []  # the text of the current block
        self.pending_label = ""
        self.capture: list[str] | None = None  # text of a <title>, <header>, <option>…
        self.capturing = ""  # the tag whose text is captured
        self.label: LabelDraft | None = None
        self.select: FieldDraft | None = None
        self.option: tuple[str, str, bool, dict[str, str]] | None = None
        self.textarea: FieldDraft | None = None
        #: The field whose words may follow it: a number's unit, a button's label.
        self.trailing: tuple[FieldDraft, int | None] | None = None
        self.script_xml: list[str] | None = None
        self.script_line = 0

    # -- the parser's events ------------------------------------------------------------
    def handle_starttag(self, tag: str, raw: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v if v is not None else "") for k, v in raw}
        line = self.getpos()[0]
        if tag != "span":
            self.trailing = None
        self._interrupt(tag, line)
        if tag in _BLOCKS or tag in ("section", *_HEADERS):
            self._flush()
        if tag == "meta" and attrs.get("name"):
            self.d.meta[attrs["name"].strip().lower()] = attrs.get("content", "").strip()
        elif tag == "html":
            self.d.language = attrs.get("lang", "")
        elif tag == "title" and not self.open:
            self._capture("title")
        elif tag == "script":
            if attrs.get("type", "").lower() in ("text/xml", "application/xml"):
                self.script_xml, self.script_line = [], line
        elif tag == "section":
            self._start_section(attrs, line)
        elif tag in _HEADERS and self.open:
            self._capture(tag)
        elif tag == "label":
            self.label = LabelDraft(attrs.get("for", "").strip())
        elif tag == "input":
            self._input(attrs, line)
        elif tag == "select":
            self.select = self._field("select", attrs, line, FieldKind.CHOICE)
            if "multiple" in attrs:
                self.select.kind = FieldKind.MULTIPLE
        elif tag == "option" and self.select is not None:
            self.option = (attrs.get("value", ""), attrs.get("id", ""), "selected" in attrs, attrs)
            self._capture("option")
        elif tag == "textarea":
            self.textarea = self._field("textarea", attrs, line, FieldKind.TEXT)
            self._capture("textarea")

    def _interrupt(self, tag: str, line: int, shown: str = "") -> None:
        """A tag that a text being captured cannot hold ends it (an unclosed ``<option>``,
        ``<header>`` or ``<textarea>``; a ``<select>`` left open)."""
        if tag in ("option", "optgroup"):
            self._end_option()
            return
        if tag not in _STRUCTURE:
            return
        shown = shown or f"<{tag}>"
        if self.capturing in _HEADERS:
            self._header(self._captured())
        elif self.capturing == "textarea":
            self.d.warnings.append(
                f"{self._textarea_element()} is not closed before {shown} at line {line}"
            )
            self._end_textarea()
        elif self.capturing == "title":
            self.d.title = self._captured()
        if self.select is not None and tag in ("section", "input", "select", "textarea"):
            self.d.warnings.append(
                f"{self.select.element} is not closed before {shown} at line {line}"
            )
            self._end_option()
            self._end_select()

    def handle_startendtag(self, tag: str, raw: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, raw)
        if tag not in ("input", "meta", "br", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self._flush()
        if tag == "title" and self.capturing == "title":
            self.d.title = self._captured()
        elif tag in _HEADERS and self.capturing == tag:
            self._header(self._captured())
        elif tag == "option":
            self._end_option()
        elif tag == "select":
            self._end_option()
            self._end_select()
        elif tag == "textarea" and self.textarea is not None:
            self._end_textarea()
        elif tag == "label" and self.label is not None:
            self._end_label()
        elif tag == "script" and self.script_xml is not None:
            read_attributes(self.d, "".join(self.script_xml), self.script_line)
            self.script_xml = None
        elif tag == "section":
            self._interrupt("section", self.getpos()[0], "</section>")
            self._flush()
            if self.open:
                self._end_section()
            else:
                self.d.warnings.append(f"</section> at line {self.getpos()[0]} closes nothing")

    def handle_data(self, data: str) -> None:
        if self.script_xml is not None:
            self.script_xml.append(data)
            return
        if self.label is not None:
            self.label.parts.append(data)
        if self.capture is not None:
            self.capture.append(data)
            return
        if self.label is not None or not self.open:
            return
        if self.trailing is not None:
            data = self._trailing(data)
        self.buffer.append(data)

    def close(self) -> None:
        super().close()
        self._interrupt("section", self.getpos()[0], "the end of the file")
        while self.open:
            self.d.warnings.append(f"<section> at line {self.open[-1].line} is never closed")
            self._flush()
            self._end_section()

    # -- sections ---------------------------------------------------------------------------
    def _start_section(self, attrs: dict[str, str], line: int) -> None:
        title = clean(attrs.get("data-section-name", ""))
        section_id = attrs.get("id", "").strip() or slug(title)
        parent = self.open[-1] if self.open else None
        draft = SectionDraft(section_id, title, line, parent, code=data_code(attrs, title))
        draft.order = self.d.next()
        draft.required = "required" in attrs
        draft.normal = attrs.get("data-section-normal", "")
        (parent.parts if parent is not None else self.d.top).append(draft)
        self.open.append(draft)

    def _header(self, text: str) -> None:
        section = self.open[-1]
        if not section.title:
            section.title = text
            section.id = section.id or slug(text)
        elif text and text.lower() != section.title.lower():
            section.text.append(text)

    def _end_section(self) -> None:
        section = self.open.pop()
        if not section.id:
            raise TemplateError(f"<section> at line {section.line} has no id and no title")

    def _flush(self) -> None:
        text = clean("".join(self.buffer))
        self.buffer = []
        if text and self.open:
            self.open[-1].text.append(text)

    # -- fields -------------------------------------------------------------------------
    def _field(self, tag: str, attrs: dict[str, str], line: int, kind: FieldKind) -> FieldDraft:
        element = _describe(tag, attrs, line)
        if not self.open:  # refused once the file is read: "no sections" may say more
            self.d.outside = self.d.outside or element
            self.open.append(SectionDraft("", "", line, None))
            try:
                return self._field(tag, attrs, line, kind)
            finally:
                self.open.pop()
        field_id = attrs.get("id", "").strip() or attrs.get("name", "").strip()
        if not field_id:
            raise TemplateError(f"{element} has no id and no name")
        if field_id in self.d.fields:
            first = self.d.fields[field_id].line
            raise TemplateError(f"{element}: the id {field_id!r} is already used at line {first}")
        declared = attrs.get("data-field-type", "").strip().upper()
        if declared:
            if declared not in _FIELD_TYPES:
                known = ", ".join(_FIELD_TYPES)
                raise TemplateError(f"{element}: unknown data-field-type {declared!r} ({known})")
            if tag != "select":
                kind = _FIELD_TYPES[declared]
        self._flush_label_text()
        draft = FieldDraft(field_id, kind, line, element, order=self.d.next())
        draft.fallback_label = self.pending_label
        draft.label = clean(attrs.get("data-field-label", "") or attrs.get("title", ""))
        draft.required = "required" in attrs
        draft.unit = attrs.get("data-field-unit", "").strip()
        draft.normal = attrs.get("data-field-normal", "")
        draft.minimum = _float(attrs, "min", element)
        draft.maximum = _float(attrs, "max", element)
        draft.step = _float(attrs, "step", element)
        draft.code = data_code(attrs, field_id)
        draft.group = self.open[-1].title if self.open[-1].parent is not None else ""
        self.d.fields[field_id] = draft
        self.d.elements[attrs.get("id", "") or field_id] = (draft, None)
        self._owner().fields.append(draft)
        if self.label is not None:
            self.label.wrapped.append((draft, None))
        return draft

    def _flush_label_text(self) -> None:
        """The block's text so far becomes the label of the field that follows it."""
        self.pending_label = clean("".join(self.buffer)).rstrip(":").strip()
        self.buffer = []

    def _owner(self) -> SectionDraft:
        return self.open[-1]

    def _input(self, attrs: dict[str, str], line: int) -> None:
        kind_name = attrs.get("type", "text").strip().lower() or "text"
        if kind_name in _NOT_FIELDS:
            return
        if kind_name not in _INPUT_TYPES:
            known = ", ".join(_INPUT_TYPES)
            element = _describe("input", attrs, line)
            raise TemplateError(f"{element}: unknown type {kind_name!r} ({known})")
        kind, name = _INPUT_TYPES[kind_name], attrs.get("name", "").strip()
        if kind_name in ("radio", "checkbox") and name:
            group = self.d.fields.get(name)
            if group is None or not group.grouped:
                # The group is the field: named by its name, coded by its own entry.
                plain = {k: v for k, v in attrs.items() if not k.startswith("data-code")}
                group = self._field("input", {**plain, "id": name}, line, kind)
                group.grouped = True
            self._button(group, attrs)
            return
        draft = self._field("input", attrs, line, kind)
        if kind is FieldKind.CHECKBOX:
            draft.defaults = ["yes"] if "checked" in attrs else []
        elif attrs.get("value", ""):
            draft.defaults.append(attrs["value"])
        if kind is FieldKind.NUMBER:
            self.trailing = (draft, None)

    def _button(self, group: FieldDraft, attrs: dict[str, str]) -> None:
        """A radio button or check box of a group: an option of its pick list."""
        element_id = attrs.get("id", "").strip()
        value = attrs.get("value", "").strip() or element_id or str(len(group.options) + 1)
        group.options.append(Option(value, value, data_code(attrs, value)))
        group.option_ids.append(element_id)
        index = len(group.options) - 1
        if element_id and element_id != group.id:
            self.d.elements[element_id] = (group, index)
        if "checked" in attrs:
            group.defaults.append(value)
        if self.label is not None:
            self.label.wrapped.append((group, index))
        else:
            self.trailing = (group, index)

    def _trailing(self, data: str) -> str:
        """``data`` right after a field: a number's unit, a button's label."""
        draft, option = self.trailing or (None, None)
        self.trailing = None
        match = re.match(r"\s*(\S+)", data)
        if draft is None or match is None:
            return data
        if option is not None:
            name(draft, option, clean(data))
            return ""
        if match.group(1) in _UNITS:
            draft.unit = draft.unit or match.group(1)
            return data[match.end() :]
        return data

    def _end_option(self) -> None:
        if self.option is None or self.select is None:
            self.option = None
            return
        value, option_id, selected, attrs = self.option
        label = self._captured()
        value = value or label
        self.option = None
        if not value:
            return
        self.select.options.append(Option(value, label or value, data_code(attrs, label)))
        self.select.option_ids.append(option_id)
        if option_id:
            self.d.elements[option_id] = (self.select, len(self.select.options) - 1)
        if selected:
            self.select.defaults.append(value)

    def _end_select(self) -> None:
        select, self.select = self.select, None
        if select is not None and not select.options:
            raise TemplateError(f"{select.element} has no <option>")

    def _end_label(self) -> None:
        assert self.label is not None
        label, self.label = self.label, None
        text = clean("".join(label.parts)).rstrip(":").strip()
        if label.target:
            self.d.labels[label.target] = text
        elif label.wrapped:
            name(*label.wrapped[-1], text)
        elif text and self.open:
            self.buffer.append(text)  # a label of nothing: the next field's words

    def _end_textarea(self) -> None:
        text = self._captured()
        if self.textarea is not None and text:
            self.textarea.defaults.append(text)
        self.textarea = None

    def _textarea_element(self) -> str:
        return self.textarea.element if self.textarea is not None else "<textarea>"

    # -- capturing text -----------------------------------------------------------------
    def _capture(self, tag: str) -> None:
        self.capture, self.capturing = [], tag

    def _captured(self) -> str:
        text = clean("".join(self.capture or []))
        self.capture, self.capturing = None, ""
        return text


def _float(attrs: dict[str, str], key: str, element: str) -> float | None:
    value = attrs.get(key, "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise TemplateError(f"{element}: {key}={value!r} is not a number") from None
