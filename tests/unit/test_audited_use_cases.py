"""The services write the audit records the edges used to (issue 10, part 4), over the
fakes: studies searched, located, retrieved and received within the caller's scope; HL7
messages admitted or refused; the modality worklist; order lookups and searches; the
reconciliation queue listed and released; associations refused; the trail exported."""

from __future__ import annotations

from datetime import UTC

import pytest
from tests.fakes.instances import blob, header
from tests.fakes.world import World, world

from telerad.domain.audit import Action, AuditRecord, EventID, Outcome
from telerad.domain.identity import Permission, Principal, Role
from telerad.domain.model import Facility, Level
from telerad.domain.mwl_query import Key
from telerad.domain.orders import Order, OrderFilter, PatientDemographics
from telerad.domain.query import Exact, Query, QueryError
from telerad.services.access_audit import Actor
from telerad.services.admission import Admission, Peer
from telerad.services.messages import Messages, Sent
from telerad.services.mwl import ModalityWorklist
from telerad.services.orders import Origin
from telerad.services.studies import NotFound, Scope
from telerad.synthetic import StudySpec, ct_series, to_bytes
from telerad.workflow.model import Priority

ANA = Actor("ana", "facility-user", True, "10.0.0.7")
PEER = Actor("NORTHCT", "dicom-peer", False, "10.0.0.5")


class Injected(RuntimeError):
    pass


def _trail(w: World) -> list[AuditRecord]:
    return list(w.stores.audit.records())


def _two_facilities(w: World) -> tuple[Facility, Facility]:
    """North with study 1.1 (two series), South with study 2.1."""
    index = w.stores.index
    north, south = index.add_facility("North"), index.add_facility("South")
    for fid, study, series in ((north.id, "1.1", "1.1.1"), (north.id, "1.1", "1.1.2")):
        assert index.add_instance(fid, header(study, series, series + ".1"), blob(series, fid))
    assert index.add_instance(south.id, header("2.1", "2.1.1", "2.1.1.1"), blob("2.1", south.id))
    return north, south


def test_a_search_runs_within_the_caller_s_scope_and_is_audited() -> None:
    w = world()
    north, _ = _two_facilities(w)
    everything = Query(Level.STUDY, facility_ids=None)  # whatever scope the query carries
    rows = w.studies.search(ANA, Scope(frozenset({north.id})), everything, "QIDO-RS /studies ?")
    assert [r["StudyInstanceUID"] for r in rows] == ["1.1"]
    granted = Scope(frozenset({north.id}), frozenset({"2.1"}))  # break-glass
    rows = w.studies.search(ANA, granted, everything, "QIDO-RS /studies ?again")
    assert sorted(str(r["StudyInstanceUID"]) for r in rows) == ["1.1", "2.1"]
    assert [(r.event_id, r.actor_id, r.source_address, r.detail) for r in _trail(w)] == [
        (EventID.QUERY.code, "ana", "10.0.0.7", "QIDO-RS /studies ?"),
        (EventID.QUERY.code, "ana", "10.0.0.7", "QIDO-RS /studies ?again"),
    ]
    bad = Query(Level.STUDY, matches={"SOPInstanceUID": Exact("1.2")})
    with pytest.raises(QueryError, match="cannot be matched"):
        w.studies.search(ANA, Scope(), bad, "QIDO-RS /studies ?SOPInstanceUID=1.2")
    assert len(_trail(w)) == 2  # a query that makes no sense is not audited


def test_a_study_outside_the_scope_does_not_exist_and_the_refusal_is_audited() -> None:
    w = world()
    north, south = _two_facilities(w)
    scope = Scope(frozenset({north.id}))
    assert len(w.studies.locate(ANA, scope, "1.1")) == 2
    assert [loc.sop_instance_uid for loc in w.studies.locate(ANA, scope, "1.1", "1.1.2")] == [
        "1.1.2.1"
    ]
    with pytest.raises(NotFound) as theirs:
        w.studies.locate(ANA, scope, "2.1")
    with pytest.raises(NotFound) as nobody_s:
        w.studies.locate(ANA, scope, "9.9")
    assert str(theirs.value).replace("2.1", "X") == str(nobody_s.value).replace("9.9", "X")
    with pytest.raises(NotFound, match="is not a valid UID"):
        w.studies.within(scope, "not a uid")
    records = [(r.event_id, r.outcome, r.study_uid, r.facility) for r in _trail(w)]
    accessed = EventID.INSTANCES_ACCESSED.code
    assert records == [
        (accessed, Outcome.SUCCESS.value, "1.1", "North"),
        (accessed, Outcome.MINOR_FAILURE.value, "2.1", ""),
        (accessed, Outcome.MINOR_FAILURE.value, "9.9", ""),
    ]  # the second series of 1.1: the same access, folded into the first record
    assert south.id not in {loc.facility_id for loc in w.studies.within(Scope(), "1.1")}


def test_a_retrieve_audits_each_study_it_sends() -> None:
    w = world()
    north, _ = _two_facilities(w)
    found = w.studies.retrieve(PEER, Scope(frozenset({north.id})), Level.STUDY, ["1.1", "2.1"])
    assert {loc.study_instance_uid for loc in found} == {"1.1"}
    only = w.studies.retrieve(
        PEER, Scope(), Level.SERIES, ["1.1.1", "1.1.2"], series=frozenset({"1.1.2"})
    )
    assert [loc.series_instance_uid for loc in only] == ["1.1.2"]
    assert [(r.event_id, r.actor_id, r.study_uid) for r in _trail(w)] == [
        (EventID.INSTANCES_TRANSFERRED.code, "NORTHCT", "1.1")
    ]


def test_instances_received_are_audited_once_per_study() -> None:
    w = world()
    fid = w.stores.index.add_facility("North").id
    spec = StudySpec(accession="A1")
    first, second = (to_bytes(ds) for ds in ct_series(spec, slices=2, rows=8, cols=8))
    assert w.studies.receive(PEER, fid, first).ok
    assert all(
        not isinstance(r, Exception) and r.ok for r in w.studies.receive_batch(ANA, fid, [second])
    )
    assert w.studies.receive(PEER, fid, b"not DICOM").ok is False
    assert [(r.actor_id, r.event_id, r.study_uid, r.facility) for r in _trail(w)] == [
        ("NORTHCT", EventID.INSTANCES_TRANSFERRED.code, spec.study_uid, "North"),
        ("ana", EventID.INSTANCES_TRANSFERRED.code, spec.study_uid, "North"),
    ]


def _messages(w: World) -> tuple[Messages, Facility]:
    north = w.stores.index.add_facility("North", host="10.0.0.5")
    admission = Admission(
        w.stores.index,
        lambda: north,
        lambda: True,
        lambda host, pin, address, cert: not host or host == address,
        audit=w.audit,
    )
    return Messages(admission, w.audit), north


def _sent(facility: str, address: str = "10.0.0.5", adt: bool = False) -> Sent:
    kind = "ADT^A08" if adt else "ORM^O01"
    return Sent(facility, "EPIC", address, None, kind, "CTRL1", adt, tls=True)


class _Answer:
    def __init__(self, code: str) -> None:
        self.code, self.accepted = code, code == "AA"


def test_hl7_messages_are_admitted_and_their_receipts_audited() -> None:
    w = world()
    messages, north = _messages(w)
    assert messages.receive(_sent("Nowhere"), lambda f: _Answer("AA")) is None
    assert messages.receive(_sent("North", "10.9.9.9"), lambda f: _Answer("AA")) is None
    answered = messages.receive(_sent("North"), lambda f: _Answer("AA" if f == north else "AE"))
    assert answered is not None and answered.code == "AA"
    assert messages.receive(_sent("North", adt=True), lambda f: _Answer("AE 207")) is not None

    def fails(facility: Facility) -> _Answer:
        raise Injected

    with pytest.raises(Injected):
        messages.receive(_sent("North"), fails)
    records = [(r.event_id, r.outcome, r.facility, r.detail) for r in _trail(w)]
    alert = "HL7 ORM^O01 over MLLP over TLS for an unknown facility"
    assert records == [
        (EventID.SECURITY_ALERT.code, Outcome.MINOR_FAILURE.value, "", alert),
        (EventID.SECURITY_ALERT.code, Outcome.MINOR_FAILURE.value, "", alert),
        (
            EventID.ORDER_RECORD.code,
            Outcome.SUCCESS.value,
            "North",
            "HL7 ORM^O01 CTRL1 received over MLLP over TLS: AA",
        ),
        (
            EventID.PATIENT_RECORD.code,
            Outcome.MINOR_FAILURE.value,
            "North",
            "HL7 ADT^A08 CTRL1 received over MLLP over TLS: AE 207",
        ),
        (
            EventID.ORDER_RECORD.code,
            Outcome.MINOR_FAILURE.value,
            "North",
            "HL7 ORM^O01 CTRL1 received over MLLP over TLS: failed",
        ),
    ]


def test_a_refused_association_is_a_security_alert() -> None:
    w = world()
    messages, _ = _messages(w)
    admission = messages.admission
    assert admission.association("STRANGER", "10.0.0.5", None) is None
    assert admission.association("NORTHCT", "10.0.0.5", None) is None  # North has no AE title
    broken = Admission(
        w.stores.index, lambda: (_ for _ in ()).throw(Injected()), lambda: False, lambda *a: True,
        audit=w.audit,
    )  # fmt: skip
    assert broken.association("ANY", "127.0.0.1", None) is None  # refused rather than guessed
    records = [(r.event_id, r.actor_id, r.source_address) for r in _trail(w)]
    assert records == [
        (EventID.SECURITY_ALERT.code, "STRANGER", "10.0.0.5"),
        (EventID.SECURITY_ALERT.code, "NORTHCT", "10.0.0.5"),
        (EventID.SECURITY_ALERT.code, "ANY", "127.0.0.1"),
    ]


def test_the_modality_worklist_audits_every_query_and_gives_a_hub_nothing() -> None:
    w = world()
    fid = w.stores.index.add_facility("North").id
    procedure = w.orders.catalogue.resolve("71250")
    order = Order(fid, "ACC1", PatientDemographics("P1"), procedure)
    w.orders.place(order, Origin("HL7", "RIS"))
    mwl = ModalityWorklist(w.orders, w.access)
    keys = (Key(0x00080050, "SH", "AccessionNumber", Exact("ACC1")),)
    hub = Peer("HUB", fid, None)
    assert list(mwl.items(PEER, hub, keys, UTC)) == []
    queries = [r.detail for r in _trail(w) if r.event_id == EventID.QUERY.code]
    assert queries == ["C-FIND MWL AccessionNumber=Exact(value='ACC1')"]


def test_order_lookups_and_searches_are_audited_as_each_edge_words_them() -> None:
    w = world()
    fid = w.stores.index.add_facility("North").id
    procedure = w.orders.catalogue.resolve("71250")
    placed = w.orders.place(
        Order(fid, "ACC1", PatientDemographics("P1"), procedure), Origin("REST", "x")
    )
    assert w.orders.lookup(ANA, str(placed.id), frozenset({fid})) == placed
    assert w.orders.lookup(ANA, str(placed.id), frozenset({fid + 1})) is None
    assert w.orders.lookup(ANA, "abc", None, "FHIR") is None
    mine = OrderFilter(facility_ids=frozenset({fid}))
    assert len(w.orders.search(ANA, mine, "REST", "")) == 1
    assert (
        w.orders.search(
            ANA, OrderFilter(accession_number="NONE"), "REST", "accession=NONE", one=True
        )
        == []
    )
    assert len(w.orders.search(ANA, mine, "FHIR", "status=active", shown=0)) == 1
    w.orders.search(Actor("root", source="cli"), mine, "CLI")
    queries = [(r.outcome, r.detail) for r in _trail(w) if r.event_id == EventID.QUERY.code]
    assert queries == [
        (Outcome.MINOR_FAILURE.value, f"order {placed.id}"),
        (Outcome.MINOR_FAILURE.value, "FHIR ServiceRequest/abc"),
        (Outcome.SUCCESS.value, "orders (1 found): all"),
        (Outcome.MINOR_FAILURE.value, "order by accession: accession=NONE"),
        (Outcome.SUCCESS.value, "FHIR ServiceRequest (0 found): status=active"),
        (Outcome.SUCCESS.value, "orders (1 found) from the command line"),
    ]


def test_the_reconciliation_queue_listed_and_a_release_are_audited() -> None:
    w = world()
    fid = w.stores.index.add_facility("North").id
    for n in (1, 2):
        h = header("1.1", "1.1.1", f"1.1.1.{n}", InstanceNumber=n, AccessionNumber="")
        assert w.stores.index.add_instance(fid, h, blob(f"1.1.1.{n}", fid))
    w.clock.after(minutes=3)
    w.reconciler.run()
    assert w.reconciler.waiting(None) != []
    assert _trail(w) == []  # without a person, nothing to audit
    assert [s.study_uid for s in w.reconciler.waiting(frozenset({fid}), ANA)] == ["1.1"]
    w.reconciler.release("1.1", Priority.URGENT, ANA)
    records = [(r.event_id, r.action, r.study_uid, r.detail) for r in _trail(w)]
    assert records == [
        (EventID.QUERY.code, Action.EXECUTE.value, "", "reconciliation queue listed (1 studies)"),
        (
            EventID.PROCEDURE_RECORD.code,
            Action.UPDATE.value,
            "1.1",
            "released to reading as urgent",
        ),
    ]


def test_exporting_the_trail_is_itself_audited_once_it_was_all_handed_over() -> None:
    w = world()
    w.audit.record(EventID.QUERY, "x", detail="one")
    w.audit.record(EventID.QUERY, "x", detail="two")
    reader = Actor("auditor")
    lines = list(w.audit.export(lambda r: r.detail, by=reader, format_name="fhir", since_asked=""))
    assert lines == ["one", "two"]
    partial = w.audit.export(lambda r: r.detail, by=reader, format_name="dicom")
    assert next(partial) == "one"
    partial.close()  # the reader stopped: not all of it was read
    used = [r for r in _trail(w) if r.event_id == EventID.AUDIT_LOG_USED.code]
    assert [(r.actor_id, r.actor_is_user, r.detail) for r in used] == [
        ("auditor", True, "export format=fhir since=- records=2")
    ]


def test_scope_of_a_principal_and_narrowed_to_one_facility() -> None:
    who = Principal("ana", Role.RADIOLOGIST, frozenset({1, 2}), frozenset({Permission.READ}),
                    break_glass=frozenset({"9.9"}))  # fmt: skip
    scope = Scope.of(who)
    assert scope.sees(1) and scope.sees(3, "9.9") and not scope.sees(3, "1.1")
    assert scope.only(2) == Scope(frozenset({2}))
    assert scope.only(3) == Scope(frozenset())  # not seen: nothing, grants left out
    assert Scope.of_peer(Peer("HUB", 1, None)) == Scope(None)
