"""Orders and patient updates over HL7 v2 (MLLP) end to end, with real peers.

Peers: python-hl7's ``mllp_send`` command-line client (from the virtualenv) and
its ``MLLPClient``, against the platform's listener started in process (so the
orders can be read back through ``platform.orders``) and against a live
``telerad serve``. Messages are the RIS-shaped samples of tests/data/hl7.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from tests.conftest import LiveServer, start_server
from tests.unit.test_hl7_orders import drop, sample, set_field

from telerad.adapters.hl7.mllp import MllpServer
from telerad.adapters.hl7.receive import start_mllp
from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.audit import EventID
from telerad.domain.orders import Order, OrderEvent, OrderFilter, OrderStatus
from telerad.services.orders import Origin
from telerad.storage.db.database import make_engine
from telerad.storage.db.index_repository import SqlIndex
from telerad.storage.db.order_repository import SqlOrders
from telerad.workflow.model import Priority

FACILITY = "North Hospital"
MLLP_SEND = Path(sys.executable).parent / "mllp_send"
FS_CR = b"\x1c\r"


# --------------------------------------------------------------------------- peers


def send(port: int, text: str) -> hl7.Message:
    """One message with python-hl7's MLLPClient; the parsed acknowledgement."""
    with MLLPClient("127.0.0.1", port) as client:
        client.socket.settimeout(10)
        raw = client.send_message(text)
    assert raw.startswith(b"\x0b") and raw.endswith(FS_CR), raw[:40]
    return hl7.parse(raw[1:-2].decode())


def mllp_send(port: int, *files: Path) -> list[hl7.Message]:
    """Each file through the ``mllp_send`` command-line client; the acknowledgements."""
    if not MLLP_SEND.exists():
        pytest.fail("mllp_send is not installed in the virtualenv (python-hl7)")
    acks: list[hl7.Message] = []
    for path in files:
        done = subprocess.run(
            [str(MLLP_SEND), "--loose", "--file", str(path), "-p", str(port), "127.0.0.1"],
            capture_output=True,
            timeout=30,
            check=True,
        )
        for block in done.stdout.split(FS_CR):
            block = block.strip(b"\n\x0b")
            if block:
                acks.append(hl7.parse(block.decode()))
    return acks


def msa(ack: hl7.Message) -> tuple[str, str, str]:
    segment = ack.segment("MSA")
    fields = [str(segment(n)) if len(segment) > n else "" for n in (1, 2, 3)]
    return fields[0], fields[1], fields[2]


def err(ack: hl7.Message) -> tuple[str, str, str]:
    """ERR-2 (location), ERR-3.1 (HL7 table 0357 code), ERR-8 (reason), from v2.5."""
    segment = ack.segment("ERR")
    return str(segment(2)), str(segment(3)(1)(1)), str(segment(8))


def err_v23(ack: hl7.Message) -> tuple[str, str]:
    """ERR-1 in 2.3/2.4: (segment^sequence^field, code)."""
    parts = str(ack.segment("ERR")(1)).split("^")
    return "^".join(parts[:3]), parts[3].split("&")[0]


def with_control_id(text: str, control_id: str) -> str:
    return set_field(text, "MSH", 9, control_id)  # MSH-10 is the 10th item, index 9


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def hl7_platform(tmp_path: Path) -> Iterator[Platform]:
    platform = open_platform(Settings(data_dir=tmp_path / "data", fsync=False))
    platform.index.add_facility(FACILITY)
    platform.index.add_facility("South Clinic")
    yield platform
    platform.close()


@pytest.fixture
def listener(hl7_platform: Platform) -> Iterator[MllpServer]:
    server = start_mllp(hl7_platform, port=0)
    yield server
    server.shutdown()


def facility_id(platform: Platform, name: str = FACILITY) -> int:
    facility = platform.index.facility_by_name(name)
    assert facility is not None
    return facility.id


def stored(platform: Platform, accession: str, name: str = FACILITY) -> Order | None:
    return platform.orders.by_accession(facility_id(platform, name), accession)


def count(platform: Platform) -> int:
    return len(platform.orders.find(OrderFilter()))


def written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text.replace("\r", "\n"))
    return path


# --------------------------------------------------------------------------- placing


def test_epic_orm_v2_3_through_mllp_send_is_stored_with_every_field(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    [ack] = mllp_send(listener.port, Path(__file__).parents[1] / "data/hl7/orm_o01_v23.hl7")
    assert msa(ack)[:2] == ("AA", "8734561")
    order = stored(hl7_platform, "NH24031600017")
    assert order is not None
    assert order.patient.patient_id == "E4471188"
    assert order.patient.name == "Testpatient^Bob^Quincy"
    assert (order.patient.birth_date, order.patient.sex) == ("19550923", "M")
    proc = order.procedure
    assert (proc.code, proc.description, proc.modality, proc.body_part) == (
        "70450",
        "CT HEAD WO CONTRAST",
        "CT",
        "HEAD",
    )
    assert (proc.rvu, proc.subspecialty) == (0.85, "neuro")
    assert order.priority is Priority.STROKE
    assert order.reason == "Code stroke, left sided weakness since 13:20"
    assert order.ordering_physician == "Okafor^Chidi^A"
    assert order.status is OrderStatus.SCHEDULED
    assert order.scheduled_at == datetime(2024, 3, 16, 19, 10, tzinfo=UTC)
    assert (order.placer_order_number, order.filler_order_number) == ("41128831", "41128831")
    assert (order.station_ae, order.requested_procedure_id) == ("NHCT1", "RP0017")
    assert order.study_instance_uid == ""
    [entry] = hl7_platform.orders.history(order)
    assert (entry.event, entry.source, entry.detail) == ("placed", "HL7", "HL7 from EPIC")
    placed = [
        r
        for r in hl7_platform.audit.repository.records()
        if r.event is EventID.ORDER_RECORD and "NH24031600017 placed" in r.detail
    ]
    assert len(placed) == 1
    assert placed[0].actor_id == "EPIC" and placed[0].patient_id == "E4471188"
    assert placed[0].facility == FACILITY and placed[0].source_address == "127.0.0.1"


def test_omi_o23_with_ipc_and_orm_v2_5_1_with_zds(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    assert msa(send(listener.port, sample("omi_o23.hl7")))[0] == "AA"
    assert msa(send(listener.port, sample("orm_o01.hl7")))[0] == "AA"
    omi = stored(hl7_platform, "NH24031700107")
    assert omi is not None
    assert omi.requested_study_uid == "1.2.826.0.1.3680043.9.3811.20240317.107"
    assert (omi.station_ae, omi.requested_procedure_id) == ("NHMR2", "RP0107")
    assert omi.scheduled_at == datetime(2024, 3, 18, 7, 30, tzinfo=UTC)
    assert (omi.procedure.modality, omi.priority) == ("MR", Priority.ROUTINE)
    orm = stored(hl7_platform, "ACC20240315-0042")
    assert orm is not None
    assert orm.requested_study_uid == "1.2.826.0.1.3680043.9.3811.20240315.42"
    assert (orm.ordering_physician, orm.priority) == ("Hartmann^Ruth", Priority.STAT)


def test_two_orders_in_one_message_are_both_stored(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    assert msa(send(listener.port, sample("orm_o01_two_orders.hl7")))[0] == "AA"
    for accession in ("NH24031600241", "NH24031600242"):
        order = stored(hl7_platform, accession)
        assert order is not None and order.priority is Priority.TRAUMA


def test_a_resent_new_order_is_one_order(hl7_platform: Platform, listener: MllpServer) -> None:
    text = sample("orm_o01_v23.hl7")
    assert msa(send(listener.port, text))[0] == "AA"
    assert msa(send(listener.port, with_control_id(text, "8734561R")))[:2] == ("AA", "8734561R")
    assert count(hl7_platform) == 1
    order = stored(hl7_platform, "NH24031600017")
    assert order is not None
    assert [e.event for e in hl7_platform.orders.history(order)] == ["placed"]


def test_the_same_accession_at_another_facility_is_another_order(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    text = sample("orm_o01_v23.hl7")
    assert msa(send(listener.port, text))[0] == "AA"
    other = set_field(with_control_id(text, "SOUTH1"), "MSH", 3, "South Clinic")
    assert msa(send(listener.port, other))[0] == "AA"
    assert count(hl7_platform) == 2
    assert stored(hl7_platform, "NH24031600017", "South Clinic") is not None


# --------------------------------------------------------------------------- changes


def test_xo_revises_the_order(hl7_platform: Platform, listener: MllpServer) -> None:
    text = sample("orm_o01_v23.hl7")
    assert msa(send(listener.port, text))[0] == "AA"
    change = with_control_id(set_field(text, "ORC", 1, "XO"), "XO1")
    change = set_field(change, "OBR", 4, "70496^CT ANGIO HEAD^CPT4")
    change = set_field(change, "ORC", 7, "^^^20240316143000-0500^^R")
    change = set_field(change, "OBR", 31, "^Follow-up of known aneurysm")
    ack = send(listener.port, change)
    assert msa(ack)[:2] == ("AA", "XO1")
    order = stored(hl7_platform, "NH24031600017")
    assert order is not None
    assert (order.procedure.code, order.procedure.rvu) == ("70496", 1.75)
    assert order.priority is Priority.ROUTINE
    assert order.reason == "Follow-up of known aneurysm"
    assert order.scheduled_at == datetime(2024, 3, 16, 19, 30, tzinfo=UTC)
    assert [e.event for e in hl7_platform.orders.history(order)] == ["placed", "revised"]


def test_a_change_for_an_unknown_accession_is_an_unknown_key(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    change = set_field(sample("orm_o01_v23.hl7"), "ORC", 1, "XO")
    ack = send(listener.port, change)
    code, _, text = msa(ack)
    assert code == "AE" and "NH24031600017" in text
    assert err_v23(ack) == ("OBR^1^18", "204")
    assert count(hl7_platform) == 0


def test_ca_cancels_and_a_resent_ca_changes_nothing(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    text = sample("orm_o01_v23.hl7")
    assert msa(send(listener.port, text))[0] == "AA"
    cancel = set_field(with_control_id(text, "CA1"), "ORC", 1, "CA")
    cancel = set_field(cancel, "ORC", 16, "DUP^Duplicate order^L")
    assert msa(send(listener.port, cancel))[:2] == ("AA", "CA1")
    order = stored(hl7_platform, "NH24031600017")
    assert order is not None and order.status is OrderStatus.CANCELLED
    history = hl7_platform.orders.history(order)
    assert history[-1].event == "cancelled" and "Duplicate order" in history[-1].detail
    assert msa(send(listener.port, with_control_id(cancel, "CA2")))[:2] == ("AA", "CA2")
    assert len(hl7_platform.orders.history(order)) == len(history)
    # A cancelled order is not revived by a change.
    change = set_field(with_control_id(text, "XO9"), "ORC", 1, "XO")
    ack = send(listener.port, change)
    assert msa(ack)[0] == "AE" and err_v23(ack) == ("ORC^1^1", "207")


def test_cancelling_a_performed_order_is_refused_and_changes_nothing(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    text = sample("omi_o23.hl7")
    assert msa(send(listener.port, text))[0] == "AA"
    order = stored(hl7_platform, "NH24031700107")
    assert order is not None
    performed = hl7_platform.orders.step(
        order, OrderEvent.COMPLETE, Origin("MPPS", "NHMR2"), "COMPLETED"
    )
    cancel = set_field(with_control_id(text, "CA7"), "ORC", 1, "CA")
    ack = send(listener.port, cancel)
    code, acked, reason = msa(ack)
    assert (code, acked) == ("AE", "CA7")
    assert "performed" in reason and "cancel" in reason
    location, error, full = err(ack)
    assert (location, error) == ("ORC^1^1", "207")
    assert "an order that is performed cannot cancel" in full
    assert stored(hl7_platform, "NH24031700107") == performed


# --------------------------------------------------------------------------- all or nothing


def test_a_bad_second_order_stores_neither(hl7_platform: Platform, listener: MllpServer) -> None:
    good = sample("orm_o01_two_orders.hl7")
    bad = set_field(good, "TQ1", 7, "20240316256000-0500", occurrence=2)
    ack = send(listener.port, bad)
    assert msa(ack)[0] == "AE"
    location, error, reason = err(ack)
    assert (location, error) == ("TQ1^2^7^1^1", "102") and reason.startswith("TQ1[2]-7.1")
    assert count(hl7_platform) == 0
    # The second group changing an order that does not exist: the first is not placed either.
    unknown = set_field(good, "ORC", 1, "XO", occurrence=2)
    ack = send(listener.port, unknown)
    assert msa(ack)[0] == "AE" and err(ack)[:2] == ("OBR^2^18^1^1", "204")
    assert count(hl7_platform) == 0
    assert msa(send(listener.port, good))[0] == "AA"
    assert count(hl7_platform) == 2


# --------------------------------------------------------------------------- ADT


def test_a08_updates_the_patient_on_their_orders(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    assert msa(send(listener.port, sample("orm_o01.hl7")))[0] == "AA"
    ack = send(listener.port, sample("adt_a08.hl7"))
    assert msa(ack)[:2] == ("AA", "NH20240315101500011")
    order = stored(hl7_platform, "ACC20240315-0042")
    assert order is not None
    assert order.patient.name == "Testpatient-Jones^Alice^Marie"
    assert order.patient.birth_date == "19680421"
    assert [e.event for e in hl7_platform.orders.history(order)][-1] == "patient updated"
    events = [r.event for r in hl7_platform.audit.repository.records()]
    assert EventID.PATIENT_RECORD in events


def test_a40_merges_the_prior_identifiers_orders(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    temporary = set_field(sample("orm_o01.hl7"), "PID", 3, "MRN9000111^^^NH^MR")
    temporary = set_field(temporary, "PID", 5, "Unknown^Female")
    assert msa(send(listener.port, temporary))[0] == "AA"
    ack = send(listener.port, sample("adt_a40.hl7"))
    assert msa(ack)[:2] == ("AA", "NH20240318160203002")
    order = stored(hl7_platform, "ACC20240315-0042")
    assert order is not None
    assert order.patient.patient_id == "MRN4471923"
    assert order.patient.name == "Testpatient^Alice^M"
    assert hl7_platform.orders.find(OrderFilter(patient_id="MRN9000111")) == []


def test_other_adt_events_are_acknowledged_and_change_nothing(
    hl7_platform: Platform, listener: MllpServer
) -> None:
    assert msa(send(listener.port, sample("orm_o01.hl7")))[0] == "AA"
    before = stored(hl7_platform, "ACC20240315-0042")
    transfer = set_field(sample("adt_a08.hl7"), "MSH", 8, "ADT^A02^ADT_A02")
    assert msa(send(listener.port, transfer))[0] == "AA"
    assert stored(hl7_platform, "ACC20240315-0042") == before


# --------------------------------------------------------------------------- bad input

GOOD = sample("orm_o01_v23.hl7")
BAD: dict[str, tuple[str, str, str, str]] = {
    # case: (message, MSA-1, ERR code, ERR location: ERR-1 components in v2.3)
    "missing ORC": (drop(GOOD, "ORC"), "AE", "100", "ORC^1^"),
    "no PID-3": (set_field(GOOD, "PID", 3, ""), "AE", "101", "PID^1^3"),
    "bad birth date": (set_field(GOOD, "PID", 7, "19551341"), "AE", "102", "PID^1^7"),
    "bad schedule": (set_field(GOOD, "ORC", 7, "^^^20240316141^^S"), "AE", "102", "ORC^1^7"),
    "accession over 16": (
        set_field(GOOD, "OBR", 18, "NH2403160001712345"),
        "AE",
        "102",
        "OBR^1^18",
    ),
    "unsupported order control": (set_field(GOOD, "ORC", 1, "RE"), "AE", "103", "ORC^1^1"),
    "A40 without MRG": (drop(sample("adt_a40.hl7"), "MRG"), "AE", "101", "MRG^1^1"),
    "wrong version": (set_field(GOOD, "MSH", 11, "2.1"), "AR", "203", "^^"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_messages_are_refused_naming_the_field_and_the_listener_serves_on(
    hl7_platform: Platform, listener: MllpServer, case: str
) -> None:
    text, code, error, location = BAD[case]
    ack = send(listener.port, text)
    assert msa(ack)[0] == code
    assert msa(ack)[2], "a reason in MSA-3"
    version = str(hl7.parse(text).segment("MSH")(12))
    if version.startswith("2.3"):
        assert err_v23(ack) == (location, error)
    else:
        erl, got, reason = err(ack)
        assert got == error and erl == location.rstrip("^") and reason
    assert count(hl7_platform) == 0
    assert msa(send(listener.port, with_control_id(GOOD, "AFTER")))[:2] == ("AA", "AFTER")
    assert count(hl7_platform) == 1


def test_garbage_then_a_good_message(hl7_platform: Platform, listener: MllpServer) -> None:
    msh = GOOD.split("\r")[0]
    ack = send(listener.port, msh + "\r\x00\x01garbage|||")
    assert msa(ack)[0] == "AR" and str(ack.segment("ERR")(1)).endswith(
        "100&Segment sequence error&HL70357"
    )
    assert msa(send(listener.port, GOOD))[0] == "AA"


def test_no_phi_in_the_log(
    hl7_platform: Platform, listener: MllpServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for text in (
            GOOD,
            set_field(GOOD, "PID", 7, "19551341"),
            set_field(GOOD, "ORC", 1, "CA"),
            sample("adt_a08.hl7"),
            set_field(GOOD, "MSH", 3, "Nowhere"),
        ):
            send(listener.port, text)
    assert "8734561" in caplog.text  # the control ID is what the log names
    for phi in ("Testpatient", "E4471188", "MRN4471923", "19550923", "NH24031600017", "Okafor"):
        assert phi not in caplog.text


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_every_sample_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    platform = open_platform(Settings(data_dir=tmp_path / "data", database_url=pg_url, fsync=False))
    platform.index.add_facility(FACILITY)
    server = start_mllp(platform, port=0)
    try:
        names = ("orm_o01.hl7", "orm_o01_v23.hl7", "orm_o01_two_orders.hl7", "omi_o23.hl7")
        for name in names:
            assert msa(send(server.port, sample(name)))[0] == "AA", name
        assert msa(send(server.port, sample("adt_a08.hl7")))[0] == "AA"
        assert count(platform) == 5
        order = stored(platform, "ACC20240315-0042")
        assert order is not None and order.patient.birth_date == "19680421"
        assert order.scheduled_at == datetime(2024, 3, 15, 9, 0, tzinfo=UTC)
    finally:
        server.shutdown()
        platform.close()


# --------------------------------------------------------------------------- telerad serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("hl7-orders") / "data"
    data_dir.mkdir()
    live = start_server(data_dir)
    try:
        added = live.telerad("facility", "add", FACILITY)
        assert added.returncode == 0, added.stderr
        yield live
    finally:
        live.process.terminate()
        live.process.wait(10)


def test_telerad_serve_takes_orders_from_mllp_send(served: LiveServer, tmp_path: Path) -> None:
    port = int(served.env["TELERAD_MLLP_PORT"])
    data = Path(__file__).parents[1] / "data" / "hl7"
    cancel = set_field(with_control_id(sample("omi_o23.hl7"), "CA-OMI"), "ORC", 1, "CA")
    acks = mllp_send(
        port,
        data / "orm_o01_two_orders.hl7",
        data / "omi_o23.hl7",
        written(tmp_path, "cancel.hl7", cancel),
        written(tmp_path, "bad.hl7", set_field(GOOD, "PID", 3, "")),
    )
    assert [msa(a)[:2] for a in acks] == [
        ("AA", "Q4402918773T5501"),
        ("AA", "NH20240317091500003"),
        ("AA", "CA-OMI"),
        ("AE", "8734561"),
    ]
    engine = make_engine(f"sqlite:///{(served.data_dir / 'index.sqlite').resolve()}")
    try:
        facility = SqlIndex(engine).facility_by_name(FACILITY)
        assert facility is not None
        orders = SqlOrders(engine)
        first = orders.by_accession(facility.id, "NH24031600241")
        assert first is not None and first.priority is Priority.TRAUMA
        omi = orders.by_accession(facility.id, "NH24031700107")
        assert omi is not None and omi.status is OrderStatus.CANCELLED
        assert orders.by_accession(facility.id, "NH24031600017") is None
        assert first.station_ae == "NHCT2"
    finally:
        engine.dispose()
