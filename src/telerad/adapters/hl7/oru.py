"""HL7 v2.5.1 ORU^R01 for a signed report: IHE Results Distribution (RAD-128) (pure).

One message per signature, built from the report, the study's facts, its template
(section codes and titles) and, when known, the facility's order (placer and
filler numbers, birth date, ordering physician)::

    MSH  PID  PV1  ORC  OBR  [NTE]  { OBX }

* MSH-10, the message control ID, is the outbox's message id: a resend carries
  the same one, so the facility can tell a duplicate from a new result.
* OBR-25 and every OBX-11 say what the report is now (HL7 table 0123 / 0085):
  ``P`` preliminary, ``F`` final, ``C`` corrected — an appended report (a final
  with addenda) is sent as ``C`` as well: the result the facility holds is
  replaced by one that says more, and table 0123 has no other value for it.
* One OBX per section with text (TX, one repetition per line), its OBX-3 the
  section's CID 7001 LOINC heading (``19005-8^Impressions^LN``); a section
  without a heading is named by the template (``id^title^L``). Coded fields
  follow their section as CWE (pick lists with coded options) or NM (numbers,
  UCUM units in OBX-6), the same OBX-4 sub-ID grouping them with it. Each addendum
  is an OBX ``55107-7^Addendum^LN`` with its time (OBX-14) and author (OBX-16).
* Text is escaped (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``); control characters,
  which would break the MLLP framing, become spaces; everything else, any
  Unicode, is sent as it is in UTF-8 (MSH-18 ``UNICODE UTF-8``).

Lengths stay within HL7 v2.5.1's (ST 199, IS 20), and a line of text longer than
199 characters is wrapped at a space into several repetitions: validators that
read OBX-5 as ST (hl7apy's strict one does) take no more, so the message parses
under hl7apy's strict validation (the tests check it).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

from telerad.domain.orders import Order
from telerad.domain.reports import Report, ReportEvent, ReportStatus, Version
from telerad.domain.templates import Code, Field, FieldKind, Heading, Section, Template, narrative
from telerad.services.reports import ReportFacts

VERSION = "2.5.1"
CHARSET = "UNICODE UTF-8"
FIELD, COMPONENT, REPETITION, ESCAPE, SUBCOMPONENT = "|", "^", "~", "\\", "&"
ENCODING = COMPONENT + REPETITION + ESCAPE + SUBCOMPONENT
#: HL7 v2.5.1 lengths: ST, IS, TX/FT (per repetition).
ST, IS, TX = 199, 20, 65536
#: Longest TX repetition (a line) sent: validators that read OBX-5 as ST, hl7apy's
#: strict one among them, take 199 characters at most; displays wrap lines anyway.
LINE = ST

#: OBR-25 / OBX-11 by report status.
RESULT_STATUS = {
    ReportStatus.PRELIMINARY: "P",
    ReportStatus.FINAL: "F",
    ReportStatus.APPENDED: "C",
    ReportStatus.CORRECTED: "C",
}
#: Coding scheme designators as HL7 table 0396 writes them.
_SCHEMES = {"LN": "LN", "SCT": "SCT", "DCM": "DCM", "UCUM": "UCUM", "RADLEX": "RADLEX"}

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class OruError(ValueError):
    """The report cannot be sent as a result (not signed)."""


@dataclass(frozen=True)
class Parties:
    """MSH-3 to MSH-6: who sends (the reading network) and who receives."""

    sending_application: str = "TELERAD"
    sending_facility: str = "TELERAD"
    receiving_application: str = ""
    receiving_facility: str = ""  # the facility's name


# --------------------------------------------------------------------------- encoding


def escape(text: str, limit: int | None = None) -> str:
    """``text`` as HL7 field content: delimiters escaped, line breaks and other
    control characters made spaces, cut to ``limit`` characters before escaping."""
    text = _CONTROL.sub(" ", text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))
    if limit is not None:
        text = text[:limit]
    out = []
    for ch in text:
        if ch == ESCAPE:
            out.append("\\E\\")
        elif ch == FIELD:
            out.append("\\F\\")
        elif ch == COMPONENT:
            out.append("\\S\\")
        elif ch == SUBCOMPONENT:
            out.append("\\T\\")
        elif ch == REPETITION:
            out.append("\\R\\")
        else:
            out.append(ch)
    escaped = "".join(out)
    if limit is not None and len(escaped) > limit:  # delimiters made it longer: cut whole chars
        while len(escaped) > limit:
            text = text[:-1]
            escaped = escape(text)
    return escaped


def text_lines(text: str) -> str:
    """Free text as TX: one repetition per line, each escaped; a line longer than
    :data:`LINE` characters (escaped) is wrapped at spaces."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n").split("\n")
    return REPETITION.join(piece for line in lines for piece in wrap(line.rstrip()))


def wrap(line: str, width: int | None = None) -> list[str]:
    """``line`` escaped, in pieces of at most ``width`` characters: broken after a
    space where there is one, else between characters (never inside an escape)."""
    width = width or LINE
    escaped = escape(line)
    if len(escaped) <= width:
        return [escaped]
    pieces: list[str] = []
    current = ""
    for word in re.split(r"(?<= )", line):  # each word keeps the space after it
        candidate = escape(current + word)
        if len(candidate) <= width:
            current += word
            continue
        if current:
            pieces.append(escape(current))
        current = ""
        for ch in word:
            if len(escape(current + ch)) > width:
                pieces.append(escape(current))
                current = ""
            current += ch
    if current:
        pieces.append(escape(current))
    return pieces


def timestamp(when: datetime) -> str:
    """HL7 DTM to the second, in UTC with its offset: ``20261203020000+0000``."""
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def _components(*values: str) -> str:
    return COMPONENT.join(values).rstrip(COMPONENT)


def _coded(code: Code) -> str:
    scheme = _SCHEMES.get(code.scheme.upper(), code.scheme)
    return _components(escape(code.value, ST), escape(code.meaning, ST), escape(scheme, ST))


def _name_parts(pn: str) -> tuple[str, str, str, str, str]:
    """A DICOM PN (``Family^Given^Middle^Prefix^Suffix``, its alphabetic group) in parts."""
    parts = (pn.split("=")[0].split("^") + [""] * 5)[:5]
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def person_name(pn: str) -> str:
    """XPN from a DICOM PN: family ^ given ^ middle ^ suffix ^ prefix."""
    family, given, middle, prefix, suffix = _name_parts(pn)
    return _components(*(escape(p, ST) for p in (family, given, middle, suffix, prefix)))


def _person(pn: str, identifier: str, separator: str) -> str:
    """XCN (``^``) or CNN (``&``, inside NDL): id, family, given, middle, suffix, prefix."""
    family, given, middle, prefix, suffix = _name_parts(pn)
    values = (identifier, family, given, middle, suffix, prefix)
    return separator.join(escape(v, ST) for v in values).rstrip(separator)


def _segment(name: str, *fields: str) -> str:
    return FIELD.join((name, *fields)).rstrip(FIELD)


# --------------------------------------------------------------------------- the message


def build_oru(
    report: Report,
    facts: ReportFacts,
    template: Template | None,
    control_id: str,
    now: datetime,
    parties: Parties,
    order: Order | None = None,
    pdf: bytes | None = None,
) -> str:
    """The ORU^R01 for ``report`` as it stands after its latest signature (ER7,
    segments ending with CR). ``template`` names the sections (None: the section
    ids are the names); ``pdf`` adds the rendered report as an OBX of type ED."""
    signed = report.signed
    status = RESULT_STATUS.get(report.status)
    if signed is None or status is None:
        raise OruError(f"a {report.status.value} report is not a result to send")
    segments = [
        _msh(control_id, now, parties),
        _pid(facts, order),
        _segment("PV1", "1", "U"),
        _orc(report, order),
        _obr(report, facts, signed, status, order),
    ]
    if signed.event is ReportEvent.CORRECT and signed.reason:
        segments.append(_segment("NTE", "1", "L", escape("Corrected: " + signed.reason, TX)))
    segments.extend(_observations(report, template, status, pdf))
    return "\r".join(segments) + "\r"


def _msh(control_id: str, now: datetime, parties: Parties) -> str:
    return _segment(
        "MSH",
        ENCODING,
        escape(parties.sending_application, IS),
        escape(parties.sending_facility, IS),
        escape(parties.receiving_application, IS),
        escape(parties.receiving_facility, IS),
        timestamp(now),
        "",
        "ORU^R01^ORU_R01",
        escape(control_id, ST),
        "P",
        VERSION,
        "",
        "",
        "",  # MSH-15/16 empty: original acknowledgement mode
        "",
        "",
        CHARSET,
    )


def _pid(facts: ReportFacts, order: Order | None) -> str:
    birth = order.patient.birth_date if order is not None else ""
    if not re.fullmatch(r"\d{8}", birth):
        birth = ""
    sex = facts.sex if facts.sex in ("M", "F", "O") else ("U" if not facts.sex else "O")
    return _segment(
        "PID",
        "1",
        "",
        _components(escape(facts.patient_id, ST), "", "", "", "MR"),
        "",
        person_name(facts.patient_name),
        "",
        birth,
        sex,
    )


def _numbers(report: Report, order: Order | None) -> tuple[str, str]:
    """Placer and filler order numbers; the accession stands in for an unknown filler's."""
    placer = order.placer_order_number if order is not None else ""
    filler = (order.filler_order_number if order is not None else "") or report.accession_number
    return escape(placer, ST), escape(filler, ST)


def _orc(report: Report, order: Order | None) -> str:
    placer, filler = _numbers(report, order)
    physician = order.ordering_physician if order is not None else ""
    return _segment(
        "ORC",
        "RE",
        placer,
        filler,
        *([""] * 8),
        _person(physician, "", COMPONENT) if physician else "",
    )


def _obr(
    report: Report, facts: ReportFacts, signed: Version, status: str, order: Order | None
) -> str:
    placer, filler = _numbers(report, order)
    scheme = (order.procedure.coding_scheme if order is not None else "") or "L"
    service = (
        _components(escape(facts.procedure_code, ST), escape(facts.procedure, ST), scheme)
        if facts.procedure_code
        else _components("", escape(facts.procedure or facts.modality, ST))
    )
    observed = (
        facts.study_date.strftime("%Y%m%d")
        if isinstance(facts.study_date, date)
        else timestamp(report.versions[0].made_at)
    )
    physician = order.ordering_physician if order is not None else ""
    requested = order.requested_procedure_id if order is not None else ""
    fields = [""] * 32
    fields[0] = "1"
    fields[1], fields[2] = placer, filler
    fields[3] = service
    fields[6] = observed  # OBR-7 observation date/time: the study's date
    fields[15] = _person(physician, "", COMPONENT) if physician else ""  # OBR-16
    fields[17] = escape(report.accession_number, ST)  # OBR-18: the accession (IHE)
    fields[18] = escape(requested, ST)  # OBR-19: the requested procedure ID
    fields[21] = timestamp(signed.made_at)  # OBR-22: this status's time
    fields[23] = "RAD"  # OBR-24: diagnostic service section (table 0074)
    fields[24] = status  # OBR-25
    fields[31] = _person(signed.author, str(signed.author_id), SUBCOMPONENT)  # OBR-32
    return _segment("OBR", *fields)


@dataclass(frozen=True)
class _Obx:
    kind: str  # TX, CWE, NM, ED
    identifier: str  # OBX-3, encoded
    value: str  # OBX-5, encoded
    sub_id: str = ""
    units: str = ""
    when: str = ""  # OBX-14
    observer: str = ""  # OBX-16


def _observations(
    report: Report, template: Template | None, status: str, pdf: bytes | None
) -> list[str]:
    segments = []
    for n, obx in enumerate(_obx_of(report, template, pdf), start=1):
        fields = [""] * 16
        fields[0] = str(n)
        fields[1] = obx.kind
        fields[2] = obx.identifier
        fields[3] = obx.sub_id
        fields[4] = obx.value
        fields[5] = obx.units
        fields[10] = status  # OBX-11
        fields[13] = obx.when
        fields[15] = obx.observer
        segments.append(_segment("OBX", *fields))
    return segments


def _obx_of(report: Report, template: Template | None, pdf: bytes | None) -> Iterator[_Obx]:
    content = report.content
    sections = template.sections if template is not None else ()
    known = {s.id for s in sections}
    group = 0
    for section in sections:
        prose = narrative(section, content.text(section.id), content.fields)
        coded = [f for f in section.fields if f.code is not None and content.value(f.id).strip()]
        if not prose.strip() and not coded:
            continue
        group += 1
        if prose.strip():
            yield _Obx("TX", _section_code(section), text_lines(prose), str(group))
        for f in coded:
            yield from _field_obx(f, content.value(f.id), str(group))
    for section_id, text in content.sections.items():  # text of sections the template lacks
        if section_id not in known and text.strip():
            group += 1
            local = _components(escape(section_id, ST), escape(section_id, ST), "L")
            yield _Obx("TX", local, text_lines(text), str(group))
    addendum = _coded(Heading.ADDENDUM.code)
    for version in report.addenda():
        group += 1
        yield _Obx(
            "TX",
            addendum,
            text_lines(version.addendum),
            str(group),
            when=timestamp(version.made_at),
            observer=_person(version.author, str(version.author_id), COMPONENT),
        )
    if pdf is not None:
        data = base64.b64encode(pdf).decode("ascii")
        if len(data) <= TX:
            value = _components("TELERAD", "AP", "PDF", "Base64", data)
            yield _Obx("ED", _components("", "Report (PDF)", ""), value, str(group + 1))


def _section_code(section: Section) -> str:
    if section.code is not None:
        return _coded(section.code)
    return _components(escape(section.id, ST), escape(section.title, ST), "L")


def _field_obx(f: Field, value: str, group: str) -> Iterator[_Obx]:
    assert f.code is not None
    identifier = _coded(f.code)
    if f.kind is FieldKind.NUMBER:
        number = value.strip()
        if not _NUMBER.fullmatch(number) or len(number) > 16:  # NM: no exponent, 16 at most
            return
        units = _components(escape(f.unit, ST), escape(f.unit, ST), "UCUM") if f.unit else ""
        yield _Obx("NM", identifier, number, group, units=units)
        return
    if f.kind in (FieldKind.CHOICE, FieldKind.MULTIPLE):
        for v in (x.strip() for x in value.split(";")):
            option = f.option(v)
            if option is not None and option.code is not None:
                yield _Obx("CWE", identifier, _coded(option.code), group)
            elif option is not None:
                yield _Obx("CWE", identifier, _components("", escape(option.label, ST)), group)
        return
    yield _Obx("TX", identifier, text_lines(value), group)
