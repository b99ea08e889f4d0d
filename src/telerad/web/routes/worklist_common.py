"""What the radiologist's worklist and the supervisor's board share: who may use them,
how a row reads (the study's context beside its place on the worklist), the JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import HTTPException, Query, Request

from telerad.domain.identity import Permission, Principal, Role
from telerad.services.platform import Platform
from telerad.services.reading import Item, ReadingService
from telerad.services.reading_context import ReadingContext, StudyContext
from telerad.web.auth import authenticate
from telerad.web.routes.ui import dicom_date, person_name
from telerad.workflow.explain import span

#: How often the pages refresh their rows, in seconds.
POLL_SECONDS = 5
SUPERVISORS = frozenset({Role.NETWORK_ADMIN, Role.FACILITY_ADMIN})


def viewer_url(uid: str) -> str:
    return "/viewer?" + urlencode({"StudyInstanceUIDs": uid})


def time_left(delta: timedelta) -> str:
    """ "12 min", "3.5 h", or "5 min overdue"."""
    text = span(abs(delta))
    return f"{text} overdue" if delta < timedelta(0) else text


def reader_of(request: Request, platform: Platform) -> Principal:
    """The radiologist calling (their queue, their holds); 403 for anyone else."""
    who = authenticate(request)
    if who.role is not Role.RADIOLOGIST or who.user_id is None:
        raise HTTPException(403, "only radiologists have a reading worklist")
    if not who.can(Permission.READING):
        raise HTTPException(403, f"this token may not do this (needs {Permission.READING.value})")
    platform.reading.seen(who.user_id, token=who.method == "token")
    return who


def supervisor_of(request: Request) -> Principal:
    """A network admin (every facility) or facility admin (their own); 403 for others."""
    who = authenticate(request)
    if who.method == "open":
        return who  # no accounts yet: loopback only, everything is open
    if who.role not in SUPERVISORS or not who.can(Permission.ADMIN):
        raise HTTPException(403, "the board is for network and facility administrators")
    return who


def visible_item(reading: ReadingService, who: Principal, uid: str) -> Item:
    item = reading.item(uid)
    if item is None or not who.sees(item.study.facility_id, uid):
        raise HTTPException(404, f"study {uid} is not on your worklist")
    return item


@dataclass(frozen=True)
class Row:
    """A study on the worklist with what people need to see beside it."""

    item: Item
    context: StudyContext | None

    @property
    def patient(self) -> str:
        return person_name(self.context.patient_name) if self.context else ""

    @property
    def demographics(self) -> str:
        c = self.context
        return " ".join(p for p in (c.age, c.sex) if p) if c else ""

    @property
    def title(self) -> str:
        s, c = self.item.study, self.context
        return (c.description if c else "") or " ".join(p for p in (s.modality, s.body_part) if p)

    @property
    def reason(self) -> str:
        c = self.context
        if c is None:
            return ""
        return c.reason or ("no order: read as is" if not c.has_order else "none given")


def rows_of(context: ReadingContext, who: Principal, items: list[Item]) -> list[Row]:
    found = context.of(who, [i.study.uid for i in items])
    return [Row(i, found.get(i.study.uid)) for i in items]


def item_json(row: Row, now: datetime, facility: str = "") -> dict[str, Any]:
    item, c = row.item, row.context
    s = item.study
    return {
        "study_uid": s.uid,
        "facility_id": s.facility_id,
        "facility": (c.facility if c else "") or facility,
        "priority": s.priority.value,
        "modality": s.modality,
        "body_part": s.body_part,
        "subspecialty": s.subspecialty,
        "read_kind": s.read_kind.value,
        "rvu": s.rvu,
        "ready_at": s.ready_at.isoformat(),
        "deadline": s.deadline.isoformat(),
        "minutes_left": round((s.deadline - now).total_seconds() / 60, 1),
        "state": item.state,
        "status": item.status,
        "reader_id": item.holder,
        "reader": item.holder_name,
        "summary": item.summary,
        "reason": item.why,
        "patient_name": row.patient,
        "patient_id": c.patient_id if c else "",
        "age": c.age if c else "",
        "sex": c.sex if c else "",
        "accession": c.accession if c else "",
        "description": row.title,
        "study_date": dicom_date(c.study_date) if c else "",
        "reason_for_exam": c.reason if c else "",
        "ordering_physician": person_name(c.ordering_physician) if c else "",
        "viewer_url": viewer_url(s.uid),
    }


def facility_names(platform: Platform) -> dict[int, str]:
    return {f.id: f.name for f in platform.index.list_facilities()}


#: How a queue may be sorted: most urgent first (the worklist's own order), soonest
#: deadline, facility, modality.
SORTS = ("urgency", "deadline", "facility", "modality")


@dataclass(frozen=True)
class View:
    """Filters and order a person chose for a queue ("" for every value)."""

    priority: str = ""
    facility: str = ""  # a facility id
    modality: str = ""
    sort: str = "urgency"

    def arrange(self, rows: list[Row]) -> list[Row]:
        kept = [
            r
            for r in rows
            if (not self.priority or r.item.study.priority.value == self.priority)
            and (not self.facility or str(r.item.study.facility_id) == self.facility)
            and (not self.modality or r.item.study.modality == self.modality)
        ]
        if self.sort == "deadline":
            kept.sort(key=lambda r: r.item.study.deadline)
        elif self.sort == "facility":
            kept.sort(
                key=lambda r: (r.context.facility if r.context else "", r.item.study.deadline)
            )
        elif self.sort == "modality":
            kept.sort(key=lambda r: (r.item.study.modality, r.item.study.deadline))
        return kept  # "urgency": as the worklist gives them

    def query(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v and not (k == "sort" and v == "urgency")}


#: A queue filter as a page's form sends it.
Filter = Annotated[str, Query(max_length=32)]


def view_of(
    priority: Filter = "", facility: Filter = "", modality: Filter = "", sort: Filter = "urgency"
) -> View:
    """A queue's filters and order as the page's form sends them (a dependency)."""
    return View(priority, facility, modality, sort if sort in SORTS else "urgency")
