"""The audit chain (pure): sealing, verification, and the wire formats."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from telerad.adapters.audit import dicom_xml, fhir, syslog
from telerad.domain.audit import (
    GENESIS,
    Action,
    AuditEvent,
    AuditRecord,
    EventID,
    Outcome,
    chain_hash,
    seal,
    verify,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
STUDY = "1.2.826.0.1.3680043.8.498.1"


def chain(n: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    previous = GENESIS
    for i in range(1, n + 1):
        event = AuditEvent(
            EventID.QUERY if i % 2 else EventID.INSTANCES_ACCESSED,
            actor_id=f"AE{i}",
            actor_role="source",
            source_address="10.0.0.7",
            patient_id=f"PID{i}",
            study_uid=f"{STUDY}.{i}",
            facility="North",
            detail=f"step {i}",
        )
        record = seal(event, i, previous, T0 + timedelta(seconds=i))
        records.append(record)
        previous = record.hash
    return records


def test_hash_is_sha256_of_previous_hash_and_canonical_json() -> None:
    first, second = chain(2)
    canonical = json.loads(first.canonical())
    assert canonical["sequence"] == 1 and canonical["event_id"] == "110112"
    assert canonical["time"] == "2026-01-02T03:04:06.678901Z"
    assert "hash" not in canonical
    assert (
        first.canonical() == json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    )
    assert first.hash == chain_hash(GENESIS, first.canonical())
    assert second.hash == chain_hash(first.hash, second.canonical())
    assert first.hash != second.hash


def test_defaults_action_from_event_and_needs_aware_time() -> None:
    record = seal(AuditEvent(EventID.IMPORT, "AE"), 1, GENESIS, T0)
    assert record.action == Action.CREATE.value and record.outcome == 0
    with pytest.raises(ValueError):
        seal(AuditEvent(EventID.IMPORT, "AE", time=datetime(2026, 1, 1)), 1, GENESIS, T0)


def test_repr_keeps_phi_out() -> None:
    record = chain(1)[0]
    assert "PID1" not in repr(record) and STUDY not in repr(record)


def test_intact_chain_verifies() -> None:
    verdict = verify(chain(50))
    assert verdict.ok and verdict.checked == 50
    assert verify([]).ok


@pytest.mark.parametrize("field", ["outcome", "detail", "patient_id", "actor_id", "time"])
def test_changed_field_is_named(field: str) -> None:
    records = chain(10)
    old = records[6]
    changed = {"outcome": 8, "detail": "x", "patient_id": "OTHER", "actor_id": "EVIL"}
    value = changed.get(field, "2026-01-02T03:04:00.000000Z")
    records[6] = replace(old, **{field: value})
    verdict = verify(records)
    assert not verdict.ok and verdict.bad_sequence == 7 and verdict.checked == 6
    assert "hash does not match" in verdict.reason


def test_rehashed_record_breaks_its_successor() -> None:
    """A forger who also rewrites the changed record's hash is caught at the next one."""
    records = chain(10)
    forged = replace(records[3], detail="forged")
    records[3] = replace(forged, hash=chain_hash(records[2].hash, forged.canonical()))
    verdict = verify(records)
    assert verdict.bad_sequence == 5


def test_deleted_record_is_named() -> None:
    records = chain(10)
    del records[4]
    verdict = verify(records)
    assert verdict.bad_sequence == 6 and "record 5 is missing" in verdict.reason
    records = chain(10)
    del records[2:5]
    assert "records 3..5 are missing" in verify(records).reason


def test_reordered_records_are_named() -> None:
    records = chain(10)
    # Swapped in place, each keeping its own number: the first one out of place is named.
    records[3], records[4] = records[4], records[3]
    verdict = verify(records)
    assert verdict.bad_sequence == 5 and "record 4 is missing" in verdict.reason
    records = chain(10)
    records.insert(2, records[6])
    verdict = verify(records)
    assert verdict.bad_sequence == 7 and "missing" in verdict.reason
    records = chain(10)
    records.insert(5, records[1])
    verdict = verify(records)
    assert verdict.bad_sequence == 2 and "out of order: expected record 6" in verdict.reason
    # Swapped contents with renumbering (what an UPDATE of sequence numbers does).
    records = chain(10)
    a, b = records[3], records[4]
    records[3], records[4] = replace(b, sequence=4), replace(a, sequence=5)
    verdict = verify(records)
    assert verdict.bad_sequence == 4 and "hash does not match" in verdict.reason


def test_verify_from_checkpoint() -> None:
    records = chain(10)
    assert verify(records[5:], start=6, previous=records[4].hash).ok
    assert not verify(records[5:], start=6, previous=GENESIS).ok


def test_dicom_audit_message_has_the_required_elements() -> None:
    record = chain(1)[0]
    root = ET.fromstring(dicom_xml.to_xml(record, "TELERAD").encode())
    assert root.tag == "AuditMessage"
    ident = root.find("EventIdentification")
    assert ident is not None
    assert ident.get("EventActionCode") == "E"
    assert ident.get("EventDateTime") == record.time
    assert ident.get("EventOutcomeIndicator") == "0"
    event_id = ident.find("EventID")
    assert event_id is not None
    assert event_id.attrib == {
        "csd-code": "110112",
        "codeSystemName": "DCM",
        "originalText": "Query",
    }
    participants = root.findall("ActiveParticipant")
    assert [p.get("UserIsRequestor") for p in participants] == ["true", "false"]
    actor = participants[0]
    assert actor.get("UserID") == "AE1"
    assert actor.get("NetworkAccessPointID") == "10.0.0.7"
    assert actor.get("NetworkAccessPointTypeCode") == "2"
    role = actor.find("RoleIDCode")
    assert role is not None and role.get("csd-code") == "110153"
    source = root.find("AuditSourceIdentification")
    assert source is not None
    assert source.get("AuditSourceID") == "TELERAD"
    assert source.get("AuditEnterpriseSiteID") == "North"
    objects = root.findall("ParticipantObjectIdentification")
    assert [o.get("ParticipantObjectTypeCode") for o in objects] == ["1", "2"]
    patient, study = objects
    assert patient.get("ParticipantObjectID") == "PID1"
    assert patient.get("ParticipantObjectTypeCodeRole") == "1"
    assert study.get("ParticipantObjectID") == f"{STUDY}.1"
    id_type = study.find("ParticipantObjectIDTypeCode")
    assert id_type is not None and id_type.get("csd-code") == "110180"
    detail = study.find("ParticipantObjectDetail")
    assert detail is not None
    assert base64.b64decode(detail.get("value", "")) == b"step 1"
    # Element order as the schema's sequence has it.
    assert [c.tag for c in root] == [
        "EventIdentification",
        "ActiveParticipant",
        "ActiveParticipant",
        "AuditSourceIdentification",
        "ParticipantObjectIdentification",
        "ParticipantObjectIdentification",
    ]


def test_dicom_audit_message_escapes_and_omits() -> None:
    event = AuditEvent(
        EventID.USER_AUTHENTICATION,
        actor_id='dr <"o\'neil"> & co',
        actor_is_user=True,
        outcome=Outcome.MINOR_FAILURE,
        source_address="reader-7.example.org",
        detail="bad password",
    )
    record = seal(event, 1, GENESIS, T0)
    text = dicom_xml.to_xml(record, "TELERAD")
    assert "\n" not in text
    root = ET.fromstring(text.encode())
    actor = root.find("ActiveParticipant")
    assert actor is not None and actor.get("UserID") == 'dr <"o\'neil"> & co'
    assert actor.get("NetworkAccessPointTypeCode") == "1"
    assert root.find("ParticipantObjectIdentification") is None
    assert root.findtext("EventIdentification/EventOutcomeDescription") == "bad password"


def test_fhir_audit_event_follows_balp() -> None:
    record = chain(1)[0]
    resource = json.loads(fhir.to_json(record, "TELERAD"))
    assert resource["resourceType"] == "AuditEvent"
    assert resource["type"] == {
        "system": "http://dicom.nema.org/resources/ontology/DCM",
        "code": "110112",
        "display": "Query",
    }
    assert resource["action"] == "E" and resource["outcome"] == "0"
    assert resource["recorded"] == record.time
    requestor = [a for a in resource["agent"] if a["requestor"]]
    assert len(requestor) == 1
    assert requestor[0]["who"]["identifier"]["value"] == "AE1"
    assert requestor[0]["network"] == {"address": "10.0.0.7", "type": "2"}
    assert resource["source"]["observer"]["display"] == "TELERAD"
    assert resource["source"]["site"] == "North"
    patient, study = resource["entity"]
    assert patient["what"]["identifier"]["value"] == "PID1"
    assert patient["role"]["code"] == "1" and patient["type"]["code"] == "1"
    assert study["what"]["identifier"] == {
        "system": "urn:dicom:uid",
        "value": f"urn:oid:{STUDY}.1",
    }


def test_syslog_message_frames_and_parses() -> None:
    records = chain(3)
    stream = b"".join(
        syslog.frame(syslog.message(r, dicom_xml.to_xml(r, "TELERAD"), "archive-1"))
        for r in records
    )
    # Delivered in arbitrary pieces, the frames come out whole and in order.
    found: list[bytes] = []
    rest = b""
    for i in range(0, len(stream), 97):
        got, rest = syslog.unframe(rest + stream[i : i + 97])
        found.extend(got)
    assert rest == b"" and len(found) == 3
    for record, raw in zip(records, found, strict=True):
        msg = syslog.parse(raw)
        assert msg.pri == 85 and msg.version == 1
        assert msg.timestamp == record.time
        assert msg.hostname == "archive-1" and msg.app_name == "telerad"
        assert msg.msgid == "IHE+RFC-3881"
        assert f'seq="{record.sequence}"' in msg.structured_data
        assert f'hash="{record.hash}"' in msg.structured_data
        assert raw[raw.index(b"<?xml") - 3 : raw.index(b"<?xml")] == syslog.BOM
        assert ET.fromstring(msg.msg).tag == "AuditMessage"


def test_syslog_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        syslog.unframe(b"abc <13>1 ...")
    with pytest.raises(ValueError):
        syslog.parse(b"hello world")
    assert syslog.unframe(b"12 <13>1") == ([], b"12 <13>1")
