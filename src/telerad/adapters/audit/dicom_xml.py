"""DICOM audit messages (PS3.15 A.5.1): one ``AuditMessage`` element per record.

The elements follow the DICOM audit message schema (RFC 3881 as DICOM restricted
it): EventIdentification, ActiveParticipant (the actor, and this archive as the
other party), AuditSourceIdentification, ParticipantObjectIdentification for the
patient and the study when the record names them.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

from telerad.domain.audit import DCM, ROLE_CODES, AuditRecord, EventID, network_access_point_type


def _code(parent: ET.Element, tag: str, code: str, scheme: str, meaning: str) -> ET.Element:
    return ET.SubElement(
        parent, tag, {"csd-code": code, "codeSystemName": scheme, "originalText": meaning}
    )


def audit_message(record: AuditRecord, source_id: str) -> ET.Element:
    """The AuditMessage element of ``record``; ``source_id`` names this archive (its AE title)."""
    event = EventID.from_code(record.event_id)
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": record.action,
            "EventDateTime": record.time,
            "EventOutcomeIndicator": str(record.outcome),
        },
    )
    _code(ident, "EventID", event.code, DCM, event.meaning)
    if record.detail and record.outcome != 0:
        ET.SubElement(ident, "EventOutcomeDescription").text = record.detail

    actor = {"UserID": record.actor_id, "UserIsRequestor": "true"}
    if record.source_address:
        actor["NetworkAccessPointID"] = record.source_address
        actor["NetworkAccessPointTypeCode"] = network_access_point_type(record.source_address)
    active = ET.SubElement(root, "ActiveParticipant", actor)
    if record.actor_role in ROLE_CODES:
        code, meaning = ROLE_CODES[record.actor_role]
        _code(active, "RoleIDCode", code, DCM, meaning)
    ET.SubElement(root, "ActiveParticipant", {"UserID": source_id, "UserIsRequestor": "false"})

    source = {"AuditSourceID": source_id}
    if record.facility:
        source["AuditEnterpriseSiteID"] = record.facility
    src = ET.SubElement(root, "AuditSourceIdentification", source)
    _code(src, "AuditSourceTypeCode", "4", DCM, "Application Server Process")

    if record.patient_id:
        patient = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": record.patient_id,
                "ParticipantObjectTypeCode": "1",  # person
                "ParticipantObjectTypeCodeRole": "1",  # patient
            },
        )
        _code(patient, "ParticipantObjectIDTypeCode", "2", "RFC-3881", "Patient Number")
    if record.study_uid:
        study = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": record.study_uid,
                "ParticipantObjectTypeCode": "2",  # system object
                "ParticipantObjectTypeCodeRole": "3",  # report
            },
        )
        _code(study, "ParticipantObjectIDTypeCode", "110180", DCM, "Study Instance UID")
        if record.detail:
            detail = base64.b64encode(record.detail.encode()).decode()
            ET.SubElement(
                study, "ParticipantObjectDetail", {"type": "telerad-detail", "value": detail}
            )
    return root


def to_xml(record: AuditRecord, source_id: str) -> str:
    """One line of XML with its declaration: a syslog message body or an export line."""
    body = ET.tostring(audit_message(record, source_id), encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>' + body
