"""Request and response bodies of ``/api/orders`` and ``/api/stations``.

Field limits are the columns' (``storage.db.tables``), so PostgreSQL never sees a
value it would refuse; a body that breaks them gets 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from telerad.domain.orders import (
    Order,
    OrderHistoryEntry,
    OrderStatus,
    PatientDemographics,
    Slot,
    Station,
)
from telerad.workflow.model import Priority

_UID = r"^([0-2](\.(0|[1-9][0-9]*))+)?$"
_NO_BACKSLASH = r"^[^\\\x00-\x1f]*$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class PatientIn(_Body):
    patient_id: str = Field(min_length=1, max_length=64, pattern=_NO_BACKSLASH)
    name: str = Field(default="", max_length=324, description="DICOM PN: Family^Given^Middle")
    birth_date: str = Field(default="", pattern=r"^(\d{8})?$", description="YYYYMMDD")
    sex: Literal["", "M", "F", "O"] = ""


class ProcedureIn(_Body):
    code: str = Field(min_length=1, max_length=64, description="CPT, LOINC or a local code")
    description: str = Field(default="", max_length=128)
    coding_scheme: str = Field(default="", max_length=16, description='"CPT", "LN", a local one')
    modality: str = Field(
        default="", max_length=16, description="needed only for codes the catalogue lacks"
    )


class OrderIn(_Body):
    """A new order (POST) or its new version (PUT: the same facility and accession)."""

    accession_number: str = Field(min_length=1, max_length=16, pattern=_NO_BACKSLASH)
    patient: PatientIn
    procedure: ProcedureIn
    priority: Priority = Field(
        default=Priority.ROUTINE,
        description="stat/urgent orders whose reason names a stroke or trauma are lifted to it",
    )
    reason: str = Field(default="", max_length=4000)
    ordering_physician: str = Field(default="", max_length=324, description="DICOM PN")
    placer_order_number: str = Field(default="", max_length=64)
    filler_order_number: str = Field(default="", max_length=64)
    requested_procedure_id: str = Field(default="", max_length=16)
    requested_study_uid: str = Field(default="", max_length=64, pattern=_UID)
    scheduled_at: AwareDatetime | None = None
    facility: str | None = Field(
        default=None,
        max_length=128,
        description="facility name; needed only by accounts that serve more than one facility",
    )


class CancelIn(_Body):
    reason: str = Field(default="", max_length=200)


class ScheduleIn(_Body):
    slot_id: int = Field(ge=1)


class PatientOut(BaseModel):
    patient_id: str
    name: str
    birth_date: str
    sex: str

    @classmethod
    def of(cls, p: PatientDemographics) -> PatientOut:
        return cls(patient_id=p.patient_id, name=p.name, birth_date=p.birth_date, sex=p.sex)


class ProcedureOut(BaseModel):
    code: str
    description: str
    coding_scheme: str
    modality: str
    body_part: str
    rvu: float
    subspecialty: str


class OrderOut(BaseModel):
    id: int
    facility: str
    accession_number: str
    status: OrderStatus
    priority: Priority
    patient: PatientOut
    procedure: ProcedureOut
    reason: str
    ordering_physician: str
    placer_order_number: str
    filler_order_number: str
    requested_procedure_id: str
    requested_study_uid: str
    study_instance_uid: str = Field(description="empty until a study is matched to the order")
    mpps_status: str
    scheduled_at: dt.datetime | None
    station_ae: str
    created_at: dt.datetime | None
    updated_at: dt.datetime | None

    @classmethod
    def of(cls, order: Order, facility: str) -> OrderOut:
        assert order.id is not None
        p = order.procedure
        return cls(
            id=order.id,
            facility=facility,
            accession_number=order.accession_number,
            status=order.status,
            priority=order.priority,
            patient=PatientOut.of(order.patient),
            procedure=ProcedureOut(
                code=p.code,
                description=p.description,
                coding_scheme=p.coding_scheme,
                modality=p.modality,
                body_part=p.body_part,
                rvu=p.rvu,
                subspecialty=p.subspecialty,
            ),
            reason=order.reason,
            ordering_physician=order.ordering_physician,
            placer_order_number=order.placer_order_number,
            filler_order_number=order.filler_order_number,
            requested_procedure_id=order.requested_procedure_id,
            requested_study_uid=order.requested_study_uid,
            study_instance_uid=order.study_instance_uid,
            mpps_status=order.mpps_status,
            scheduled_at=order.scheduled_at,
            station_ae=order.station_ae,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


class HistoryOut(BaseModel):
    time: dt.datetime
    event: str
    source: str
    detail: str

    @classmethod
    def of(cls, e: OrderHistoryEntry) -> HistoryOut:
        return cls(time=e.time, event=e.event, source=e.source, detail=e.detail)


class OrderDetail(OrderOut):
    history: list[HistoryOut]


class StationIn(_Body):
    ae_title: str = Field(min_length=1, max_length=16, pattern=_NO_BACKSLASH)
    modality: str = Field(min_length=2, max_length=16, pattern=r"^[A-Za-z0-9]+$")
    name: str = Field(default="", max_length=64)
    facility: str | None = Field(default=None, max_length=128)


class StationOut(BaseModel):
    ae_title: str
    modality: str
    name: str
    facility: str

    @classmethod
    def of(cls, s: Station, facility: str) -> StationOut:
        return cls(ae_title=s.ae_title, modality=s.modality, name=s.name, facility=facility)


class SlotsIn(_Body):
    """Open slots on each day from ``date`` to ``until`` between ``start`` and ``end``."""

    date: dt.date
    until: dt.date | None = Field(default=None, description="last day (inclusive); default: date")
    start: dt.time = dt.time(8, 0)
    end: dt.time = dt.time(18, 0)
    minutes: int = Field(default=30, ge=5, le=1440)
    timezone: str = Field(default="UTC", max_length=64, description="IANA zone of start/end")


class SlotsOpened(BaseModel):
    station: str
    added: int
    requested: int = Field(description="slots asked for; those that existed are kept")


class SlotOut(BaseModel):
    id: int
    start: dt.datetime
    end: dt.datetime
    booked: bool
    order_id: int | None

    @classmethod
    def of(cls, s: Slot) -> SlotOut:
        return cls(
            id=s.id, start=s.start, end=s.end, booked=s.order_id is not None, order_id=s.order_id
        )
