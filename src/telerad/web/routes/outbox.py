"""Results delivery over REST and as a page: the outbox and its dead letters.

``GET /api/outbox?state=&facility=&report=`` lists messages (newest first; no
report text, the payload only in a message's own view), ``GET /api/outbox/{id}``
is one message with every attempt, ``POST /api/outbox/{id}/retry`` sends a dead
letter again, ``GET /api/reports/{id}/deliveries`` is what was sent for a report,
where, when, and what came back. Administrators (``admin``) of the facilities they
see; radiologists (``reading``) may trace their facilities' reports' deliveries.
A message of another facility answers exactly like one that does not exist.
``/outbox`` is the page (dead letters first, each with its retry button).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from telerad.domain.identity import Permission, Principal
from telerad.domain.outbox import Channel, MessageState, OutboxError
from telerad.services.access_audit import Actor
from telerad.services.outbox import Attempt, OutboxFilter, OutboxMessage
from telerad.services.platform import Platform
from telerad.services.results import NotFound, Trace
from telerad.web.auth import authenticate, authorise, client_address
from telerad.web.routes.ui import TEMPLATES


class AttemptOut(BaseModel):
    at: datetime
    destination: str
    outcome: str = Field(description="accepted, refused or failed")
    detail: str = Field(description="the answer's texts (MSA-3, ERR) or what went wrong")
    answer: str = Field(description="the peer's answer as received (the ACK), if any")

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls(
            at=a.at,
            destination=a.destination,
            outcome=a.outcome.value,
            detail=a.detail,
            answer=a.answer,
        )


class MessageOut(BaseModel):
    id: int
    facility_id: int
    report_id: int
    report_version: int
    channel: str
    message_id: str = Field(description="the control ID on the wire (HL7 MSH-10)")
    state: str = Field(description="pending, sent or dead")
    attempts: int
    refusals: int
    created_at: datetime
    queued_at: datetime
    next_at: datetime = Field(description="when it is (or was) due")
    sent_at: datetime | None
    destination: str
    last_error: str
    answer: str

    @classmethod
    def of(cls, m: OutboxMessage) -> MessageOut:
        return cls(
            id=m.id,
            facility_id=m.facility_id,
            report_id=m.report_id,
            report_version=m.report_version,
            channel=m.channel.value,
            message_id=m.message_id,
            state=m.state.value,
            attempts=m.attempts,
            refusals=m.refusals,
            created_at=m.created_at,
            queued_at=m.queued_at,
            next_at=m.next_at,
            sent_at=m.sent_at,
            destination=m.destination,
            last_error=m.last_error,
            answer=m.answer,
        )


class TraceOut(BaseModel):
    message: MessageOut
    payload: str = Field(description="the message as sent (HL7 ER7)")
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, t: Trace) -> TraceOut:
        return cls(
            message=MessageOut.of(t.message),
            payload=t.message.payload,
            attempts=[AttemptOut.of(a) for a in t.attempts],
        )


StateQuery = Annotated[list[MessageState] | None, Query(description="pending, sent, dead")]


def router(platform: Platform) -> APIRouter:
    api = APIRouter(tags=["results"])
    results = platform.results

    def actor(request: Request, who: Principal) -> Actor:
        return Actor.of(who, client_address(request))

    def listing(
        request: Request,
        who: Principal,
        state: list[MessageState] | None,
        facility: int | None,
        report: int | None,
        limit: int,
    ) -> list[OutboxMessage]:
        return results.messages(
            actor(request, who),
            who.facility_ids,
            OutboxFilter(
                frozenset(state or ()),
                frozenset({facility}) if facility is not None else None,
                report,
                limit=limit,
            ),
        )

    @api.get("/api/outbox", response_model=list[MessageOut])
    def outbox(
        request: Request,
        state: StateQuery = None,
        facility: Annotated[int | None, Query(description="facility id")] = None,
        report: Annotated[int | None, Query(description="report id")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[MessageOut]:
        """Outbox messages of the facilities the caller administers, newest first."""
        who = authorise(request, Permission.ADMIN)
        return [MessageOut.of(m) for m in listing(request, who, state, facility, report, limit)]

    @api.get("/api/outbox/{outbox_id}", response_model=TraceOut)
    def one(request: Request, outbox_id: int) -> TraceOut:
        """One message, as sent, with every attempt."""
        who = authorise(request, Permission.ADMIN)
        try:
            return TraceOut.of(results.trace(actor(request, who), who.facility_ids, outbox_id))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @api.post("/api/outbox/{outbox_id}/retry", response_model=MessageOut)
    def retry(request: Request, outbox_id: int) -> MessageOut:
        """Send a dead letter again (409 when the message is not a dead letter)."""
        who = authorise(request, Permission.ADMIN)
        try:
            return MessageOut.of(results.retry(actor(request, who), who.facility_ids, outbox_id))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except OutboxError as exc:
            raise HTTPException(409, str(exc)) from exc

    @api.get("/api/reports/{report_id}/deliveries", response_model=list[TraceOut])
    def deliveries(request: Request, report_id: int) -> list[TraceOut]:
        """What was queued for a report, oldest first: where it went, when, the answers."""
        who = authenticate(request)
        if not (who.can(Permission.ADMIN) or who.can(Permission.READING)):
            raise HTTPException(403, "this account may not do this (needs admin or reading)")
        traces = results.deliveries(actor(request, who), who.facility_ids, report_id)
        return [TraceOut.of(t) for t in traces]

    # -- the page ---------------------------------------------------------------------
    @api.get("/outbox", response_class=HTMLResponse, include_in_schema=False)
    def page(
        request: Request,
        state: Annotated[str, Query(max_length=8)] = "dead",
        done: Annotated[str, Query(max_length=200)] = "",
    ) -> HTMLResponse:
        who = authorise(request, Permission.ADMIN)
        states = [MessageState(state)] if state in {s.value for s in MessageState} else None
        rows = listing(request, who, states, None, None, 200)
        names = {f.id: f.name for f in platform.index.list_facilities()}
        context = {
            "who": who,
            "rows": rows,
            "state": state if states else "all",
            "states": [s.value for s in MessageState],
            "counts": results.counts(who.facility_ids),
            "names": names,
            "endpoints": results.endpoints_of(who.facility_ids),
            "done": done,
            "HL7": Channel.HL7,
        }
        return TEMPLATES.TemplateResponse(request, "outbox.html", context)

    @api.post("/outbox/{outbox_id}/retry", include_in_schema=False)
    def page_retry(
        request: Request, outbox_id: int, state: Annotated[str, Form(max_length=8)] = "dead"
    ) -> RedirectResponse:
        who = authorise(request, Permission.ADMIN)
        try:
            message = results.retry(actor(request, who), who.facility_ids, outbox_id)
            done = f"Message {message.id} ({message.message_id}) is queued again."
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except OutboxError as exc:
            done = str(exc)
        return RedirectResponse("/outbox?" + urlencode({"state": state, "done": done}), 303)

    return api
