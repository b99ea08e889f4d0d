"""FHIR R4 AuditEvent resources after the IHE Basic Audit Log Patterns (BALP).

Plain dicts (JSON-ready). The type is the DICOM event ID, the agent the actor (with
its network address), the source this archive, the entities the patient (BALP
Patient entity: type 1 Person, role 1 Patient) and the study (a DICOM UID as
``urn:oid:``).
"""

from __future__ import annotations

import json
from typing import Any

from telerad.domain.audit import ROLE_CODES, AuditRecord, EventID, network_access_point_type

DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP_BASIC = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit"


def audit_event(record: AuditRecord, source_id: str) -> dict[str, Any]:
    event = EventID.from_code(record.event_id)
    agent: dict[str, Any] = {
        "who": {"identifier": {"value": record.actor_id}, "display": record.actor_id},
        "requestor": True,
    }
    if record.actor_role in ROLE_CODES:
        code, meaning = ROLE_CODES[record.actor_role]
        agent["type"] = {"coding": [{"system": DCM_SYSTEM, "code": code, "display": meaning}]}
    elif record.actor_role:
        agent["role"] = [{"text": record.actor_role}]
    if record.source_address:
        agent["network"] = {
            "address": record.source_address,
            "type": network_access_point_type(record.source_address),
        }
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"telerad-audit-{record.sequence}",
        "meta": {"profile": [BALP_BASIC]},
        "type": {"system": DCM_SYSTEM, "code": event.code, "display": event.meaning},
        "action": record.action,
        "recorded": record.time,
        "outcome": str(record.outcome),
        "agent": [agent, {"who": {"display": source_id}, "requestor": False}],
        "source": {
            "observer": {"display": source_id},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if record.facility:
        resource["source"]["site"] = record.facility
    if record.detail and record.outcome != 0:
        resource["outcomeDesc"] = record.detail
    entities: list[dict[str, Any]] = []
    if record.patient_id:
        entities.append(
            {
                "what": {"identifier": {"value": record.patient_id}},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if record.study_uid:
        study: dict[str, Any] = {
            "what": {
                "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{record.study_uid}"}
            },
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "3", "display": "Report"},
        }
        if record.detail:
            study["detail"] = [{"type": "telerad-detail", "valueString": record.detail}]
        entities.append(study)
    if entities:
        resource["entity"] = entities
    return resource


def to_json(record: AuditRecord, source_id: str) -> str:
    """One line of JSON: an NDJSON export line."""
    return json.dumps(audit_event(record, source_id), separators=(",", ":"), ensure_ascii=False)
