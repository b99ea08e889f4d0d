"""The reconciliation queue: studies without an order, or held as incomplete.

``GET /api/reconciliation`` lists them (scoped to the caller's facilities, with
the reason each waits); a person resolves one by matching it to an order
(``POST /api/reconciliation/{uid}/assign``) or by sending it to reading as it is
(``POST /api/reconciliation/{uid}/release``). ``/reconciliation`` is the same
queue as a page (:class:`~telerad.services.reconciliation_queue.ReconciliationQueue`:
patient, study, a viewer link and the candidate orders to pick from); its forms
post to ``/reconciliation/{uid}/assign|release``, which answer the row again, with
the outcome or the error beside the study (htmx). Reading needs ``orders:read``,
resolving ``orders:write``; a study of another facility answers exactly like one
that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Form, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from telerad.domain.identity import Permission, Principal
from telerad.domain.orders import OrderError
from telerad.domain.readiness import ReadingState
from telerad.services.access_audit import Actor
from telerad.services.orders import Origin
from telerad.services.platform import Platform
from telerad.services.reconciliation_queue import ARRIVING_SHOWN, ReconciliationQueue
from telerad.web.auth import authenticate, authorise, client_address
from telerad.web.routes.ui import TEMPLATES, dicom_date, person_name, viewer_url
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


Tier = Literal["stroke", "trauma", "stat", "urgent", "routine"]


class ReleaseIn(BaseModel):
    priority: Tier


def router(platform: Platform) -> APIRouter:
    api = APIRouter(tags=["reconciliation"])
    reconciler = platform.reconciler
    queue = ReconciliationQueue(reconciler, platform.orders, platform.archive)

    def visible(who: Principal, study_uid: str) -> ReadingState:
        state = queue.state(who, study_uid)
        if state is None:
            raise HTTPException(404, _NOT_FOUND)
        return state

    def actor(request: Request, who: Principal) -> Actor:
        return Actor.of(who, client_address(request))

    def assign_order(
        request: Request, who: Principal, study_uid: str, accession: str
    ) -> ReadingState:
        state = visible(who, study_uid)
        order = platform.orders.by_accession(state.facility_id, accession)
        if order is None:
            raise HTTPException(422, f"no order with accession number {accession}")
        origin = Origin("REST", who.username, client_address(request), who.is_user)
        try:
            return reconciler.assign(study_uid, order, origin)
        except OrderError as exc:
            raise HTTPException(409, str(exc)) from None

    def release_as(request: Request, who: Principal, study_uid: str, tier: Tier) -> ReadingState:
        visible(who, study_uid)
        try:
            return reconciler.release(study_uid, Priority(tier), actor(request, who))
        except OrderError as exc:
            raise HTTPException(409, str(exc)) from None

    @api.get("/api/reconciliation", response_model=list[ReadingStateOut])
    def waiting(request: Request) -> list[ReadingStateOut]:
        """Unmatched and held studies, oldest first."""
        who = authorise(request, Permission.ORDERS_READ)
        found = reconciler.waiting(who.facility_ids, actor(request, who))
        return [ReadingStateOut.of(s) for s in found]

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
        return ReadingStateOut.of(assign_order(request, who, study_uid, body.accession_number))

    @api.post("/api/reconciliation/{study_uid}/release", response_model=ReadingStateOut)
    def release(
        request: Request, study_uid: str, body: Annotated[ReleaseIn, Body()]
    ) -> ReadingStateOut:
        """Send the study to reading as it is (without an order, or with what is missing)."""
        who = authorise(request, Permission.ORDERS_WRITE)
        return ReadingStateOut.of(release_as(request, who, study_uid, body.priority))

    # -- the page: the queue, resolved row by row (htmx) ------------------------------
    def render(
        request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request,
            name,
            {
                "tiers": [p.value for p in Priority],
                "person_name": person_name,
                "dicom_date": dicom_date,
                "viewer_url": viewer_url,
                **context,
            },
            status_code=status,
        )

    @api.get("/reconciliation", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        who = authorise(request, Permission.ORDERS_READ)
        rows = queue.rows(who, actor(request, who))
        context = {
            "who": who,
            "rows": rows,
            "arriving": queue.arriving(who),
            "arriving_shown": ARRIVING_SHOWN,
            "can_resolve": who.can(Permission.ORDERS_WRITE),
        }
        return render(request, "reconciliation.html", context)

    def resolved_row(
        request: Request, study_uid: str, act: Callable[[Principal], ReadingState], done: str
    ) -> HTMLResponse:
        """The row after ``act``: what happened, or the error next to the study it concerns."""
        try:
            who = authorise(request, Permission.ORDERS_WRITE)
            act(who)
        except HTTPException as exc:
            who = authenticate(request)
            row = queue.row(who, study_uid)
            context = {
                "r": row,
                "uid": study_uid,
                "error": str(exc.detail),
                "can_resolve": who.can(Permission.ORDERS_WRITE),
            }
            return render(request, "reconciliation_row.html", context, exc.status_code)
        context = {"r": queue.row(who, study_uid), "uid": study_uid, "done": done}
        return render(request, "reconciliation_row.html", context)

    @api.post(
        "/reconciliation/{study_uid}/assign", response_class=HTMLResponse, include_in_schema=False
    )
    def page_assign(
        request: Request,
        study_uid: str,
        accession_number: Annotated[str, Form(max_length=16)] = "",
    ) -> HTMLResponse:
        accession = accession_number.strip()

        def act(who: Principal) -> ReadingState:
            if not accession:
                raise HTTPException(422, "pick the order this study answers")
            return assign_order(request, who, study_uid, accession)

        done = f"Matched to order {accession}: it goes to reading once complete and stable."
        return resolved_row(request, study_uid, act, done)

    @api.post(
        "/reconciliation/{study_uid}/release", response_class=HTMLResponse, include_in_schema=False
    )
    def page_release(
        request: Request, study_uid: str, priority: Annotated[Tier, Form()] = "routine"
    ) -> HTMLResponse:
        done = f"Sent to reading as it is ({priority}) once stable."
        return resolved_row(
            request, study_uid, lambda who: release_as(request, who, study_uid, priority), done
        )

    return api
