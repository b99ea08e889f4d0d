"""Modality Performed Procedure Step SCP against a running listener, pynetdicom as the modality.

Debian's dcmtk ships no MPPS SCU (no N-CREATE/N-SET tool), so pynetdicom plays
the modality: it associates through the gate as a facility's registered AE and
sends the N-CREATE and N-SET requests a modality sends (IHE SWF RAD-6/RAD-7).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_context
from sqlalchemy import select
from tests.integration.test_dimse_support import association

from telerad.adapters.dimse.contexts import MODALITY_PERFORMED_PROCEDURE_STEP as MPPS
from telerad.adapters.dimse.server import DimseServer, start_dimse_server
from telerad.bootstrap import Platform
from telerad.domain.audit import EventID
from telerad.domain.identity import Role
from telerad.domain.orders import Order, OrderStatus, PatientDemographics, Procedure
from telerad.services.orders import Origin
from telerad.services.people import Administration
from telerad.storage.db import tables as t
from telerad.storage.db.reconcile_repository import performed_series

ORIGIN = Origin("REST", "test")
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass
class World:
    platform: Platform
    dimse: DimseServer
    alpha: int
    beta: int


@pytest.fixture
def world(platform: Platform) -> Iterator[World]:
    admin = Administration(platform.index, platform.auth, platform.audit)
    alpha = admin.add_facility("Alpha Hospital", "t", ae_title="ALPHA", host="127.0.0.1")
    beta = admin.add_facility("Beta Clinic", "t", ae_title="BETA", host="127.0.0.1")
    admin.add_user("admin", Role.NETWORK_ADMIN, "t", password="mpps test password")
    for accession, facility, study in (("A1", alpha.id, ""), ("A2", alpha.id, "1.2.826.9.2")):
        platform.orders.place(
            Order(
                facility_id=facility,
                accession_number=accession,
                patient=PatientDemographics("PA" + accession, "SMITH^ALICE"),
                procedure=Procedure("71250", "CT chest", "CPT", "CT"),
                status=OrderStatus.SCHEDULED,
                scheduled_at=datetime(2024, 3, 5, 9, tzinfo=UTC),
                station_ae="CT1",
                requested_study_uid=study,
            ),
            ORIGIN,
        )
    dimse = start_dimse_server(platform, port=0)
    yield World(platform, dimse, alpha.id, beta.id)
    dimse.shutdown()


def attribute_list(
    accession: str = "A1", study_uid: str = "", status: str = "IN PROGRESS"
) -> Dataset:
    """An N-CREATE Attribute List as a CT sends it (PS3.4 Table F.7.2-1, the Type 1/2 part)."""
    step = Dataset()
    step.StudyInstanceUID = study_uid or generate_uid("2.25.")
    step.ReferencedStudySequence = []
    step.AccessionNumber = accession
    step.RequestedProcedureID = accession
    step.RequestedProcedureDescription = "CT chest"
    step.ScheduledProcedureStepID = accession
    step.ScheduledProcedureStepDescription = "CT chest"
    step.ScheduledProtocolCodeSequence = []
    ds = Dataset()
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = "SMITH^ALICE"
    ds.PatientID = "PA" + accession
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = "PPS-" + accession
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedStationName = ""
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = "20240305"
    ds.PerformedProcedureStepStartTime = "091500"
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepDescription = ""
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = []
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = "CT"
    ds.StudyID = ""
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def final(status: str, series: int = 2, images: int = 3) -> tuple[Dataset, dict[str, list[str]]]:
    """An N-SET Modification List ending the step, and the SOP Instance UIDs per series."""
    performed = {}
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20240305"
    ds.PerformedProcedureStepEndTime = "093000"
    ds.PerformedSeriesSequence = []
    for n in range(series):
        item = Dataset()
        item.SeriesInstanceUID = generate_uid("2.25.")
        item.SeriesDescription = f"series {n + 1}"
        item.PerformingPhysicianName = ""
        item.OperatorsName = "TECH^TOM"
        item.ProtocolName = "CHEST"
        item.RetrieveAETitle = ""
        item.ReferencedImageSequence = []
        for _ in range(images):
            ref = Dataset()
            ref.ReferencedSOPClassUID = CT_IMAGE
            ref.ReferencedSOPInstanceUID = generate_uid("2.25.")
            item.ReferencedImageSequence.append(ref)
        item.ReferencedNonImageCompositeSOPInstanceSequence = []
        ds.PerformedSeriesSequence.append(item)
        performed[item.SeriesInstanceUID] = [
            r.ReferencedSOPInstanceUID for r in item.ReferencedImageSequence
        ]
    return ds, performed


def create(assoc: Any, ds: Dataset, uid: str | None) -> Dataset:
    status, _ = assoc.send_n_create(ds, MPPS, uid)
    return status


def nset(assoc: Any, ds: Dataset, uid: str) -> Dataset:
    status, _ = assoc.send_n_set(ds, MPPS, uid)
    return status


def modality(world: World, aet: str = "ALPHA") -> Any:
    return association(world.dimse.port, [build_context(MPPS)], ae_title=aet)


def _order(world: World, accession: str) -> Order:
    order = world.platform.orders.by_accession(world.alpha, accession)
    assert order is not None
    return order


def test_in_progress_then_completed_moves_the_order_and_keeps_the_series(world: World) -> None:
    uid = generate_uid("2.25.")
    study = generate_uid("2.25.")
    with modality(world) as assoc:
        assert create(assoc, attribute_list("A1", study), uid).Status == 0x0000
        order = _order(world, "A1")
        assert (order.status, order.mpps_status) == (OrderStatus.IN_PROGRESS, "IN PROGRESS")
        changes, performed = final("COMPLETED")
        assert nset(assoc, changes, uid).Status == 0x0000
    order = _order(world, "A1")
    assert (order.status, order.mpps_status) == (OrderStatus.PERFORMED, "COMPLETED")
    row = world.platform.orders.store.mpps(uid)
    assert row is not None
    assert (row["status"], row["order_id"], row["study_instance_uid"]) == (
        "COMPLETED",
        order.id,
        study,
    )
    kept = Dataset.from_json(row["json"])
    assert kept.PerformedProcedureStepStartTime == "091500"  # the N-CREATE's attributes stay
    assert kept.PerformedProcedureStepEndTime == "093000"
    assert kept.SOPInstanceUID == uid
    assert {
        s.SeriesInstanceUID: [r.ReferencedSOPInstanceUID for r in s.ReferencedImageSequence]
        for s in kept.PerformedSeriesSequence
    } == performed
    assert kept.PerformedSeriesSequence[0].OperatorsName == "TECH^TOM"
    assert json.loads(row["json"])["00400340"]["vr"] == "SQ"  # stored as DICOM JSON
    # What reconciliation reads back to check the study is complete.
    assert performed_series(row["json"]) == {uid: len(sops) for uid, sops in performed.items()}
    events = [h.event for h in world.platform.orders.history(order)]
    assert events[-2:] == ["start", "complete"]


def test_discontinued_moves_the_order_to_discontinued(world: World) -> None:
    uid = generate_uid("2.25.")
    with modality(world) as assoc:
        assert create(assoc, attribute_list("A1"), uid).Status == 0x0000
        changes, _ = final("DISCONTINUED", series=1, images=1)
        assert nset(assoc, changes, uid).Status == 0x0000
    order = _order(world, "A1")
    assert (order.status, order.mpps_status) == (OrderStatus.DISCONTINUED, "DISCONTINUED")
    row = world.platform.orders.store.mpps(uid)
    assert row is not None and row["status"] == "DISCONTINUED"


def test_intermediate_update_keeps_the_step_in_progress(world: World) -> None:
    uid = generate_uid("2.25.")
    with modality(world) as assoc:
        assert create(assoc, attribute_list("A1"), uid).Status == 0x0000
        update, _ = final("IN PROGRESS", series=1, images=2)
        assert nset(assoc, update, uid).Status == 0x0000
    row = world.platform.orders.store.mpps(uid)
    assert row is not None and row["status"] == "IN PROGRESS"
    assert len(Dataset.from_json(row["json"]).PerformedSeriesSequence) == 1
    assert _order(world, "A1").status is OrderStatus.IN_PROGRESS


def test_a_finished_step_may_no_longer_be_updated(world: World) -> None:
    uid = generate_uid("2.25.")
    with modality(world) as assoc:
        assert create(assoc, attribute_list("A1"), uid).Status == 0x0000
        changes, _ = final("COMPLETED")
        assert nset(assoc, changes, uid).Status == 0x0000
        again, _ = final("DISCONTINUED")
        refused = nset(assoc, again, uid)
    assert refused.Status == 0x0110
    assert refused.ErrorID == 0xA710
    assert "no longer be updated" in refused.ErrorComment
    row = world.platform.orders.store.mpps(uid)
    assert row is not None and row["status"] == "COMPLETED"
    assert _order(world, "A1").status is OrderStatus.PERFORMED


def test_unknown_instance_and_bad_requests_are_refused(world: World) -> None:
    uid = generate_uid("2.25.")
    with modality(world) as assoc:
        changes, _ = final("COMPLETED")
        assert nset(assoc, changes, generate_uid("2.25.")).Status == 0x0112
        assert create(assoc, attribute_list("A1", status="COMPLETED"), uid).Status == 0x0106
        assert world.platform.orders.store.mpps(uid) is None
        missing = attribute_list("A1")
        del missing.PerformedProcedureStepStatus
        assert create(assoc, missing, uid).Status == 0x0120
        no_steps = attribute_list("A1")
        del no_steps.ScheduledStepAttributesSequence
        assert create(assoc, no_steps, uid).Status == 0x0120
        assert create(assoc, attribute_list("A1"), uid).Status == 0x0000
        assert create(assoc, attribute_list("A1"), uid).Status == 0x0111  # duplicate
        wrong = Dataset()
        wrong.PerformedProcedureStepStatus = "PAUSED"
        assert nset(assoc, wrong, uid).Status == 0x0106
    row = world.platform.orders.store.mpps(uid)
    assert row is not None and row["status"] == "IN PROGRESS"
    assert _order(world, "A1").status is OrderStatus.IN_PROGRESS


def test_order_found_by_requested_study_uid(world: World) -> None:
    uid = generate_uid("2.25.")
    with modality(world) as assoc:
        ds = attribute_list("", "1.2.826.9.2")  # no accession: the worklist's study UID
        ds.ScheduledStepAttributesSequence[0].RequestedProcedureID = ""
        assert create(assoc, ds, uid).Status == 0x0000
    assert _order(world, "A2").status is OrderStatus.IN_PROGRESS
    assert _order(world, "A1").status is OrderStatus.SCHEDULED


def _audit_details(world: World) -> list[str]:
    return [
        r.detail
        for r in world.platform.audit.repository.records()
        if r.event is EventID.PROCEDURE_RECORD
    ]


def test_unscheduled_step_is_kept_and_noted(world: World) -> None:
    uid = generate_uid("2.25.")
    with modality(world) as assoc:
        assert create(assoc, attribute_list("WALKIN9"), uid).Status == 0x0000
        changes, performed = final("COMPLETED", series=1, images=4)
        assert nset(assoc, changes, uid).Status == 0x0000
    row = world.platform.orders.store.mpps(uid)
    assert row is not None and row["order_id"] is None and row["status"] == "COMPLETED"
    kept = Dataset.from_json(row["json"])
    assert [len(s.ReferencedImageSequence) for s in kept.PerformedSeriesSequence] == [4]
    assert any("unscheduled" in d for d in _audit_details(world))


def test_another_facility_cannot_reach_alphas_orders_or_steps(world: World) -> None:
    alphas = generate_uid("2.25.")
    betas = generate_uid("2.25.")
    with modality(world, "ALPHA") as assoc:
        assert create(assoc, attribute_list("A1"), alphas).Status == 0x0000
    with modality(world, "BETA") as assoc:
        # Beta names Alpha's accession: no order of Beta's matches, so it is unscheduled.
        assert create(assoc, attribute_list("A2"), betas).Status == 0x0000
        changes, _ = final("COMPLETED")
        assert nset(assoc, changes, alphas).Status == 0x0112  # Alpha's step: not Beta's
    assert _order(world, "A2").status is OrderStatus.SCHEDULED
    assert _order(world, "A1").status is OrderStatus.IN_PROGRESS
    row = world.platform.orders.store.mpps(betas)
    assert row is not None and row["facility_id"] == world.beta and row["order_id"] is None


def test_scp_assigns_the_instance_uid_when_the_modality_gives_none(world: World) -> None:
    with modality(world) as assoc:
        assert create(assoc, attribute_list("A1"), None).Status == 0x0000
    engine = world.platform.orders.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        uids = conn.execute(select(t.mpps.c.sop_instance_uid)).scalars().all()
    assert len(uids) == 1 and uids[0].startswith("2.25.")
    assert _order(world, "A1").status is OrderStatus.IN_PROGRESS


def test_step_of_a_cancelled_order_is_kept_and_the_refusal_noted(world: World) -> None:
    world.platform.orders.cancel(_order(world, "A1"), ORIGIN)
    uid = generate_uid("2.25.")
    with modality(world) as assoc:
        assert create(assoc, attribute_list("A1"), uid).Status == 0x0000
    assert _order(world, "A1").status is OrderStatus.CANCELLED
    row = world.platform.orders.store.mpps(uid)
    assert row is not None and row["order_id"] == _order(world, "A1").id
    assert any("did not follow" in d and "cancelled" in d for d in _audit_details(world))


def test_unregistered_modality_is_refused(world: World) -> None:
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(MPPS)
    assoc = ae.associate("127.0.0.1", world.dimse.port, ae_title="TELERAD")
    assert assoc.is_rejected
    assoc.kill()
