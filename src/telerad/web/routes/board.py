"""The supervisor's board over HTTP: live alerts, the queue, the readers, TAT/SLA.

API (JSON): ``GET /api/worklist/board`` (open studies by priority and deadline,
the live alerts, the readers' load), ``POST /api/worklist/alerts/{id}/acknowledge``,
``GET /api/worklist/{uid}/candidates`` (every reader, and why each may not read the
study), ``POST /api/worklist/{uid}/assign`` (give it to an eligible reader),
``GET /api/stats/tat``. Page: ``/board``, whose alerts and rows refresh by polling
small HTML fragments (not while a supervisor has an assignment form or an
explanation open).

The board and the statistics are for network admins (every facility) and
facility admins (their facility); a study outside the caller's facilities
answers 404, as an unknown one does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from telerad.domain.identity import Principal
from telerad.domain.reading_entries import AlertRow
from telerad.services.access_audit import Actor
from telerad.services.platform import Platform
from telerad.services.reading import Board, WorklistError
from telerad.services.reading_context import ReadingContext
from telerad.web.auth import client_address
from telerad.web.routes.ui import TEMPLATES
from telerad.web.routes.worklist_common import (
    POLL_SECONDS,
    SORTS,
    Row,
    View,
    facility_names,
    item_json,
    rows_of,
    supervisor_of,
    time_left,
    view_of,
    viewer_url,
    visible_item,
)
from telerad.workflow.model import Priority


class AssignRequest(BaseModel):
    reader_id: int = Field(description="the radiologist who gets the study")


def _alert_json(alert: AlertRow, row: Row | None) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind.value,
        "study_uid": alert.study_uid,
        "facility_id": alert.facility_id,
        "priority": alert.priority.value,
        "raised_at": alert.raised_at.isoformat(),
        "detail": alert.detail,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": alert.acknowledged_by,
        "patient_name": row.patient if row else "",
        "accession": row.context.accession if row and row.context else "",
    }


def router(platform: Platform) -> APIRouter:
    r = APIRouter(tags=["worklist"])
    reading = platform.reading
    context = ReadingContext(platform.archive, platform.index, platform.orders)

    def board_of(who: Principal) -> tuple[Board, list[Row], dict[str, Row]]:
        b = reading.board(who.facility_ids)
        rows = rows_of(context, who, b.items)
        return b, rows, {row.item.study.uid: row for row in rows}

    def actor(request: Request, who: Principal) -> Actor:
        return Actor.of(who, client_address(request))

    @r.get("/api/worklist/board")
    def board(request: Request) -> dict[str, Any]:
        """Open studies by priority and deadline, with what is at risk; the live alerts;
        the readers' load."""
        who = supervisor_of(request)
        now = reading.clock()
        b, rows, by_uid = board_of(who)
        names = facility_names(platform)
        return {
            "network": b.network,
            "rules_error": b.rules_error,
            "alerts": [_alert_json(a, by_uid.get(a.study_uid)) for a in b.alerts],
            "items": [
                item_json(row, now, names.get(row.item.study.facility_id, "")) for row in rows
            ],
            "readers": [
                {
                    "reader_id": x.user_id,
                    "name": x.name,
                    "signed_in": x.signed_in,
                    "away": x.away,
                    "on_shift": x.on_shift,
                    "studies": x.studies,
                    "rvu": round(x.rvu, 2),
                    "cap_rvu": x.cap,
                }
                for x in b.readers
            ],
        }

    def acknowledge(request: Request, alert_id: int) -> AlertRow:
        who = supervisor_of(request)
        found = reading.acknowledge(
            alert_id, actor(request, who), who.user_id or 0, who.facility_ids
        )
        if found is None:
            raise HTTPException(404, f"no live alert {alert_id}")
        return found

    @r.post("/api/worklist/alerts/{alert_id}/acknowledge")
    def acknowledge_alert(request: Request, alert_id: int) -> dict[str, Any]:
        """Record that the supervisor saw the alert (audited); it stays until its cause goes."""
        return _alert_json(acknowledge(request, alert_id), None)

    def candidates_of(request: Request, uid: str) -> tuple[Principal, list[Any]]:
        who = supervisor_of(request)
        visible_item(reading, who, uid)
        return who, [c for c in reading.candidates(uid) if who.facility_ids is None or c.eligible]

    @r.get("/api/worklist/{uid}/candidates")
    def candidates(request: Request, uid: str) -> dict[str, Any]:
        """Every reader on the roster (a facility admin: only the eligible ones) and why
        each may not read the study now."""
        _, found = candidates_of(request, uid)
        return {
            "study_uid": uid,
            "readers": [
                {
                    "reader_id": c.user_id,
                    "name": c.name,
                    "eligible": c.eligible,
                    "reasons": list(c.reasons),
                    "rvu": round(c.rvu, 2),
                    "cap_rvu": c.cap,
                }
                for c in found
            ],
        }

    def assign(request: Request, uid: str, reader_id: int) -> Row:
        who = supervisor_of(request)
        visible_item(reading, who, uid)
        try:
            item = reading.assign_by_hand(uid, reader_id, actor(request, who))
        except WorklistError as exc:
            raise HTTPException(409, str(exc)) from exc
        return rows_of(context, who, [item])[0]

    @r.post("/api/worklist/{uid}/assign")
    def assign_study(request: Request, uid: str, body: AssignRequest) -> dict[str, Any]:
        """Give the study to an eligible reader (audited); 409 naming why when they may not."""
        return item_json(assign(request, uid, body.reader_id), reading.clock())

    @r.get("/api/stats/tat")
    def tat(
        request: Request,
        facility: Annotated[
            int | None, Query(description="Facility id; all you see when unset")
        ] = None,
        days: Annotated[int, Query(ge=1, le=366)] = 30,
    ) -> dict[str, Any]:
        """Turnaround percentiles per priority and SLA compliance per facility; open
        studies already past their deadline count as missed."""
        who = supervisor_of(request)
        return tat_stats(platform, who, facility, days)

    # -- pages --------------------------------------------------------------------------
    def page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request, name, {"poll": POLL_SECONDS, **ctx}, status_code=status
        )

    def rows_page(
        request: Request,
        who: Principal,
        notice: str = "",
        error: str = "",
        view: View | None = None,
    ) -> HTMLResponse:
        b, rows, by_uid = board_of(who)
        view = view or View()
        ctx = {
            "board": b,
            "rows": view.arrange(rows),
            "total": len(rows),
            "by_uid": by_uid,
            "time_left": time_left,
            "viewer_url": viewer_url,
            "notice": notice,
            "error": error,
        }
        return page(request, "board_rows.html", ctx)

    @r.get("/board", response_class=HTMLResponse, include_in_schema=False)
    def board_page(request: Request) -> HTMLResponse:
        who = supervisor_of(request)
        names = facility_names(platform)
        facilities = sorted(
            ((fid, n) for fid, n in names.items() if who.sees(fid)), key=lambda x: x[1]
        )
        ctx = {
            "who": who,
            "facilities": facilities,
            "priorities": [p.value for p in Priority],
            "modalities": sorted({i.study.modality for i in reading.board(who.facility_ids).items}),
            "sorts": SORTS,
            "view": View(),
        }
        return page(request, "board.html", ctx)

    @r.get("/board/rows", response_class=HTMLResponse, include_in_schema=False)
    def board_rows(request: Request, view: Annotated[View, Depends(view_of)]) -> HTMLResponse:
        return rows_page(request, supervisor_of(request), view=view)

    @r.post(
        "/board/alerts/{alert_id}/acknowledge", response_class=HTMLResponse, include_in_schema=False
    )
    def board_acknowledge(request: Request, alert_id: int) -> HTMLResponse:
        who = supervisor_of(request)
        try:
            acknowledge(request, alert_id)
        except HTTPException as exc:
            return rows_page(request, who, error=str(exc.detail))
        return rows_page(request, who, notice="Alert acknowledged.")

    @r.get("/board/{uid}/assign", response_class=HTMLResponse, include_in_schema=False)
    def board_assign_form(request: Request, uid: str) -> HTMLResponse:
        _, found = candidates_of(request, uid)
        return page(request, "board_assign.html", {"uid": uid, "candidates": found})

    @r.post("/board/{uid}/assign", response_class=HTMLResponse, include_in_schema=False)
    def board_assign(request: Request, uid: str, reader_id: Annotated[int, Form()]) -> HTMLResponse:
        who = supervisor_of(request)
        try:
            row = assign(request, uid, reader_id)
        except HTTPException as exc:
            return rows_page(request, who, error=str(exc.detail))
        return rows_page(request, who, notice=f"Assigned to {row.item.holder_name}.")

    return r


def tat_stats(
    platform: Platform, who: Principal, facility: int | None, days: int
) -> dict[str, Any]:
    if facility is not None and not who.sees(facility):
        raise HTTPException(404, f"no facility {facility}")
    scope = frozenset({facility}) if facility is not None else who.facility_ids
    since = platform.reading.clock() - timedelta(days=days)
    tiers, facilities = platform.reading.turnaround(scope, since)
    names = facility_names(platform)

    def minutes(values: dict[int, float], p: int) -> float | None:
        return round(values[p], 1) if p in values else None

    return {
        "days": days,
        "facility_id": facility,
        "tat_minutes": [
            {
                "priority": t.priority.value,
                "reads": t.count,
                "open_breached": t.open_breaches,
                "p50": minutes(t.minutes, 50),
                "p90": minutes(t.minutes, 90),
                "p95": minutes(t.minutes, 95),
                "sla_met": t.met,
            }
            for t in tiers
        ],
        "sla": [
            {
                "facility_id": f.facility_id,
                "facility": names.get(f.facility_id, str(f.facility_id)),
                "reads": f.count,
                "open_breached": f.open_breaches,
                "met": f.met,
                "compliance": round(f.compliance, 4),
                "by_priority": {
                    tier.value: {"met": met, "reads": count}
                    for tier, (met, count) in f.by_tier.items()
                },
            }
            for f in facilities
        ],
    }
