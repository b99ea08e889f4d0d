"""The reconciliation queue: studies without an order, or held as incomplete.

``GET /api/reconciliation`` lists them (scoped to the caller's facilities, with
the reason each waits); a person resolves one by matching it to an order
(``POST /api/reconciliation/{uid}/assign``) or by sending it to reading as it is
(``POST /api/reconciliation/{uid}/release``). ``/reconciliation`` is the same
queue as a page. Reading needs ``orders:read``, resolving ``orders:write``; a
study of another facility answers exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from telerad.bootstrap import Platform
from telerad.domain.audit import Action, EventID
from telerad.domain.identity import Permission, Principal
from telerad.domain.orders import OrderError
from telerad.domain.readiness import ReadingState
from telerad.services.orders import Origin
from telerad.web.auth import authorise, client_address
from telerad.web.routes.ui import TEMPLATES
from telerad.workflow.model import Priority

_NOT_FOUND = "no such study in reconciliation"


class ReadingStateOut(BaseModel):
    study_instance_uid: str
    facility_id: int
    state: str = Field(description="arriving, unmatched, incomplete or ready")
    problems: list[str] = Field(description="why it waits, or what is missing")
    accession_number: str
    patient_id: str
    modalities: str
    study_date: str
    study_description: str
    instances: int
    last_change: datetime
    order_id: int | None
    matched_by: str
    ready_at: datetime | None
    released_as: str

    @classmethod
    def of(cls, s: ReadingState) -> ReadingStateOut:
        return cls(
            study_instance_uid=s.study_uid,
            facility_id=s.facility_id,
            state=s.state.value,
            problems=list(s.problems),
            accession_number=s.accession_number,
            patient_id=s.patient_id,
            modalities=s.modalities,
            study_date=s.study_date,
            study_description=s.study_description,
            instances=s.instances,
            last_change=s.last_change,
            order_id=s.order_id,
            matched_by=s.matched_by,
            ready_at=s.ready_at,
            released_as=s.released_as,
        )


class AssignIn(BaseModel):
    accession_number: str = Field(min_length=1, max_length=16, description="the order's")


class ReleaseIn(BaseModel):
    priority: Literal["stroke", "trauma", "stat", "urgent", "routine"]


def router(platform: Platform) -> APIRouter:
    api = APIRouter(tags=["reconciliation"])
    reconciler = platform.reconciler

    def visible(who: Principal, study_uid: str) -> ReadingState:
        state = reconciler.states.by_uid(study_uid)
        if state is None or not who.sees(state.facility_id, study_uid):
            raise HTTPException(404, _NOT_FOUND)
        return state

    def listed(request: Request) -> tuple[Principal, list[ReadingState]]:
        who = authorise(request, Permission.ORDERS_READ)
        waiting = reconciler.waiting(who.facility_ids)
        platform.audit.record(
            EventID.QUERY,
            who.username,
            actor_role=who.role.value if who.role else "",
            actor_is_user=who.is_user,
            action=Action.EXECUTE,
            source_address=client_address(request),
            detail=f"reconciliation queue listed ({len(waiting)} studies)",
        )
        return who, waiting

    @api.get("/api/reconciliation", response_model=list[ReadingStateOut])
    def waiting(request: Request) -> list[ReadingStateOut]:
        """Unmatched and held studies, oldest first."""
        return [ReadingStateOut.of(s) for s in listed(request)[1]]

    @api.get("/api/reconciliation/{study_uid}", response_model=ReadingStateOut)
    def one(request: Request, study_uid: str) -> ReadingStateOut:
        """Where one study stands: its order, its state, what it waits for."""
        who = authorise(request, Permission.ORDERS_READ)
        return ReadingStateOut.of(visible(who, study_uid))

    @api.post("/api/reconciliation/{study_uid}/assign", response_model=ReadingStateOut)
    def assign(
        request: Request, study_uid: str, body: Annotated[AssignIn, Body()]
    ) -> ReadingStateOut:
        """Match the study to the order with this accession number at its facility."""
        who = authorise(request, Permission.ORDERS_WRITE)
        state = visible(who, study_uid)
        order = platform.orders.by_accession(state.facility_id, body.accession_number)
        if order is None:
            raise HTTPException(422, f"no order with accession number {body.accession_number}")
        origin = Origin("REST", who.username, client_address(request), who.is_user)
        try:
            return ReadingStateOut.of(reconciler.assign(study_uid, order, origin))
        except OrderError as exc:
            raise HTTPException(409, str(exc)) from None

    @api.post("/api/reconciliation/{study_uid}/release", response_model=ReadingStateOut)
    def release(
        request: Request, study_uid: str, body: Annotated[ReleaseIn, Body()]
    ) -> ReadingStateOut:
        """Send the study to reading as it is (without an order, or with what is missing)."""
        who = authorise(request, Permission.ORDERS_WRITE)
        visible(who, study_uid)
        try:
            released = reconciler.release(study_uid, Priority(body.priority))
        except OrderError as exc:
            raise HTTPException(409, str(exc)) from None
        platform.audit.record(
            EventID.PROCEDURE_RECORD,
            who.username,
            actor_role=who.role.value if who.role else "",
            actor_is_user=who.is_user,
            action=Action.UPDATE,
            source_address=client_address(request),
            study_uid=study_uid,
            detail=f"released to reading as {body.priority}",
        )
        return ReadingStateOut.of(released)

    @api.get("/reconciliation", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        who, waiting = listed(request)
        return TEMPLATES.TemplateResponse(
            request,
            "reconciliation.html",
            {
                "who": who,
                "studies": waiting,
                "tiers": [p.value for p in Priority],
                "can_resolve": who.can(Permission.ORDERS_WRITE),
            },
        )

    return api
