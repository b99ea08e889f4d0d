"""Modality Worklist C-FIND SCP against a running listener: dcmtk findscu -W as the modality.

Two facilities, each with its own registered modality AE (ALPHA, BETA). Every
query runs over the network through the association gate; a modality sees its
own facility's scheduled procedures only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, build_context
from tests.conftest import require_tool
from tests.fakes import FindEvent
from tests.integration.test_dimse_support import association, dcmtk

from telerad.adapters.dimse.contexts import MODALITY_WORKLIST_FIND
from telerad.adapters.dimse.mwl import handle_worklist
from telerad.adapters.dimse.server import DimseServer, start_dimse_server
from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.audit import EventID
from telerad.domain.identity import Role
from telerad.domain.orders import Order, OrderStatus, PatientDemographics, Procedure
from telerad.services.orders import Origin
from telerad.services.people import Administration
from telerad.workflow.model import Priority

ORIGIN = Origin("REST", "test")


@dataclass
class World:
    platform: Platform
    dimse: DimseServer
    alpha: int
    beta: int


def _order(facility_id: int, accession: str, name: str, pid: str, **kw: object) -> Order:
    fields: dict[str, object] = {
        "facility_id": facility_id,
        "accession_number": accession,
        "patient": PatientDemographics(pid, name, "19700101", "F"),
        "procedure": Procedure("71250", "CT chest", "CPT", "CT", "CHEST"),
        "status": OrderStatus.SCHEDULED,
        "ordering_physician": "HOUSE^GREG",
    }
    fields.update(kw)
    return Order(**fields)  # type: ignore[arg-type]


def _at(day: int, hour: int) -> datetime:
    return datetime(2024, 3, day, hour, 0, tzinfo=UTC)


def populate(platform: Platform) -> tuple[int, int]:
    """Alpha and Beta, their modality AEs, and their orders; (alpha id, beta id)."""
    admin = Administration(platform.index, platform.auth, platform.audit)
    alpha = admin.add_facility("Alpha Hospital", "t", ae_title="ALPHA", host="127.0.0.1")
    beta = admin.add_facility("Beta Clinic", "t", ae_title="BETA", host="127.0.0.1")
    admin.add_user("admin", Role.NETWORK_ADMIN, "t", password="mwl test password")  # gate shut
    place = platform.orders.place
    place(
        _order(
            alpha.id,
            "A1",
            "SMITH^ALICE",
            "PA1",
            scheduled_at=_at(5, 9),
            station_ae="CT1",
            priority=Priority.STAT,
            reason="fall, head injury",
        ),
        ORIGIN,
    )
    place(
        _order(
            alpha.id,
            "A2",
            "SMITH^ANNA",
            "PA2",
            procedure=Procedure("70551", "MR brain", "CPT", "MR", "HEAD"),
            scheduled_at=_at(6, 14),
            station_ae="MR1",
            requested_procedure_id="RP-A2",
        ),
        ORIGIN,
    )
    place(
        _order(alpha.id, "A3", "JONES^BOB", "PA3", scheduled_at=_at(7, 10), station_ae="CT2"),
        ORIGIN,
    )
    # Not offered: no time yet; cancelled; already started.
    place(_order(alpha.id, "A4", "SMITH^UNTIMED", "PA4", status=OrderStatus.ORDERED), ORIGIN)
    cancelled = place(_order(alpha.id, "A5", "SMITH^GONE", "PA5", scheduled_at=_at(5, 11)), ORIGIN)
    platform.orders.cancel(cancelled, ORIGIN)
    started = place(_order(alpha.id, "A6", "SMITH^BUSY", "PA6", scheduled_at=_at(5, 12)), ORIGIN)
    from telerad.domain.orders import OrderEvent

    platform.orders.step(started, OrderEvent.START, ORIGIN)
    place(
        _order(beta.id, "B1", "SMITH^BETTY", "PB1", scheduled_at=_at(5, 9), station_ae="CT1"),
        ORIGIN,
    )
    return alpha.id, beta.id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_tool("findscu")
    data = tmp_path_factory.mktemp("mwl") / "data"
    platform = open_platform(Settings(data_dir=data, fsync=False))
    alpha, beta = populate(platform)
    dimse = start_dimse_server(platform, port=0)
    yield World(platform, dimse, alpha, beta)
    dimse.shutdown()
    platform.close()


def findscu_w(
    port: int, tmp_path: Path, keys: list[str], aet: str = "ALPHA", query: Path | None = None
) -> list[Dataset]:
    out = tmp_path / f"mwl-{generate_uid('2.25.')[-8:]}"
    out.mkdir()
    args = ["-W", "-aet", aet, "-aec", "TELERAD", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", str(port)]
    if query is not None:
        args.append(str(query))
    result = dcmtk("findscu", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


SPS = "ScheduledProcedureStepSequence[0]"


def _accessions(found: list[Dataset]) -> set[str]:
    return {str(ds.AccessionNumber) for ds in found}


def test_name_wildcard_returns_the_requested_keys(world: World, tmp_path: Path) -> None:
    found = findscu_w(
        world.dimse.port,
        tmp_path,
        [
            "PatientName=SMITH*",
            "PatientID",
            "AccessionNumber",
            "StudyInstanceUID",
            "RequestedProcedureID",
            "RequestedProcedurePriority",
            "ReasonForTheRequestedProcedure",
            "ReferringPhysicianName",
            "RequestedProcedureDescription",
            "RequestedProcedureCodeSequence",
            f"{SPS}.Modality",
            f"{SPS}.ScheduledStationAETitle",
            f"{SPS}.ScheduledProcedureStepStartDate",
            f"{SPS}.ScheduledProcedureStepStartTime",
            f"{SPS}.ScheduledProcedureStepID",
            f"{SPS}.ScheduledPerformingPhysicianName",
            f"{SPS}.ScheduledProtocolCodeSequence",
        ],
    )
    assert _accessions(found) == {"A1", "A2"}  # not Beta's, not the untimed/cancelled/started
    by_accession = {str(ds.AccessionNumber): ds for ds in found}
    a1 = by_accession["A1"]
    assert str(a1.PatientName) == "SMITH^ALICE" and a1.PatientID == "PA1"
    assert a1.RequestedProcedurePriority == "STAT"
    assert a1.ReasonForTheRequestedProcedure == "fall, head injury"
    assert str(a1.ReferringPhysicianName) == "HOUSE^GREG"
    assert a1.RequestedProcedureDescription == "CT chest"
    assert a1.RequestedProcedureID == "A1"
    assert a1.RequestedProcedureCodeSequence[0].CodeValue == "71250"
    assert a1.RequestedProcedureCodeSequence[0].CodingSchemeDesignator == "C4"
    step = a1.ScheduledProcedureStepSequence[0]
    assert step.Modality == "CT" and step.ScheduledStationAETitle == "CT1"
    assert step.ScheduledProcedureStepStartDate == "20240305"
    assert step.ScheduledProcedureStepStartTime == "090000"
    assert step.ScheduledProcedureStepID == "A1"
    assert step.ScheduledProtocolCodeSequence[0].CodeValue == "71250"
    assert "ScheduledPerformingPhysicianName" in step and not step.ScheduledPerformingPhysicianName
    assert "ScheduledProcedureStepDescription" not in step  # only what was asked for
    assert "PatientBirthDate" not in a1
    assert by_accession["A2"].RequestedProcedureID == "RP-A2"
    assert a1.SpecificCharacterSet == "ISO_IR 192"


def test_study_uid_is_made_once_and_kept_on_the_order(world: World, tmp_path: Path) -> None:
    keys = ["AccessionNumber=A3", "StudyInstanceUID"]
    (first,) = findscu_w(world.dimse.port, tmp_path, keys)
    (again,) = findscu_w(world.dimse.port, tmp_path, keys)
    uid = str(first.StudyInstanceUID)
    assert uid and uid == str(again.StudyInstanceUID)
    order = world.platform.orders.by_accession(world.alpha, "A3")
    assert order is not None and order.requested_study_uid == uid
    assert "study uid assigned" in [h.event for h in world.platform.orders.history(order)]
    by_uid = findscu_w(world.dimse.port, tmp_path, [f"StudyInstanceUID={uid}", "AccessionNumber"])
    assert _accessions(by_uid) == {"A3"}


def test_date_ranges(world: World, tmp_path: Path) -> None:
    port = world.dimse.port
    date = f"{SPS}.ScheduledProcedureStepStartDate"
    assert _accessions(findscu_w(port, tmp_path, ["AccessionNumber", f"{date}=20240305"])) == {"A1"}
    assert _accessions(
        findscu_w(port, tmp_path, ["AccessionNumber", f"{date}=20240306-20240307"])
    ) == {"A2", "A3"}
    assert _accessions(findscu_w(port, tmp_path, ["AccessionNumber", f"{date}=20240306-"])) == {
        "A2",
        "A3",
    }
    assert _accessions(findscu_w(port, tmp_path, ["AccessionNumber", f"{date}=-20240305"])) == {
        "A1"
    }
    assert findscu_w(port, tmp_path, ["AccessionNumber", f"{date}=20250101-"]) == []
    time = f"{SPS}.ScheduledProcedureStepStartTime"
    assert _accessions(
        findscu_w(
            port, tmp_path, ["AccessionNumber", f"{date}=20240301-20240331", f"{time}=0800-1030"]
        )
    ) == {"A1", "A3"}


def test_modality_and_station_filters(world: World, tmp_path: Path) -> None:
    port = world.dimse.port
    modality = f"{SPS}.Modality"
    station = f"{SPS}.ScheduledStationAETitle"
    assert _accessions(findscu_w(port, tmp_path, ["AccessionNumber", f"{modality}=CT"])) == {
        "A1",
        "A3",
    }
    assert _accessions(findscu_w(port, tmp_path, ["AccessionNumber", f"{modality}=MR"])) == {"A2"}
    assert _accessions(findscu_w(port, tmp_path, ["AccessionNumber", f"{station}=CT2"])) == {"A3"}
    assert _accessions(
        findscu_w(port, tmp_path, ["AccessionNumber", f"{modality}=CT", f"{station}=CT1"])
    ) == {"A1"}
    assert findscu_w(port, tmp_path, ["AccessionNumber", f"{modality}=US"]) == []


def test_wildcards_on_ids_and_names(world: World, tmp_path: Path) -> None:
    port = world.dimse.port
    assert _accessions(findscu_w(port, tmp_path, ["AccessionNumber", "PatientID=PA?"])) == {
        "A1",
        "A2",
        "A3",
    }
    assert _accessions(findscu_w(port, tmp_path, ["AccessionNumber", "PatientName=*an*a"])) == {
        "A2"
    }
    assert _accessions(findscu_w(port, tmp_path, ["AccessionNumber=A?", "PatientName"])) == {
        "A1",
        "A2",
        "A3",
    }


def test_universal_query_from_a_query_file(world: World, tmp_path: Path) -> None:
    """A query file as modalities' worklist tools write it: an empty step item asks for all."""
    query = Dataset()
    query.PatientName = ""
    query.AccessionNumber = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    query.file_meta = FileMetaDataset()
    query.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    query.file_meta.MediaStorageSOPClassUID = MODALITY_WORKLIST_FIND
    query.file_meta.MediaStorageSOPInstanceUID = generate_uid("2.25.")
    path = tmp_path / "query.dcm"
    query.save_as(path, enforce_file_format=True)
    found = findscu_w(world.dimse.port, tmp_path, [], query=path)
    assert _accessions(found) == {"A1", "A2", "A3"}
    step = next(ds for ds in found if ds.AccessionNumber == "A2").ScheduledProcedureStepSequence[0]
    assert step.Modality == "MR" and step.ScheduledStationAETitle == "MR1"
    assert step.ScheduledProcedureStepDescription == "MR brain"
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"


def test_other_facility_sees_none_of_alphas_worklist(world: World, tmp_path: Path) -> None:
    port = world.dimse.port
    keys = ["PatientName", "PatientID", "AccessionNumber", f"{SPS}.ScheduledStationAETitle"]
    assert _accessions(findscu_w(port, tmp_path, keys, aet="BETA")) == {"B1"}
    for probe in (["AccessionNumber=A1"], ["PatientID=PA1", "AccessionNumber"]):
        assert findscu_w(port, tmp_path, probe, aet="BETA") == []
    assert _accessions(findscu_w(port, tmp_path, keys, aet="ALPHA")) == {"A1", "A2", "A3"}


def test_unregistered_modality_is_refused(world: World) -> None:
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(MODALITY_WORKLIST_FIND)
    assoc = ae.associate("127.0.0.1", world.dimse.port, ae_title="TELERAD")
    assert assoc.is_rejected
    assoc.kill()


def test_queries_are_audited(world: World, tmp_path: Path) -> None:
    findscu_w(world.dimse.port, tmp_path, ["AccessionNumber=A2", "PatientName"])
    queries = [
        r
        for r in world.platform.audit.repository.records()
        if r.event is EventID.QUERY and "C-FIND MWL" in r.detail
    ]
    assert any("AccessionNumber" in r.detail and r.actor_id == "ALPHA" for r in queries)


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
def test_bad_values_and_shapes_are_refused(world: World) -> None:
    bad_date = Dataset()
    bad_date.ScheduledProcedureStepSequence = [Dataset()]
    bad_date.ScheduledProcedureStepSequence[0].add_new(0x00400002, "DA", "tomorrow")
    two_items = Dataset()
    two_items.ScheduledProcedureStepSequence = [Dataset(), Dataset()]
    contexts = [build_context(MODALITY_WORKLIST_FIND)]
    with association(world.dimse.port, contexts, ae_title="ALPHA") as assoc:
        for identifier, expected in ((bad_date, 0xC000), (two_items, 0xA900)):
            responses = list(assoc.send_c_find(identifier, MODALITY_WORKLIST_FIND))
            assert [int(status.Status) for status, _ in responses] == [expected]
            assert responses[0][0].ErrorComment


def test_cancel_stops_the_matches(world: World) -> None:
    identifier = Dataset()
    identifier.AccessionNumber = ""
    uncancelled = [
        s
        for s, _ in handle_worklist(
            FindEvent(identifier, MODALITY_WORKLIST_FIND, "ALPHA", 99), world.platform
        )
    ]
    assert uncancelled == [0xFF00] * 3
    statuses = [
        s
        for s, _ in handle_worklist(
            FindEvent(identifier, MODALITY_WORKLIST_FIND, "ALPHA", 2), world.platform
        )
    ]
    assert statuses == [0xFF00, 0xFE00]


def test_worklist_on_postgresql(pg_platform: Platform, tmp_path: Path) -> None:
    require_tool("findscu")
    alpha, _ = populate(pg_platform)
    dimse = start_dimse_server(pg_platform, port=0)
    try:
        found = findscu_w(
            dimse.port,
            tmp_path,
            ["PatientName=SMITH^A*", "AccessionNumber", "StudyInstanceUID", f"{SPS}.Modality=CT"],
        )
        assert _accessions(found) == {"A1"}
        order = pg_platform.orders.by_accession(alpha, "A1")
        assert order is not None and order.requested_study_uid == str(found[0].StudyInstanceUID)
        assert findscu_w(dimse.port, tmp_path, ["AccessionNumber=A1"], aet="BETA") == []
    finally:
        dimse.shutdown()


def test_the_first_requested_study_uid_written_is_kept(platform: Platform) -> None:
    """Two worklist queries racing for a new order agree on one UID (conditional update)."""
    facility = platform.default_facility().id
    order = platform.orders.place(_order(facility, "R1", "RACE^ONE", "PR1"), ORIGIN)
    assert order.id is not None
    store = platform.orders.store
    now = datetime.now(UTC)
    assert store.keep_requested_study_uid(order.id, "2.25.1", now, "MWL") == "2.25.1"
    assert store.keep_requested_study_uid(order.id, "2.25.2", now, "MWL") == "2.25.1"
    kept = platform.orders.with_requested_study_uid(order, ORIGIN)  # the stale copy has none
    assert kept.requested_study_uid == "2.25.1"
    assert platform.orders.by_requested(facility, requested_study_uid="2.25.1") == kept
    assert platform.orders.by_requested(facility, requested_procedure_id="R1") is None
    assert platform.orders.by_requested(facility + 1, requested_study_uid="2.25.1") is None
    events = [h.event for h in platform.orders.history(order)]
    assert events.count("study uid assigned") == 1
