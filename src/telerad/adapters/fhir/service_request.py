"""FHIR R4 ServiceRequest ↔ order: the mapping, and nothing else (no I/O).

Incoming resources are validated with ``fhir.resources`` (its R4B models: R4B's
ServiceRequest is R4's), then the fields an order needs are read:

* ``identifier`` of type ACSN (v2-0203) → accession number; PLAC/FILL → placer and
  filler order numbers; system ``urn:dicom:uid`` → the requested Study Instance UID;
* ``subject`` → the patient: a contained Patient (``#id``) with an identifier, name,
  birthDate and gender, or a reference with an ``identifier`` (and a ``display``);
* ``code.coding`` (CPT, LOINC or another system) → the procedure, looked up in the
  catalogue; an ``orderDetail`` coding in DICOM's DCM system gives the modality of a
  code the catalogue does not know;
* ``priority`` (routine, urgent, asap, stat) and ``reasonCode`` → the tier, lifted
  to stroke or trauma when a stat/urgent request's reason says so;
* ``requester.display`` → ordering physician; ``occurrenceDateTime`` (or
  ``occurrencePeriod.start``) → when it is to be done.

The facility comes from the caller's account; an account that serves several
facilities names it with the accession identifier's system
(``urn:telerad:accession:<facility>``, as the server writes it) or a ``meta.tag``
in system ``urn:telerad:facility`` whose code is the facility name.

Problems are :class:`FhirError` with the HTTP status, the OperationOutcome issue
code and the element (``expression``) at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from pydantic import ValidationError

from telerad.domain.orders import (
    FHIR_PRIORITY,
    Order,
    OrderError,
    OrderStatus,
    PatientDemographics,
    fhir_priority,
    triage_priority,
)
from telerad.domain.procedures import Catalogue
from telerad.workflow.model import Priority

FHIR_VERSION = "4.0.1"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
DICOM_UID = "urn:dicom:uid"
ACCESSION_PREFIX = "urn:telerad:accession:"
PATIENT_PREFIX = "urn:telerad:patient:"
FACILITY_TAG = "urn:telerad:facility"
STATION_SYSTEM = "urn:telerad:station"
_EXT = "urn:telerad:fhir:StructureDefinition/"
TIER_EXTENSION = _EXT + "triage-priority"
STATUS_EXTENSION = _EXT + "order-status"
STUDY_EXTENSION = _EXT + "study-instance-uid"

#: Code systems → the order's coding scheme, and back.
SCHEMES: dict[str, str] = {
    "http://www.ama-assn.org/go/cpt": "CPT",
    "http://loinc.org": "LN",
    "http://www.radlex.org": "RADLEX",
    "http://snomed.info/sct": "SCT",
}
SYSTEMS: dict[str, str] = {scheme: system for system, scheme in SCHEMES.items()}

#: Order status → ServiceRequest.status (the exact one is in STATUS_EXTENSION).
FHIR_STATUS: dict[OrderStatus, str] = {
    OrderStatus.ORDERED: "active",
    OrderStatus.SCHEDULED: "active",
    OrderStatus.IN_PROGRESS: "active",
    OrderStatus.DISCONTINUED: "active",  # the modality stopped; it may be redone or read
    OrderStatus.PERFORMED: "completed",
    OrderStatus.READY: "completed",
    OrderStatus.CANCELLED: "revoked",
}
REQUEST_STATUSES = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
ORDER_INTENTS = frozenset({"order", "original-order", "reflex-order", "filler-order"})
_TIER_TO_FHIR = {
    Priority.STROKE: "stat",
    Priority.TRAUMA: "stat",
    Priority.STAT: "stat",
    Priority.URGENT: "urgent",
    Priority.ROUTINE: "routine",
}
_GENDER = {"male": "M", "female": "F", "other": "O", "unknown": ""}
_SEX = {"M": "male", "F": "female", "O": "other"}


class FhirError(ValueError):
    """A request the server refuses: status (400, 404, 409, 422), issue code, element."""

    def __init__(
        self, message: str, status: int = 422, code: str = "invalid", expression: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.expression = expression


@dataclass(frozen=True)
class Requested:
    """What a ServiceRequest asks for, before its facility and catalogue entry are known."""

    accession_number: str
    facility_hint: str  # a facility named by the accession system or a meta tag; "" if none
    patient: PatientDemographics
    code: str
    scheme: str
    description: str
    modality: str
    priority: Priority  # already triaged with the reason
    reason: str
    ordering_physician: str
    scheduled_at: datetime | None
    placer_order_number: str = ""
    filler_order_number: str = ""
    requested_study_uid: str = ""
    status: str = "active"


# -- validation ------------------------------------------------------------------------
def validate(body: object, resource_type: str = "ServiceRequest") -> dict[str, Any]:
    """The body as a dict, once fhir.resources accepts it as ``resource_type`` (R4)."""
    if not isinstance(body, dict):
        raise FhirError("the body must be a JSON object (a FHIR resource)", 400, "structure")
    found = body.get("resourceType")
    if found != resource_type:
        raise FhirError(
            f"expected a {resource_type} resource, got resourceType {found!r}",
            400,
            "structure",
            "resourceType",
        )
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(resource_type)
    try:
        model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{resource_type}.{where}: {first.get('msg', 'invalid')}"
        raise FhirError(message, 400, "structure", f"{resource_type}.{where}") from None
    except (KeyError, TypeError, AttributeError) as exc:  # an unknown contained resource type
        raise FhirError(f"{resource_type} is not valid: {exc}", 400, "structure") from None
    return body


# -- ServiceRequest → order ------------------------------------------------------------
def parse_service_request(body: object) -> Requested:
    """Read a ServiceRequest (validated here) as an order request, or FhirError."""
    sr = validate(body)
    status = str(sr.get("status", ""))
    if status not in REQUEST_STATUSES:
        raise FhirError(f"status {status!r} is not a request status", 400, "code-invalid", "status")
    if status not in ("active", "revoked"):
        raise FhirError(
            f"only active requests are taken as orders (status {status!r})",
            422,
            "business-rule",
            "ServiceRequest.status",
        )
    intent = str(sr.get("intent", ""))
    if intent not in ORDER_INTENTS:
        raise FhirError(
            f"intent {intent!r} is not an order ({', '.join(sorted(ORDER_INTENTS))})",
            422,
            "business-rule",
            "ServiceRequest.intent",
        )
    code = str(sr.get("priority") or "routine")
    if code not in FHIR_PRIORITY:
        raise FhirError(
            f"priority {code!r} is not one of {', '.join(sorted(FHIR_PRIORITY))}",
            400,
            "code-invalid",
            "ServiceRequest.priority",
        )
    reason = "; ".join(t for t in (_text(c) for c in sr.get("reasonCode", [])) if t)
    accession, hint, placer, filler, study_uid = _identifiers(sr.get("identifier", []))
    procedure_code, scheme, description = _code(sr.get("code"))
    return Requested(
        accession_number=accession,
        facility_hint=hint or _facility_tag(sr.get("meta", {})),
        patient=_subject(sr),
        code=procedure_code,
        scheme=scheme,
        description=_limit(description, 128, "ServiceRequest.code.text"),
        modality=_modality(sr.get("orderDetail", [])),
        priority=triage_priority(fhir_priority(code), reason),
        reason=reason,
        ordering_physician=_limit(
            to_pn(str(sr.get("requester", {}).get("display", ""))),
            324,
            "ServiceRequest.requester.display",
        ),
        scheduled_at=_occurrence(sr),
        placer_order_number=_limit(placer, 64, "ServiceRequest.identifier"),
        filler_order_number=_limit(filler, 64, "ServiceRequest.identifier"),
        requested_study_uid=study_uid,
        status=status,
    )


def _identifiers(identifiers: Sequence[Mapping[str, Any]]) -> tuple[str, str, str, str, str]:
    accession = hint = placer = filler = study_uid = ""
    for ident in identifiers:
        value = str(ident.get("value", "")).strip()
        system = str(ident.get("system", ""))
        types = {c.get("code") for c in ident.get("type", {}).get("coding", [])}
        if "ACSN" in types:
            accession = value
            if system.startswith(ACCESSION_PREFIX):
                hint = unquote(system[len(ACCESSION_PREFIX) :])
        elif "PLAC" in types:
            placer = value
        elif "FILL" in types:
            filler = value
        elif system == DICOM_UID:
            study_uid = value.removeprefix("urn:oid:")
    if not accession:
        raise FhirError(
            "an identifier of type ACSN (system v2-0203) with the accession number is required",
            422,
            "required",
            "ServiceRequest.identifier",
        )
    if len(study_uid) > 64:
        raise FhirError("the requested Study Instance UID is too long", 422, "value")
    return accession, hint, placer, filler, study_uid


def _facility_tag(meta: Mapping[str, Any]) -> str:
    for tag in meta.get("tag", []):
        if tag.get("system") == FACILITY_TAG and tag.get("code"):
            return str(tag["code"])
    return ""


def _subject(sr: Mapping[str, Any]) -> PatientDemographics:
    subject = sr.get("subject", {})
    ref = str(subject.get("reference", ""))
    if ref.startswith("#"):
        contained = [
            r
            for r in sr.get("contained", [])
            if r.get("id") == ref[1:] and r.get("resourceType") == "Patient"
        ]
        if not contained:
            raise FhirError(
                f"subject {ref} is not a contained Patient",
                422,
                "not-found",
                "ServiceRequest.subject",
            )
        patient = contained[0]
        ids = patient.get("identifier", [])
        mrn = [
            i for i in ids if "MR" in {c.get("code") for c in i.get("type", {}).get("coding", [])}
        ]
        chosen = [str(i.get("value", "")).strip() for i in mrn + ids if i.get("value")]
        names = patient.get("name", [])
        name = _pn(names[0]) if names else ""
        birth = str(patient.get("birthDate", ""))
        birth_date = birth.replace("-", "") if len(birth) == 10 else ""  # DICOM DA: whole dates
        sex = _GENDER.get(str(patient.get("gender", "")), "")
        where = "ServiceRequest.contained.Patient.identifier"
    else:
        ident = subject.get("identifier", {})
        chosen = [str(ident.get("value", "")).strip()] if ident.get("value") else []
        name, birth_date, sex = to_pn(str(subject.get("display", ""))), "", ""
        where = "ServiceRequest.subject.identifier"
    if not chosen or not chosen[0]:
        raise FhirError(
            "the subject needs a patient identifier: a contained Patient with an identifier, "
            "or a reference with an identifier",
            422,
            "required",
            where,
        )
    return PatientDemographics(
        _limit(chosen[0], 64, where), _limit(name, 324, "Patient.name"), birth_date, sex
    )


def _code(concept: Mapping[str, Any] | None) -> tuple[str, str, str]:
    codings = [c for c in (concept or {}).get("coding", []) if c.get("code")]
    if not codings:
        raise FhirError(
            "code needs a coding (CPT, LOINC or a local code) for the requested procedure",
            422,
            "required",
            "ServiceRequest.code",
        )
    known = [c for c in codings if c.get("system") in SCHEMES]
    chosen = (known or codings)[0]
    code = _limit(str(chosen["code"]).strip(), 64, "ServiceRequest.code.coding.code")
    scheme = SCHEMES.get(str(chosen.get("system", "")), "")
    description = str((concept or {}).get("text") or chosen.get("display") or "")
    return code, scheme, description


def _modality(details: Sequence[Mapping[str, Any]]) -> str:
    for concept in details:
        for coding in concept.get("coding", []):
            if coding.get("system") == DCM and coding.get("code"):
                return _limit(str(coding["code"]).upper(), 16, "ServiceRequest.orderDetail")
    return ""


def _occurrence(sr: Mapping[str, Any]) -> datetime | None:
    text = sr.get("occurrenceDateTime") or sr.get("occurrencePeriod", {}).get("start")
    if not text:
        return None
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:  # a year or a year-month: not a time to schedule at
        raise FhirError(
            "occurrence must be a whole date or a date and time",
            422,
            "value",
            "ServiceRequest.occurrence",
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _text(concept: Mapping[str, Any]) -> str:
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    return ""


def _limit(value: str, size: int, where: str) -> str:
    if len(value) > size:
        raise FhirError(f"{where} is longer than {size} characters", 422, "too-long", where)
    return value


def _pn(name: Mapping[str, Any]) -> str:
    """A FHIR HumanName as DICOM PN (Family^Given^Middle)."""
    given = [str(g) for g in name.get("given", [])]
    family = str(name.get("family", ""))
    if not family and not given:
        return to_pn(str(name.get("text", "")))
    parts = [family, given[0] if given else "", " ".join(given[1:])]
    return "^".join(parts).rstrip("^")


def to_pn(display: str) -> str:
    """A display name as DICOM PN: "Family, Given" → Family^Given; others as they are."""
    display = display.strip()
    if "^" in display or "," not in display:
        return display
    family, _, given = display.partition(",")
    return f"{family.strip()}^{given.strip()}"


def from_pn(pn: str) -> str:
    """A DICOM PN as a display name: Family^Given → "Family, Given"."""
    family, _, rest = pn.partition("^")
    given = " ".join(p for p in rest.split("^")[:2] if p)
    return f"{family}, {given}" if given else family


# -- order → ServiceRequest ------------------------------------------------------------
def accession_system(facility: str) -> str:
    return ACCESSION_PREFIX + quote(facility, safe="")


def service_request(order: Order, facility: str) -> dict[str, Any]:
    """The order as a FHIR R4 ServiceRequest (the patient contained in it)."""
    assert order.id is not None
    p, proc = order.patient, order.procedure
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "patient",
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": PATIENT_PREFIX + quote(facility, safe=""),
                "value": p.patient_id,
            }
        ],
    }
    if p.name:
        family, _, rest = p.name.partition("^")
        name: dict[str, Any] = {"family": family} if family else {}
        given = [g for g in rest.split("^")[:2] if g]
        if given:
            name["given"] = given
        if name:
            patient["name"] = [name]
    if len(p.birth_date) == 8 and p.birth_date.isdigit():
        patient["birthDate"] = f"{p.birth_date[:4]}-{p.birth_date[4:6]}-{p.birth_date[6:]}"
    if p.sex in _SEX:
        patient["gender"] = _SEX[p.sex]
    identifiers: list[dict[str, Any]] = [
        _typed_identifier("ACSN", accession_system(facility), order.accession_number)
    ]
    if order.placer_order_number:
        identifiers.append(_typed_identifier("PLAC", None, order.placer_order_number))
    if order.filler_order_number:
        identifiers.append(_typed_identifier("FILL", None, order.filler_order_number))
    if order.requested_study_uid:
        identifiers.append({"system": DICOM_UID, "value": f"urn:oid:{order.requested_study_uid}"})
    coding: dict[str, Any] = {}
    if proc.coding_scheme in SYSTEMS:
        coding["system"] = SYSTEMS[proc.coding_scheme]
    coding["code"] = proc.code
    if proc.description:
        coding["display"] = proc.description
    extensions: list[dict[str, Any]] = [
        {"url": TIER_EXTENSION, "valueCode": order.priority.value},
        {"url": STATUS_EXTENSION, "valueCode": order.status.value},
    ]
    if order.study_instance_uid:
        extensions.append(
            {"url": STUDY_EXTENSION, "valueOid": f"urn:oid:{order.study_instance_uid}"}
        )
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(order.id),
        "meta": {"tag": [{"system": FACILITY_TAG, "code": facility}]},
        "contained": [patient],
        "extension": extensions,
        "identifier": identifiers,
        "status": FHIR_STATUS[order.status],
        "intent": "order",
        "priority": _TIER_TO_FHIR[order.priority],
        "code": {"coding": [coding], **({"text": proc.description} if proc.description else {})},
        "subject": {"reference": "#patient"},
    }
    if order.updated_at is not None:
        resource["meta"]["lastUpdated"] = _instant(order.updated_at)
    if proc.modality:
        resource["orderDetail"] = [{"coding": [{"system": DCM, "code": proc.modality}]}]
    if p.name:
        resource["subject"]["display"] = from_pn(p.name)
    if order.scheduled_at is not None:
        resource["occurrenceDateTime"] = _instant(order.scheduled_at)
    if order.created_at is not None:
        resource["authoredOn"] = _instant(order.created_at)
    if order.ordering_physician:
        resource["requester"] = {"display": from_pn(order.ordering_physician)}
    if order.station_ae:
        resource["locationCode"] = [
            {"coding": [{"system": STATION_SYSTEM, "code": order.station_ae}]}
        ]
    if order.reason:
        resource["reasonCode"] = [{"text": order.reason}]
    return resource


def _typed_identifier(kind: str, system: str | None, value: str) -> dict[str, Any]:
    ident: dict[str, Any] = {"type": {"coding": [{"system": V2_0203, "code": kind}]}}
    if system:
        ident["system"] = system
    ident["value"] = value
    return ident


def _instant(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- search ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """A ServiceRequest search: which parameters it used, for the Bundle's self link."""

    accession_number: str | None = None
    facility_hint: str | None = None
    patient_id: str | None = None
    statuses: frozenset[OrderStatus] | None = None
    count: int = 50
    offset: int = 0
    used: tuple[tuple[str, str], ...] = ()


MAX_COUNT = 500


def whole_number(name: str, value: str) -> int:
    """A paging parameter (``_count``, ``_offset``): a whole number ≥ 0, else 400."""
    try:
        number = int(value)
    except ValueError:
        raise FhirError(f"{name} must be a whole number", 400, "value", name) from None
    if number < 0:
        raise FhirError(f"{name} cannot be negative", 400, "value", name)
    return number


def parse_search(params: Sequence[tuple[str, str]]) -> Search:
    """``identifier``, ``patient.identifier`` (``subject:Patient.identifier``), ``status``,
    ``_count`` and ``_offset``; other parameters are ignored (and left out of ``used``).
    """
    accession = hint = patient = None
    statuses: frozenset[OrderStatus] | None = None
    count, offset = 50, 0
    used: list[tuple[str, str]] = []
    for name, value in params:
        if name == "identifier":
            system, bar, accession = value.rpartition("|")
            accession = accession or None
            if bar and system.startswith(ACCESSION_PREFIX):
                hint = unquote(system[len(ACCESSION_PREFIX) :])
        elif name in ("patient.identifier", "subject:Patient.identifier", "subject.identifier"):
            patient = value.rpartition("|")[2]
        elif name == "status":
            wanted = {s.strip() for s in value.split(",")}
            unknown = wanted - REQUEST_STATUSES
            if unknown:
                raise FhirError(f"unknown status {sorted(unknown)[0]!r}", 400, "value", "status")
            statuses = frozenset(o for o, f in FHIR_STATUS.items() if f in wanted)
        elif name == "_count":
            count = min(whole_number(name, value), MAX_COUNT)
        elif name == "_offset":
            offset = whole_number(name, value)
        else:
            continue
        used.append((name, value))
    return Search(accession, hint, patient, statuses, count, offset, tuple(used))


def to_order(req: Requested, facility_id: int, catalogue: Catalogue) -> Order:
    """The order ``req`` asks ``facility_id`` for (the catalogue names its procedure)."""
    try:
        return Order(
            facility_id=facility_id,
            accession_number=req.accession_number,
            patient=req.patient,
            procedure=catalogue.resolve(req.code, req.description, req.scheme, req.modality),
            priority=req.priority,
            reason=req.reason,
            ordering_physician=req.ordering_physician,
            scheduled_at=req.scheduled_at,
            placer_order_number=req.placer_order_number,
            filler_order_number=req.filler_order_number,
            requested_study_uid=req.requested_study_uid,
        )
    except OrderError as exc:
        raise FhirError(str(exc), 422, "value") from None
