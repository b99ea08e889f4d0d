"""Reading ORM^O01, OMI^O23 and ADT messages into commands (adapters.hl7.orders), and ERR.

The fixtures in tests/data/hl7 are shaped like real RIS traffic: an Epic-style
ORM^O01 v2.3 (stroke CT, ORC-7 timing, offsets), a Cerner-style ORM^O01 v2.5.1
with two orders and TQ1, the North Hospital ORM^O01 v2.5.1 with ZDS, an OMI^O23
v2.5.1 with two IPC steps, an ADT^A08 and an ADT^A40 with MRG. Every error case
changes one field of a good message, and the good message is read too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import hl7
import pytest

from telerad.adapters.hl7.ack import ErrorCode, ErrorLocation, Verdict, build_ack, read_header
from telerad.adapters.hl7.orders import (
    Hl7Error,
    OrderAction,
    OrderCommand,
    PatientMerge,
    PatientUpdate,
    parse_timestamp,
    read_orders,
    read_patients,
)
from telerad.domain.orders import OrderStatus
from telerad.domain.procedures import load_catalogue
from telerad.workflow.model import Priority

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
CATALOGUE = load_catalogue()


def sample(name: str) -> str:
    return (DATA / name).read_text().strip().replace("\n", "\r")


def set_field(text: str, segment: str, field: int, value: str, occurrence: int = 1) -> str:
    """``text`` with field ``field`` of the ``occurrence``-th ``segment`` set to ``value``."""
    lines, seen = text.split("\r"), 0
    for i, line in enumerate(lines):
        if line.startswith(segment + "|"):
            seen += 1
            if seen == occurrence:
                fields = line.split("|")
                fields += [""] * (field + 1 - len(fields))
                fields[field] = value
                lines[i] = "|".join(fields)
                return "\r".join(lines)
    raise AssertionError(f"no {segment} #{occurrence}")


def drop(text: str, segment: str) -> str:
    return "\r".join(line for line in text.split("\r") if not line.startswith(segment + "|"))


def orders(text: str, facility_id: int = 7) -> list[OrderCommand]:
    return read_orders(text, read_header(text).message_code, facility_id, CATALOGUE)


def failure(text: str) -> Hl7Error:
    with pytest.raises(Hl7Error) as caught:
        orders(text)
    return caught.value


# --------------------------------------------------------------------------- good messages


def test_epic_style_orm_v2_3() -> None:
    [command] = orders(sample("orm_o01_v23.hl7"))
    order = command.order
    assert command.action is OrderAction.PLACE and command.control == "NW"
    assert command.key == ErrorLocation("OBR", 1, 18, 1)
    assert order.facility_id == 7
    assert order.accession_number == "NH24031600017"
    assert order.patient.patient_id == "E4471188"  # the first PID-3 repetition, not the SSN
    assert order.patient.name == "Testpatient^Bob^Quincy"
    assert (order.patient.birth_date, order.patient.sex) == ("19550923", "M")
    assert (order.placer_order_number, order.filler_order_number) == ("41128831", "41128831")
    proc = order.procedure
    assert (proc.code, proc.modality, proc.body_part, proc.subspecialty) == (
        "70450",
        "CT",
        "HEAD",
        "neuro",
    )
    assert proc.rvu == 0.85 and proc.description == "CT HEAD WO CONTRAST"
    # ORC-7.6 S (STAT) with a reason that says stroke: the stroke tier.
    assert order.reason == "Code stroke, left sided weakness since 13:20"
    assert order.priority is Priority.STROKE
    assert order.ordering_physician == "Okafor^Chidi^A"  # ORC-12
    # ORC-7.4 with its -0500 offset, in UTC; it carries a schedule, so: scheduled.
    assert order.scheduled_at == datetime(2024, 3, 16, 19, 10, tzinfo=UTC)
    assert order.status is OrderStatus.SCHEDULED
    assert (order.station_ae, order.requested_procedure_id) == ("NHCT1", "RP0017")
    assert order.requested_study_uid == "" and order.study_instance_uid == ""


def test_north_hospital_orm_v2_5_1_with_zds() -> None:
    [command] = orders(sample("orm_o01.hl7"))
    order = command.order
    assert order.accession_number == "ACC20240315-0042"
    assert order.requested_study_uid == "1.2.826.0.1.3680043.9.3811.20240315.42"
    assert order.ordering_physician == "Hartmann^Ruth"  # ORC-12 empty: OBR-16
    assert order.priority is Priority.STAT  # "Chest pain": no lift
    assert order.reason == "Chest pain, unspecified"
    # An unknown code keeps the order's words and takes the modality's RVU (OBR-24 CT).
    assert (order.procedure.code, order.procedure.modality, order.procedure.rvu) == (
        "71260",
        "CT",
        1.2,
    )
    assert order.procedure.coding_scheme == "CPT4"
    assert order.scheduled_at == datetime(2024, 3, 15, 9, 0, tzinfo=UTC)  # no offset: UTC


def test_cerner_style_orm_with_two_orders_and_tq1() -> None:
    first, second = orders(sample("orm_o01_two_orders.hl7"))
    assert [c.order.accession_number for c in (first, second)] == [
        "NH24031600241",
        "NH24031600242",
    ]
    assert second.key == ErrorLocation("OBR", 2, 18, 1)
    assert first.order.patient == second.order.patient
    assert first.order.scheduled_at == datetime(2024, 3, 17, 2, 20, tzinfo=UTC)  # TQ1-7
    assert second.order.scheduled_at == datetime(2024, 3, 17, 2, 25, tzinfo=UTC)
    assert {c.order.priority for c in (first, second)} == {Priority.TRAUMA}  # TQ1-9 S + trauma
    assert second.order.procedure.subspecialty == "body"
    assert first.order.filler_order_number == "NH24031600241"
    assert first.order.ordering_physician == "Ibsen^Karl"


def test_omi_o23_reads_the_first_ipc() -> None:
    [command] = orders(sample("omi_o23.hl7"))
    order = command.order
    assert command.key == ErrorLocation("IPC", 1, 1, 1)
    assert order.accession_number == "NH24031700107"
    assert order.requested_procedure_id == "RP0107"
    assert order.requested_study_uid == "1.2.826.0.1.3680043.9.3811.20240317.107"
    assert order.station_ae == "NHMR2"  # IPC-9 of the first step
    assert order.procedure.modality == "MR"
    assert order.priority is Priority.ROUTINE  # TQ1-9 R
    assert order.scheduled_at == datetime(2024, 3, 18, 7, 30, tzinfo=UTC)  # +0100
    assert order.ordering_physician == "Novak^Peter"


# --------------------------------------------------------------------------- precedence


def test_ipc_1_wins_over_obr_18_and_obr_18_over_obr_3() -> None:
    omi = set_field(sample("omi_o23.hl7"), "OBR", 18, "OBR18ACC")
    assert orders(omi)[0].order.accession_number == "NH24031700107"
    orm = sample("orm_o01_v23.hl7")
    assert orders(set_field(orm, "OBR", 18, ""))[0].order.accession_number == "41128831"
    assert orders(set_field(orm, "OBR", 18, ""))[0].key == ErrorLocation("OBR", 1, 3, 1)


def test_priority_precedence_tq1_then_orc_7_then_obr_5() -> None:
    base = sample("orm_o01_two_orders.hl7")
    routine = set_field(base, "TQ1", 9, "R")
    assert orders(routine)[0].order.priority is Priority.ROUTINE
    assert orders(routine)[1].order.priority is Priority.TRAUMA  # its own TQ1 still says S
    v23 = sample("orm_o01_v23.hl7")
    no_orc7 = set_field(set_field(v23, "ORC", 7, ""), "OBR", 27, "")
    assert orders(no_orc7)[0].order.priority is Priority.ROUTINE
    assert orders(set_field(no_orc7, "OBR", 5, "A"))[0].order.priority is Priority.STROKE
    # A routine order whose reason says stroke stays routine.
    assert orders(set_field(no_orc7, "OBR", 5, "R"))[0].order.priority is Priority.ROUTINE


def test_schedule_precedence_and_no_schedule_means_ordered() -> None:
    v23 = sample("orm_o01_v23.hl7")
    no_orc7 = set_field(v23, "ORC", 7, "")
    # OBR-27.4 next, then OBR-36.
    assert orders(no_orc7)[0].order.scheduled_at == datetime(2024, 3, 16, 19, 10, tzinfo=UTC)
    only_36 = set_field(set_field(no_orc7, "OBR", 27, ""), "OBR", 36, "202403161500+0000")
    assert orders(only_36)[0].order.scheduled_at == datetime(2024, 3, 16, 15, 0, tzinfo=UTC)
    none = set_field(only_36, "OBR", 36, "")
    assert orders(none)[0].order.scheduled_at is None
    assert orders(none)[0].order.status is OrderStatus.ORDERED


def test_physician_from_obr_16_when_orc_12_is_empty_and_names_are_pn() -> None:
    text = set_field(sample("orm_o01_v23.hl7"), "ORC", 12, "")
    text = set_field(text, "OBR", 16, "77^O\\S\\Brien&&&&&^Mary Ann^^^Dr")
    assert orders(text)[0].order.ordering_physician == "O Brien^Mary Ann"
    pid = set_field(sample("orm_o01_v23.hl7"), "PID", 5, "Smith\\T\\Jones^Ann")
    assert orders(pid)[0].order.patient.name == "Smith&Jones^Ann"


def test_obr_24_section_codes_map_to_dicom_modalities() -> None:
    text = set_field(sample("orm_o01.hl7"), "OBR", 24, "NMR")
    assert orders(text)[0].order.procedure.modality == "MR"
    text = set_field(sample("orm_o01.hl7"), "OBR", 24, "ZZ")
    assert orders(text)[0].order.procedure.modality == ""


@pytest.mark.parametrize(
    ("control", "action"),
    [("NW", "place"), ("XO", "revise"), ("SC", "revise"), ("CA", "cancel"), ("DC", "cancel")],
)
def test_order_controls(control: str, action: str) -> None:
    text = set_field(sample("orm_o01_v23.hl7"), "ORC", 1, control)
    text = set_field(text, "ORC", 16, "DUP^Duplicate order")
    [command] = orders(text)
    assert command.action.value == action and command.control == control
    assert command.cancel_reason == "Duplicate order"


# --------------------------------------------------------------------------- errors


def _check(error: Hl7Error, code: ErrorCode, where: str, *words: str) -> None:
    assert error.error is code, error.reason
    assert str(error.location) == where
    assert error.reason.startswith(where) or where in error.reason
    for word in words:
        assert word in error.reason


def test_missing_orc_obr_pid_and_ipc_are_segment_errors() -> None:
    orm = sample("orm_o01_v23.hl7")
    _check(failure(drop(orm, "ORC")), ErrorCode.SEGMENT_SEQUENCE, "ORC", "ORC")
    _check(failure(drop(orm, "OBR")), ErrorCode.SEGMENT_SEQUENCE, "OBR", "no OBR")
    _check(failure(drop(orm, "PID")), ErrorCode.SEGMENT_SEQUENCE, "PID", "PID")
    _check(failure(drop(sample("omi_o23.hl7"), "IPC")), ErrorCode.SEGMENT_SEQUENCE, "IPC")


def test_required_fields() -> None:
    orm = sample("orm_o01_v23.hl7")
    _check(failure(set_field(orm, "PID", 3, "")), ErrorCode.REQUIRED_FIELD_MISSING, "PID-3.1")
    _check(
        failure(set_field(orm, "PID", 3, "^^^EPI^MR")), ErrorCode.REQUIRED_FIELD_MISSING, "PID-3.1"
    )
    _check(failure(set_field(orm, "ORC", 1, "")), ErrorCode.REQUIRED_FIELD_MISSING, "ORC-1")
    _check(
        failure(set_field(orm, "OBR", 4, "^CT HEAD")), ErrorCode.REQUIRED_FIELD_MISSING, "OBR-4.1"
    )
    no_accession = set_field(set_field(orm, "OBR", 18, ""), "OBR", 3, "")
    _check(failure(no_accession), ErrorCode.REQUIRED_FIELD_MISSING, "OBR-18", "accession")
    omi = set_field(sample("omi_o23.hl7"), "IPC", 1, "")
    omi = set_field(set_field(omi, "OBR", 3, ""), "ORC", 3, "")
    _check(failure(omi), ErrorCode.REQUIRED_FIELD_MISSING, "IPC-1", "accession")


@pytest.mark.parametrize(
    ("segment", "field", "value", "where"),
    [
        ("PID", 7, "19551323", "PID-7"),  # month 13
        ("PID", 7, "1955", "PID-7"),  # a birth date needs the day
        ("PID", 7, "yesterday", "PID-7"),
        ("ORC", 7, "^^^2024031614100-0500^^S", "ORC-7.4"),  # 13 digits
        ("ORC", 7, "^^^20240230141000^^S", "ORC-7.4"),  # 30 February
        ("OBR", 18, "NH2403160001700017", "OBR-18.1"),  # 18 characters
        ("OBR", 21, "NH\\E\\CT1", "OBR-21.1"),  # a backslash in an AE title
        ("OBR", 21, "A" * 17, "OBR-21.1"),
        ("OBR", 19, "R" * 17, "OBR-19.1"),
    ],
)
def test_data_type_errors_name_the_field(segment: str, field: int, value: str, where: str) -> None:
    text = set_field(sample("orm_o01_v23.hl7"), segment, field, value)
    _check(failure(text), ErrorCode.DATA_TYPE, where)


def test_bad_uids_and_tq1_times() -> None:
    _check(
        failure(set_field(sample("orm_o01.hl7"), "ZDS", 1, "1.2.03.4^TELERAD")),
        ErrorCode.DATA_TYPE,
        "ZDS-1.1",
    )
    _check(
        failure(set_field(sample("omi_o23.hl7"), "TQ1", 7, "20240318250000")),
        ErrorCode.DATA_TYPE,
        "TQ1-7.1",
    )


def test_table_values() -> None:
    orm = sample("orm_o01_v23.hl7")
    _check(failure(set_field(orm, "ORC", 1, "RP")), ErrorCode.TABLE_VALUE_NOT_FOUND, "ORC-1")
    assert "unsupported order control" in failure(set_field(orm, "ORC", 1, "RP")).reason
    _check(failure(set_field(orm, "PID", 8, "Q")), ErrorCode.TABLE_VALUE_NOT_FOUND, "PID-8")
    assert orders(set_field(orm, "PID", 8, "U"))[0].order.patient.sex == ""


def test_a_bad_second_order_fails_the_whole_message() -> None:
    text = set_field(sample("orm_o01_two_orders.hl7"), "OBR", 18, "X" * 20, occurrence=2)
    _check(failure(text), ErrorCode.DATA_TYPE, "OBR[2]-18.1")


def test_the_same_accession_twice_in_one_message() -> None:
    text = set_field(sample("orm_o01_two_orders.hl7"), "OBR", 18, "NH24031600241", occurrence=2)
    _check(failure(text), ErrorCode.DUPLICATE_KEY, "OBR[2]-18.1", "NH24031600241")


def test_garbage_after_the_header_cannot_be_read() -> None:
    msh = sample("orm_o01.hl7").split("\r")[0]
    with pytest.raises(Hl7Error) as caught:
        orders(msh + "\rZZZ|\x00\x01")
    assert caught.value.error is ErrorCode.SEGMENT_SEQUENCE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240316141000-0500", datetime(2024, 3, 16, 19, 10, tzinfo=UTC)),
        ("202403161410+0130", datetime(2024, 3, 16, 12, 40, tzinfo=UTC)),
        ("20240316141000.1234", datetime(2024, 3, 16, 14, 10, 0, 123400, tzinfo=UTC)),
        ("20240316", datetime(2024, 3, 16, tzinfo=UTC)),
    ],
)
def test_timestamps(value: str, expected: datetime) -> None:
    assert parse_timestamp(value, ErrorLocation("TQ1", 1, 7), "start") == expected


@pytest.mark.parametrize("value", ["2024031614.5", "20240316141000-05", "2024-03-16", "202"])
def test_bad_timestamps(value: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        parse_timestamp(value, ErrorLocation("TQ1", 1, 7), "start")
    assert caught.value.error is ErrorCode.DATA_TYPE


# --------------------------------------------------------------------------- ADT


def test_a08_updates_demographics() -> None:
    [update] = read_patients(sample("adt_a08.hl7"), "A08")
    assert isinstance(update, PatientUpdate)
    assert update.patient.patient_id == "MRN4471923"
    assert update.patient.name == "Testpatient-Jones^Alice^Marie"
    assert update.patient.birth_date == "19680421"


def test_a40_merges_every_prior_identifier() -> None:
    [merge] = read_patients(sample("adt_a40.hl7"), "A40")
    assert isinstance(merge, PatientMerge)
    assert merge.patient.patient_id == "MRN4471923"
    assert merge.prior_ids == ("MRN9000111", "TMP77123")


def test_a40_without_mrg_is_a_missing_field() -> None:
    with pytest.raises(Hl7Error) as caught:
        read_patients(drop(sample("adt_a40.hl7"), "MRG"), "A40")
    assert caught.value.error is ErrorCode.REQUIRED_FIELD_MISSING
    assert str(caught.value.location) == "MRG-1"
    with pytest.raises(Hl7Error) as caught:
        read_patients(set_field(sample("adt_a40.hl7"), "MRG", 1, "^^^NH^MR"), "A40")
    assert str(caught.value.location) == "MRG-1.1"


def test_other_adt_events_change_nothing_and_a08_needs_pid_3() -> None:
    assert read_patients(sample("adt_a08.hl7"), "A02") == []
    with pytest.raises(Hl7Error) as caught:
        read_patients(set_field(sample("adt_a08.hl7"), "PID", 3, ""), "A08")
    assert str(caught.value.location) == "PID-3.1"
    with pytest.raises(Hl7Error) as caught:
        read_patients(drop(sample("adt_a04.hl7"), "PID"), "A04")
    assert caught.value.error is ErrorCode.SEGMENT_SEQUENCE


# --------------------------------------------------------------------------- ERR


def test_err_2_carries_the_location_from_v2_5() -> None:
    text = set_field(sample("orm_o01_two_orders.hl7"), "OBR", 18, "X" * 20, occurrence=2)
    verdict = failure(text).verdict
    ack = hl7.parse(build_ack(verdict, read_header(text), "A1"))
    err = ack.segment("ERR")
    assert str(err(2)) == "OBR^2^18^1^1"
    assert str(err(3)(1)(1)) == "102" and str(err(4)) == "E"
    assert str(err(8)).startswith("OBR[2]-18.1 (accession number)")
    assert str(ack.segment("MSA")(1)) == "AE"


def test_err_1_carries_the_location_in_v2_3() -> None:
    text = set_field(sample("orm_o01_v23.hl7"), "PID", 7, "19551323")
    ack = hl7.parse(build_ack(failure(text).verdict, read_header(text), "A1"))
    assert str(ack.segment("ERR")) == "ERR|PID^1^7^102&Data type error&HL70357"


def test_a_verdict_without_a_location_has_an_empty_err_2() -> None:
    header = read_header(sample("orm_o01.hl7"))
    verdict = Verdict.application_error(ErrorCode.UNKNOWN_KEY, "no such facility")
    assert "\rERR||" in build_ack(verdict, header, "A1")
