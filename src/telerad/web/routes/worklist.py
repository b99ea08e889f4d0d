"""The radiologist's reading worklist over HTTP (the supervisor's board: board.py).

API (JSON): ``GET /api/worklist`` (the caller's own queue: what they hold, most
urgent first, then the pull pool they may claim, each with the patient, the
reason for the exam and the ordering physician), ``POST
/api/worklist/{uid}/claim|release|complete``, ``GET /api/worklist/{uid}/explain``,
``GET /api/worklist/context/{uid}`` (what the viewer shows above the images).
Pages (Jinja2 + htmx): ``/worklist``, whose rows refresh by polling a small HTML
fragment; one click on a study opens it in the viewer and claims it
(``POST /worklist/{uid}/open``).

Who sees what: a radiologist sees their own queue; a study is never shown,
explained or acted on outside the caller's facilities (:meth:`Principal.sees`) —
such a study answers 404, as an unknown one does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from telerad import config
from telerad.domain.identity import Permission, Principal, Role
from telerad.services.platform import Platform
from telerad.services.reading import ReadingService, WorklistError
from telerad.services.reading_context import ReadingContext
from telerad.web.auth import authenticate
from telerad.web.routes.ui import TEMPLATES, person_name
from telerad.web.routes.worklist_common import (
    POLL_SECONDS,
    SORTS,
    Row,
    View,
    facility_names,
    item_json,
    reader_of,
    rows_of,
    time_left,
    view_of,
    viewer_url,
    visible_item,
)
from telerad.workflow.model import Priority

Action = Literal["claim", "release", "complete"]
#: What "Mark read" says until reports are written (the reporting flow replaces it).
NO_REPORT = (
    "telerad does not write reports yet: marking read only takes the study off your "
    "worklist and records the read time; no report is sent to the facility."
)


def vendor_dir() -> Path | None:
    """vendor/web (Chart.js, htmx; `make install` fetches them) of the checkout or the cwd."""
    return config.vendor_dir("web", "htmx.min.js")


def router(platform: Platform) -> APIRouter:
    r = APIRouter(tags=["worklist"])
    reading = platform.reading
    context = ReadingContext(platform.archive, platform.index, platform.orders)

    def my_rows(who: Principal) -> list[Row]:
        assert who.user_id is not None
        items = [i for i in reading.worklist_of(who.user_id) if who.sees(i.study.facility_id)]
        return rows_of(context, who, items)

    # -- the radiologist's queue ----------------------------------------------------------
    @r.get("/api/worklist")
    def my_worklist(request: Request) -> dict[str, Any]:
        """The caller's queue: assigned studies first (most urgent first), then the pull pool."""
        who = reader_of(request, platform)
        now = reading.clock()
        names = facility_names(platform)
        return {
            "reader_id": who.user_id,
            "items": [
                item_json(row, now, names.get(row.item.study.facility_id, ""))
                for row in my_rows(who)
            ],
        }

    def act(who: Principal, uid: str, action: Action) -> str:
        """Do ``action``; what happened, in words."""
        assert who.user_id is not None
        visible_item(reading, who, uid)
        try:
            if action == "claim":
                reading.claim(uid, who.user_id)
                return "Opened: it is yours until you finish or release it."
            if action == "complete":
                reading.complete(uid, who.user_id)
                return "Marked read. " + NO_REPORT
            handover = reading.release(uid, who.user_id)
        except WorklistError as exc:
            raise HTTPException(409, str(exc)) from exc
        if handover.holder == who.user_id:
            return f"Not handed on: {handover.why} It stays with you."
        if handover.holder is None:
            return "Released: back on the worklist until a reader may take it."
        item = reading.item(uid)
        return f"Handed on to {item.holder_name if item else 'another reader'}."

    @r.post("/api/worklist/{uid}/{action}")
    def worklist_action(request: Request, uid: str, action: Action) -> dict[str, Any]:
        """Claim (open) a study, release it to another reader, or mark it read."""
        who = reader_of(request, platform)
        message = act(who, uid, action)
        now = reading.clock()
        item = reading.item(uid)
        return {
            "study_uid": uid,
            "action": action,
            "message": message,
            "item": item_json(rows_of(context, who, [item])[0], now) if item else None,
        }

    @r.get("/api/worklist/{uid}/explain")
    def explain(request: Request, uid: str) -> dict[str, Any]:
        """Why the study is where it is: its assignment history with the explanations."""
        who = authenticate(request)
        if not (who.can(Permission.READING) or who.can(Permission.ADMIN)):
            raise HTTPException(403, "this account may not see the worklist")
        found = reading.explain(uid)
        if found is None or not who.sees(found.facility_id, uid):
            raise HTTPException(404, f"study {uid} has never been on the worklist")
        now = reading.clock()
        return {
            "study_uid": uid,
            "state": found.state,
            "item": item_json(Row(found.item, None), now) if found.item else None,
            "why_waiting": found.now,
            "history": [
                {
                    "kind": e.kind,
                    "at": e.at.isoformat(),
                    "reader_id": e.reader_id,
                    "to_reader_id": e.to_reader,
                    "detail": e.detail,
                }
                for e in found.history
            ],
        }

    @r.get("/api/worklist/context/{uid}")
    def study_context(request: Request, uid: str) -> dict[str, Any]:
        """What the viewer shows above the images: the patient, the order, the facility
        and, for a radiologist, where the study stands on their worklist."""
        who = authenticate(request)
        found = context.of(who, [uid]).get(uid)
        if found is None:
            raise HTTPException(404, f"no study {uid}")
        item = reading.item(uid)
        mine = item is not None and who.user_id is not None and item.holder == who.user_id
        return {
            "study_uid": uid,
            "patient_name": person_name(found.patient_name),
            "age": found.age,
            "sex": found.sex,
            "accession": found.accession,
            "description": found.description,
            "reason_for_exam": found.reason,
            "has_order": found.has_order,
            "ordering_physician": person_name(found.ordering_physician),
            "facility": found.facility,
            "on_worklist": item is not None,
            "priority": item.study.priority.value if item else None,
            "time_left": time_left(item.time_left) if item else None,
            "status": item.status if item else None,
            "yours": mine,
            "state": item.state if item else None,
            "session": who.method == "session",
        }

    # -- pages --------------------------------------------------------------------------
    def page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request, name, {"poll": POLL_SECONDS, **ctx}, status_code=status
        )

    def rows_context(
        who: Principal, view: View, notice: str = "", error: str = ""
    ) -> dict[str, Any]:
        rows = my_rows(who)
        facilities = sorted(
            {(r.item.study.facility_id, r.context.facility if r.context else "") for r in rows},
            key=lambda f: f[1],
        )
        return {
            "who": who,
            "rows": view.arrange(rows),
            "total": len(rows),
            "view": view,
            "query": view.query(),
            "facilities": facilities,
            "priorities": [p.value for p in Priority],
            "modalities": sorted({r.item.study.modality for r in rows}),
            "sorts": SORTS,
            "time_left": time_left,
            "viewer_url": viewer_url,
            "person_name": person_name,
            "no_report": NO_REPORT,
            "notice": notice,
            "error": error,
        }

    @r.get("/worklist", response_class=HTMLResponse, include_in_schema=False)
    def worklist_page(request: Request, view: Annotated[View, Depends(view_of)]) -> HTMLResponse:
        who = reader_of(request, platform)
        return page(request, "worklist.html", rows_context(who, view))

    @r.get("/worklist/rows", response_class=HTMLResponse, include_in_schema=False)
    def worklist_rows(request: Request, view: Annotated[View, Depends(view_of)]) -> HTMLResponse:
        who = reader_of(request, platform)
        return page(request, "worklist_rows.html", rows_context(who, view))

    @r.post("/worklist/{uid}/open", include_in_schema=False, response_model=None)
    def open_study(request: Request, uid: str) -> Response:
        """One click: claim the study and open it on the reading screen (viewer and report)."""
        who = reader_of(request, platform)
        item = visible_item(reading, who, uid)
        if not (item.holder == who.user_id and item.opened):
            try:
                act(who, uid, "claim")
            except HTTPException as exc:
                ctx = rows_context(who, View(), error=str(exc.detail))
                return page(request, "worklist.html", ctx, status=exc.status_code)
        return RedirectResponse(f"/reading/{uid}", status_code=303)

    @r.post("/worklist/{uid}/{action}", response_class=HTMLResponse, include_in_schema=False)
    def worklist_page_action(request: Request, uid: str, action: Action) -> HTMLResponse:
        who = reader_of(request, platform)
        try:
            notice = act(who, uid, action)
        except HTTPException as exc:
            return page(
                request, "worklist_rows.html", rows_context(who, View(), error=str(exc.detail))
            )
        return page(request, "worklist_rows.html", rows_context(who, View(), notice=notice))

    @r.get("/static/vendor/{name}", include_in_schema=False)
    def vendored(name: str) -> FileResponse:
        """Chart.js and htmx as published on the npm registry (fetched by `make install`)."""
        folder = vendor_dir()
        if folder is None or name not in {p.name for p in folder.glob("*.js") if p.is_file()}:
            raise HTTPException(404, "no such file (run make install)")
        return FileResponse(
            folder / name,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return r


class ReaderActivity:
    """Notes radiologists' bearer-token use (any API) so they count as signed in.

    Pure ASGI: it reads the principal the request authenticated as, after the
    response; at most every 30 s per radiologist it writes the use down in the
    database (off the event loop), where every process's worklist sees it.
    """

    def __init__(self, app: ASGIApp, reading: ReadingService) -> None:
        self.app = app
        self.reading = reading

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] != "http":
            return
        who = scope.get("state", {}).get("principal")
        if (
            isinstance(who, Principal)
            and who.method == "token"
            and who.role is Role.RADIOLOGIST
            and who.user_id is not None
            and self.reading.token_note_due(who.user_id)
        ):
            await run_in_threadpool(self.reading.note_token, who.user_id)
