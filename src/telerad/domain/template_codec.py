"""Templates as data an administrator writes (TOML or JSON) and as the platform
keeps them (a JSON body in ``report_template``): one form for both.

The form::

    [template]
    id = "ct-head"              # lower case, digits, . _ -
    title = "CT head"
    version = "1"
    modalities = ["CT"]         # empty: any
    sexes = []                  # "F", "M"; empty: any
    min_age = 18                # years; optional
    max_age = 80
    procedure_codes = ["70450"] # the catalogue's codes it is for
    default_for = []            # modalities whose unmapped procedures get it
    fallback = false            # the template of last resort

    [[section]]
    id = "findings"
    title = "Findings"
    heading = "findings"        # a CID 7001 LOINC code or name; default: from the title
    default = ""                # text the section starts with
    normal = ""                 # its text in a normal study

    [[section.field]]
    id = "ich"
    label = "Intracranial haemorrhage"
    type = "choice"             # text, number, choice, multiple, checkbox, date
    code = "RADLEX:RID4700"     # SCHEME:VALUE, optionally "(meaning)"; or a table
    options = ["absent", { value = "present", label = "Present", code = "SCT:..." }]
    unit = "mm"                 # numbers: UCUM unit, min, max, step
    default = "absent"
    normal = "absent"

    [macros]
    nad = "No acute intracranial abnormality."

:func:`to_dict` writes every value a :class:`Template` has, so :func:`from_dict`
of it gives the same template back. Errors name the section and field at fault.
"""

from __future__ import annotations

import enum
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from telerad.domain.templates import (
    Availability,
    Code,
    Field,
    FieldKind,
    Heading,
    Option,
    Section,
    Sex,
    Template,
    TemplateError,
    heading_of,
    scheme_of,
    validate,
)


class SourceFormat(enum.StrEnum):
    """What a template was imported from (``report_template.source_format``)."""

    MRRT = "mrrt"
    TOML = "toml"
    JSON = "json"


_EXTENSIONS = {
    ".html": SourceFormat.MRRT,
    ".htm": SourceFormat.MRRT,
    ".xhtml": SourceFormat.MRRT,
    ".toml": SourceFormat.TOML,
    ".json": SourceFormat.JSON,
}


def format_of(file_name: str) -> SourceFormat:
    """The format a file's extension says (``.html`` → MRRT, ``.toml``, ``.json``)."""
    suffix = "." + file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if suffix not in _EXTENSIONS:
        known = ", ".join(sorted(_EXTENSIONS))
        raise TemplateError(f"{file_name}: no template format for this extension ({known})")
    return _EXTENSIONS[suffix]


_TEMPLATE_KEYS = str.split(
    "id title version language code modalities sexes min_age max_age procedure_codes "
    "default_for fallback"
)
_SECTION_KEYS = str.split("id title heading required default normal field")
_FIELD_KEYS = str.split(
    "id label type required code options unit min max step default normal group"
)
_OPTION_KEYS = ("value", "label", "code")
_KINDS = ", ".join(k.value for k in FieldKind)


# -- writing ----------------------------------------------------------------------------
def to_dict(template: Template) -> dict[str, Any]:
    """``template`` as plain data (JSON and TOML can hold it): every value it has."""
    a = template.availability
    head: dict[str, Any] = {
        "id": template.id,
        "title": template.title,
        "version": template.version,
        "language": template.language,
    }
    optional: dict[str, Any] = {
        "code": _code_out(template.code),
        "modalities": sorted(a.modalities),
        "sexes": sorted(s.value for s in a.sexes),
        "min_age": a.min_age,
        "max_age": a.max_age,
        "procedure_codes": sorted(template.procedure_codes),
        "default_for": sorted(template.default_for),
        "fallback": template.fallback,
    }
    head.update({k: v for k, v in optional.items() if _present(v)})
    out: dict[str, Any] = {
        "template": head,
        "section": [_section_out(s) for s in template.sections],
    }
    if template.macros:
        out["macros"] = dict(template.macros)
    return out


def _present(value: Any) -> bool:
    """Whether a value differs from its key's default (0 is a value: a minimum of 0)."""
    return value is not None and value is not False and value != "" and value != []


def _section_out(section: Section) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": section.id,
        "title": section.title,
        # "" says "no heading": a missing one would be taken from the title.
        "heading": section.heading.value if section.heading is not None else "",
    }
    if section.required:
        out["required"] = True
    if section.default_text:
        out["default"] = section.default_text
    if section.normal_text:
        out["normal"] = section.normal_text
    if section.fields:
        out["field"] = [_field_out(f) for f in section.fields]
    return out


def _field_out(f: Field) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f.id, "label": f.label, "type": f.kind.value}
    optional: dict[str, Any] = {
        "required": f.required,
        "code": _code_out(f.code),
        "options": [_option_out(o) for o in f.options],
        "unit": f.unit,
        "min": _number_out(f.minimum),
        "max": _number_out(f.maximum),
        "step": _number_out(f.step),
        "default": f.default,
        "normal": f.normal,
        "group": f.group,
    }
    out.update({k: v for k, v in optional.items() if _present(v)})
    return out


def _option_out(option: Option) -> str | dict[str, Any]:
    if option.label == option.value and option.code is None:
        return option.value
    out: dict[str, Any] = {"value": option.value, "label": option.label}
    if option.code is not None:
        out["code"] = _code_out(option.code)
    return out


def _code_out(code: Code | None) -> dict[str, str] | None:
    if code is None:
        return None
    return {"scheme": code.scheme, "value": code.value, "meaning": code.meaning}


def _number_out(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def to_json(template: Template) -> str:
    """The JSON body the template store keeps."""
    return json.dumps(to_dict(template), ensure_ascii=False, sort_keys=False)


# -- reading ----------------------------------------------------------------------------
def parse_toml(text: str, name: str = "") -> Template:
    """A template from the administrator's TOML form, validated."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{_prefix(name)}not valid TOML: {exc}") from exc
    return from_dict(data, name)


def parse_json(text: str, name: str = "") -> Template:
    """A template from the JSON form (the same keys as the TOML form), validated."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{_prefix(name)}not valid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise TemplateError(f"{_prefix(name)}a template is an object with a 'template' key")
    return from_dict(data, name)


def from_json(body: str) -> Template:
    """The template a JSON body (:func:`to_json`) holds."""
    return parse_json(body)


def from_dict(data: Mapping[str, Any], name: str = "") -> Template:
    """The template ``data`` (the form above) describes, validated; a TemplateError
    names the section and field at fault and what is wrong."""
    prefix = _prefix(name)
    try:
        return validate(_template(data))
    except TemplateError as exc:
        raise TemplateError(prefix + str(exc)) from exc


def _prefix(name: str) -> str:
    return f"{name}: " if name else ""


def _template(data: Mapping[str, Any]) -> Template:
    _keys(data, ("template", "section", "macros"), "the file")
    head = data.get("template")
    if not isinstance(head, Mapping):
        raise TemplateError("no [template] table (id, title, version…)")
    _keys(head, _TEMPLATE_KEYS, "[template]")
    template_id = _text(head, "id", "[template]", required=True)
    where = f"template {template_id!r}"
    title = _text(head, "title", where, required=True)
    raw_sections = data.get("section", [])
    if not isinstance(raw_sections, Sequence) or isinstance(raw_sections, str):
        raise TemplateError(f"{where}: 'section' must be a list of sections ([[section]])")
    sections = tuple(_section(s, i) for i, s in enumerate(raw_sections, 1))
    macros = data.get("macros", {})
    if not isinstance(macros, Mapping) or not all(isinstance(v, str) for v in macros.values()):
        raise TemplateError(f"{where}: [macros] maps a keyword to its text")
    modalities = frozenset(m.upper() for m in _texts(head, "modalities", where))
    return Template(
        id=template_id,
        title=title,
        version=_text(head, "version", where) or "1",
        language=_text(head, "language", where) or "en",
        sections=sections,
        availability=Availability(
            modalities=modalities,
            sexes=frozenset(_sex(s, where) for s in _texts(head, "sexes", where)),
            min_age=_age(head, "min_age", where),
            max_age=_age(head, "max_age", where),
        ),
        procedure_codes=frozenset(_texts(head, "procedure_codes", where)),
        macros={str(k): v for k, v in macros.items()},
        code=_code(head.get("code"), title, where),
        fallback=_flag(head, "fallback", where),
        default_for=frozenset(m.upper() for m in _texts(head, "default_for", where)),
    )


def _section(data: Any, number: int) -> Section:
    if not isinstance(data, Mapping):
        raise TemplateError(f"section {number}: a section is a table ([[section]])")
    title = str(data.get("title") or data.get("id") or "").strip()
    section_id = str(data.get("id") or slug(title)).strip()
    where = f"section {section_id or number!r}"
    if not section_id:
        raise TemplateError(f"section {number}: no id and no title")
    _keys(data, _SECTION_KEYS, where)
    raw_fields = data.get("field", [])
    if not isinstance(raw_fields, Sequence) or isinstance(raw_fields, str):
        raise TemplateError(f"{where}: 'field' must be a list of fields ([[section.field]])")
    return Section(
        id=section_id,
        title=title or section_id,
        heading=_heading(data.get("heading"), title, where),
        fields=tuple(_field(f, i, where) for i, f in enumerate(raw_fields, 1)),
        default_text=_text(data, "default", where),
        normal_text=_text(data, "normal", where),
        required=_flag(data, "required", where),
    )


def _heading(value: Any, title: str, where: str) -> Heading | None:
    if value is None:
        return heading_of(title)
    if not isinstance(value, str):
        raise TemplateError(f"{where}: a heading is a LOINC code or a name, not {value!r}")
    if not value.strip():
        return None
    found = heading_of(value.replace("_", " "), value)
    if found is None:
        names = ", ".join(h.name.lower() for h in Heading)
        raise TemplateError(f"{where}: unknown heading {value!r} (CID 7001: {names})")
    return found


def _field(data: Any, number: int, section: str) -> Field:
    if not isinstance(data, Mapping):
        raise TemplateError(f"{section}, field {number}: a field is a table ([[section.field]])")
    label = str(data.get("label") or data.get("id") or "").strip()
    field_id = str(data.get("id") or slug(label)).strip()
    if not field_id:
        raise TemplateError(f"{section}, field {number}: no id and no label")
    where = f"{section}, field {field_id!r}"
    _keys(data, _FIELD_KEYS, where)
    kind_name = str(data.get("type", "text")).strip().lower()
    try:
        kind = FieldKind(kind_name)
    except ValueError:
        raise TemplateError(f"{where}: unknown type {kind_name!r} ({_KINDS})") from None
    raw_options = data.get("options", [])
    if not isinstance(raw_options, Sequence) or isinstance(raw_options, str):
        raise TemplateError(f"{where}: 'options' must be a list")
    options = tuple(_option(o, where) for o in raw_options)
    if options and kind not in (FieldKind.CHOICE, FieldKind.MULTIPLE):
        raise TemplateError(f"{where}: options on a field of type {kind.value!r}")
    return Field(
        id=field_id,
        label=label or field_id,
        kind=kind,
        required=_flag(data, "required", where),
        code=_code(data.get("code"), label or field_id, where),
        options=options,
        unit=_text(data, "unit", where),
        minimum=_number(data, "min", where),
        maximum=_number(data, "max", where),
        step=_number(data, "step", where),
        default=_value(data, "default", where),
        normal=_value(data, "normal", where),
        group=_text(data, "group", where),
    )


def _option(data: Any, where: str) -> Option:
    if isinstance(data, str | int | float) and not isinstance(data, bool):
        return Option(str(data), str(data))
    if not isinstance(data, Mapping):
        raise TemplateError(f"{where}: an option is a text or a table (value, label, code)")
    _keys(data, _OPTION_KEYS, f"{where}, an option")
    value = str(data.get("value", "")).strip()
    if not value:
        raise TemplateError(f"{where}: an option without a value")
    label = str(data.get("label") or value)
    return Option(value, label, _code(data.get("code"), label, f"{where}, option {value!r}"))


_CODE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9.\- ]*?)\s*:\s*(\S+)\s*(?:\((.*)\))?\s*$")


def parse_code(text: str, meaning: str, where: str = "") -> Code:
    """A code written ``SCHEME:VALUE`` or ``SCHEME:VALUE (meaning)`` (as ``str(Code)``
    writes it), or a bare RadLex ``RID…``; ``meaning`` when it names none."""
    at = f"{where}: " if where else ""
    if re.fullmatch(r"\s*RID\d+\s*", text):
        return Code(text.strip(), "RADLEX", meaning)
    match = _CODE.match(text)
    if match is None:
        raise TemplateError(f"{at}a code is SCHEME:VALUE (RADLEX:RID…, LN:…, SCT:…), not {text!r}")
    try:
        scheme = scheme_of(match.group(1))
    except TemplateError as exc:
        raise TemplateError(f"{at}{exc}") from None
    return Code(match.group(2), scheme, (match.group(3) or meaning).strip())


def _code(value: Any, meaning: str, where: str) -> Code | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return parse_code(value, meaning, where)
    if isinstance(value, Mapping):
        _keys(value, ("scheme", "value", "meaning"), f"{where}, its code")
        code_value = str(value.get("value", "")).strip()
        if not code_value:
            raise TemplateError(f"{where}: a code without a value")
        try:
            scheme = scheme_of(str(value.get("scheme", "")))
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc}") from None
        return Code(code_value, scheme, str(value.get("meaning") or meaning))
    raise TemplateError(f"{where}: a code is a text (SCHEME:VALUE) or a table, not {value!r}")


def _keys(data: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise TemplateError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
            f" ({', '.join(known)})"
        )


def _text(data: Mapping[str, Any], key: str, where: str, required: bool = False) -> str:
    value = data.get(key, "")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TemplateError(f"{where}: {key} must be a text, not {value!r}")
    text = str(value)
    if required and not text.strip():
        raise TemplateError(f"{where}: no {key}")
    return text.strip() if key in ("id", "title", "version", "language", "unit") else text


def _value(data: Mapping[str, Any], key: str, where: str) -> str:
    """A default or normal value: a text, a number, or true/false (a checkbox's yes/no)."""
    value = data.get(key, "")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)  # a MULTIPLE field's values
    return _text(data, key, where)


def _texts(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise TemplateError(f"{where}: {key} must be a list of texts")
    return [str(v).strip() for v in value if str(v).strip()]


def _flag(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise TemplateError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TemplateError(f"{where}: {key} must be a number, not {value!r}")
    return float(value)


def _age(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 150:
        raise TemplateError(f"{where}: {key} must be whole years (0 to 150), not {value!r}")
    return value


def _sex(value: str, where: str) -> Sex:
    try:
        return Sex(value.upper())
    except ValueError:
        raise TemplateError(f"{where}: a sex is F or M, not {value!r}") from None


def slug(text: str) -> str:
    """A lower-case id made of ``text`` ("Lung-RADS category" → "lung-rads-category")."""
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")[:64]


# -- the shipped templates --------------------------------------------------------------
@cache
def shipped_templates() -> tuple[Template, ...]:
    """The templates shipped with the platform (``telerad/templates/*.toml``), validated,
    in the order of their ids."""
    folder = resources.files("telerad").joinpath("templates")
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            found.append(parse_toml(entry.read_text(encoding="utf-8"), entry.name))
    return tuple(found)
