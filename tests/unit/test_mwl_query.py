"""Modality Worklist matching: items from orders, keys, matching rules, answers."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from telerad.domain.mwl_query import (
    CODE,
    STEP,
    TOP,
    Key,
    WorklistItem,
    answer,
    matches,
    matching_value,
    offered,
    parse_key,
    value_matches,
    worklist_item,
)
from telerad.domain.orders import Order, OrderStatus, PatientDemographics, Procedure
from telerad.domain.query import Exact, QueryError, Range, UidList, Wildcard
from telerad.workflow.model import Priority


def _order(**changes: object) -> Order:
    fields: dict[str, object] = {
        "id": 7,
        "facility_id": 1,
        "accession_number": "ACC1",
        "patient": PatientDemographics("P1", "Doe^Jane", "19800101", "F"),
        "procedure": Procedure("71250", "CT chest without contrast", "CPT", "CT", "CHEST"),
        "priority": Priority.ROUTINE,
        "status": OrderStatus.SCHEDULED,
        "ordering_physician": "House^Greg",
        "reason": "cough  for\n3 weeks",
        "scheduled_at": datetime(2024, 3, 5, 23, 30, tzinfo=UTC),
        "station_ae": "CT1",
        "requested_study_uid": "1.2.3",
        "placer_order_number": "PL1",
    }
    fields.update(changes)
    return Order(**fields)  # type: ignore[arg-type]


def _key(keyword: str, value: str | None = None, table: dict = TOP) -> Key:  # type: ignore[type-arg]
    a = table[keyword]
    return Key(a.tag, a.vr, keyword, parse_key(a.vr, value))


def _sps(*keys: Key) -> Key:
    a = TOP["ScheduledProcedureStepSequence"]
    return Key(a.tag, "SQ", a.keyword, None, keys)


def _step(keyword: str, value: str | None = None) -> Key:
    return _key(keyword, value, STEP)


# -- items --------------------------------------------------------------------------------


def test_item_holds_the_order_with_ids_codes_priority_and_local_times() -> None:
    item = worklist_item(_order(priority=Priority.STROKE), ZoneInfo("America/New_York"))
    v = item.values
    assert item.order_id == 7
    assert v["PatientName"] == "Doe^Jane" and v["PatientID"] == "P1"
    assert v["AccessionNumber"] == "ACC1"
    assert v["RequestedProcedureID"] == "ACC1"  # none on the order: the accession
    assert v["StudyInstanceUID"] == "1.2.3"
    assert v["RequestedProcedurePriority"] == "STAT"
    assert v["ReasonForTheRequestedProcedure"] == "cough for 3 weeks"
    assert v["ReferringPhysicianName"] == "House^Greg"
    assert v["TimezoneOffsetFromUTC"] == "-0500"
    (code,) = v["RequestedProcedureCodeSequence"]  # type: ignore[misc]
    assert dict(code) == {
        "CodeValue": "71250",
        "CodingSchemeDesignator": "C4",
        "CodeMeaning": "CT chest without contrast",
    }
    (step,) = v["ScheduledProcedureStepSequence"]  # type: ignore[misc]
    assert step["Modality"] == "CT"
    assert step["ScheduledStationAETitle"] == "CT1"
    assert step["ScheduledProcedureStepStartDate"] == "20240305"  # 18:30 in New York
    assert step["ScheduledProcedureStepStartTime"] == "183000"
    assert step["ScheduledProcedureStepID"] == "ACC1"
    assert step["ScheduledProtocolCodeSequence"] == (code,)


def test_priorities_map_to_dicom_values() -> None:
    expected = {
        Priority.TRAUMA: "STAT",
        Priority.STAT: "STAT",
        Priority.URGENT: "HIGH",
        Priority.ROUTINE: "ROUTINE",
    }
    for tier, value in expected.items():
        got = worklist_item(_order(priority=tier)).values["RequestedProcedurePriority"]
        assert got == value


def test_local_scheme_and_own_procedure_id() -> None:
    order = _order(
        procedure=Procedure("XR123", "", "", "DX"),
        requested_procedure_id="RP9",
    )
    v = worklist_item(order).values
    assert v["RequestedProcedureID"] == "RP9"
    (code,) = v["RequestedProcedureCodeSequence"]  # type: ignore[misc]
    assert code["CodingSchemeDesignator"] == "99TELERAD"
    assert code["CodeMeaning"] == "XR123"


def test_worklist_offers_scheduled_and_timed_orders_only() -> None:
    assert offered(_order())
    assert offered(_order(status=OrderStatus.ORDERED))
    assert not offered(_order(status=OrderStatus.ORDERED, scheduled_at=None))
    for status in (
        OrderStatus.IN_PROGRESS,
        OrderStatus.PERFORMED,
        OrderStatus.DISCONTINUED,
        OrderStatus.READY,
        OrderStatus.CANCELLED,
    ):
        assert not offered(_order(status=status)), status


# -- keys and matching --------------------------------------------------------------------


def test_parse_key_kinds() -> None:
    assert parse_key("PN", "") is None
    assert parse_key("PN", "*") is None
    assert parse_key("PN", None) is None
    assert parse_key("PN", "DOE^J*") == Wildcard("DOE^J*")
    assert parse_key("LO", "P1") == Exact("P1")
    assert parse_key("DA", "20240101-20240131") == Range("20240101", "20240131")
    assert parse_key("DA", "20240101-") == Range("20240101", None)
    assert parse_key("DA", "-20240101") == Range(None, "20240101")
    assert parse_key("DA", "2024.01.31") == Exact("20240131")
    assert parse_key("TM", "08:00-12:00") == Range("0800", "1200")
    assert parse_key("CS", "CT\\MR") == UidList(("CT", "MR"))
    assert parse_key("CS", ["CT", "MR"]) == UidList(("CT", "MR"))
    assert parse_key("UI", "1.2\\1.3") == UidList(("1.2", "1.3"))
    with pytest.raises(QueryError):
        parse_key("DA", "yesterday")
    with pytest.raises(QueryError):
        parse_key("TM", "25h")


def test_person_names_match_case_insensitively_with_wildcards() -> None:
    assert value_matches(Wildcard("doe*"), "PN", "Doe^Jane")
    assert value_matches(Wildcard("D?E^JANE"), "PN", "Doe^Jane")
    assert value_matches(Exact("doe^jane"), "PN", "Doe^Jane")
    assert not value_matches(Wildcard("SMITH*"), "PN", "Doe^Jane")
    assert not value_matches(Exact("doe"), "PN", "Doe^Jane")  # single value is the whole name


def test_other_values_match_exactly_and_case_sensitively() -> None:
    assert value_matches(Exact("ACC1"), "SH", "ACC1")
    assert not value_matches(Exact("acc1"), "SH", "ACC1")
    assert value_matches(Wildcard("AC?1"), "SH", "ACC1")
    assert value_matches(UidList(("MR", "CT")), "CS", "CT")
    assert not value_matches(UidList(("MR", "US")), "CS", "CT")


def test_ranges_are_inclusive_and_may_be_open() -> None:
    assert value_matches(Range("20240305", "20240305"), "DA", "20240305")
    assert value_matches(Range(None, "20240305"), "DA", "20240101")
    assert not value_matches(Range("20240306", None), "DA", "20240305")
    assert value_matches(Range("0800", "1000"), "TM", "100059")  # 10 → up to 10:00:59
    assert value_matches(Range("0800", "10"), "TM", "105959")
    assert not value_matches(Range("0800", "1000"), "TM", "100100")
    assert not value_matches(Range("0800", None), "TM", "075959")
    assert value_matches(Exact("0930"), "TM", "093000")


def test_a_key_with_a_value_never_matches_an_empty_attribute() -> None:
    assert value_matches(None, "PN", "")
    assert not value_matches(Wildcard("*A*"), "PN", "")
    assert not value_matches(Range("20240101", None), "DA", "")


def test_sequence_keys_must_hold_within_the_step() -> None:
    item = worklist_item(_order())
    assert matches(item, [_sps(_step("Modality", "CT"), _step("ScheduledStationAETitle", "CT1"))])
    assert not matches(item, [_sps(_step("Modality", "MR"))])
    assert not matches(item, [_sps(_step("ScheduledStationAETitle", "CT2"))])
    assert matches(item, [_sps(_step("ScheduledProcedureStepStartDate", "20240301-20240331"))])
    assert not matches(item, [_sps(_step("ScheduledProcedureStepStartDate", "20240306-"))])
    assert matches(item, [_sps()])  # the whole sequence asked for: universal
    code = Key(
        STEP["ScheduledProtocolCodeSequence"].tag,
        "SQ",
        "ScheduledProtocolCodeSequence",
        None,
        (_key("CodeValue", "71250", CODE),),
    )
    assert matches(item, [_sps(code)])


def test_top_level_keys_combine() -> None:
    item = worklist_item(_order())
    keys = [_key("PatientName", "DOE*"), _key("AccessionNumber", "ACC1"), _key("PatientID")]
    assert matches(item, keys)
    assert not matches(item, [*keys, _key("StudyInstanceUID", "9.9")])
    assert matching_value([_sps(_step("Modality", "CT"))], "Modality") == Exact("CT")
    assert matching_value(keys, "PatientID") is None


# -- answers ------------------------------------------------------------------------------


def test_answer_holds_exactly_the_requested_keys() -> None:
    item = worklist_item(_order())
    unknown = Key(0x00101030, "DS")  # Patient's Weight: not held
    got = answer(
        item,
        [_key("PatientName"), unknown, _sps(_step("Modality"), _step("ScheduledStationAETitle"))],
    )
    assert set(got) == {0x00100010, 0x00101030, 0x00400100}
    assert got[0x00100010] == ("PN", "Doe^Jane")
    assert got[0x00101030] == ("DS", None)
    vr, steps = got[0x00400100]
    assert vr == "SQ" and isinstance(steps, list) and len(steps) == 1
    assert steps[0] == {0x00080060: ("CS", "CT"), 0x00400001: ("AE", "CT1")}


def test_an_empty_sequence_key_returns_the_whole_sequence() -> None:
    item = worklist_item(_order(), UTC)
    got = answer(item, [_sps()])
    _, steps = got[0x00400100]
    assert isinstance(steps, list)
    (step,) = steps
    assert set(step) == {a.tag for a in STEP.values()}
    _, codes = step[0x00400008]
    assert codes == [
        {
            0x00080100: ("SH", "71250"),
            0x00080102: ("SH", "C4"),
            0x00080104: ("LO", "CT chest without contrast"),
        }
    ]
    assert step[0x00400006] == ("PN", None)  # no performing physician: returned empty


def test_item_without_order_id_is_allowed() -> None:
    item = WorklistItem(None, {"PatientName": "A^B"})
    assert matches(item, [_key("PatientName", "a^b")])
