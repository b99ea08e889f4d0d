"""The reading worklist over HTTP: a radiologist's queue, the supervisor's board, TAT/SLA.

API (JSON): ``GET /api/worklist`` (the caller's own queue: what they hold, most
urgent first, then the pull pool they may claim), ``POST
/api/worklist/{uid}/claim|release|complete``, ``GET /api/worklist/board``,
``GET /api/worklist/{uid}/explain``, ``GET /api/stats/tat``. Pages (Jinja2 +
htmx, Chart.js): ``/worklist`` and ``/board``, whose rows refresh by polling
small HTML fragments.

Who sees what: a radiologist sees their own queue; the board and the statistics
are for network admins (every facility) and facility admins (their facility);
a study is never shown, explained or acted on outside the caller's facilities
(:meth:`Principal.sees`) — such a study answers 404, as an unknown one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from telerad.bootstrap import Platform
from telerad.domain.identity import Permission, Principal, Role
from telerad.domain.model import Level
from telerad.domain.query import Query as StudyQuery
from telerad.domain.query import UidList
from telerad.services.reading import Item, ReadingService, WorklistError
from telerad.web.auth import authenticate
from telerad.web.routes.ui import TEMPLATES, person_name

#: How often the pages refresh their rows, in seconds.
POLL_SECONDS = 5
SUPERVISORS = frozenset({Role.NETWORK_ADMIN, Role.FACILITY_ADMIN})
Action = Literal["claim", "release", "complete"]


def vendor_dir() -> Path | None:
    """vendor/web (Chart.js, htmx; `make install` fetches them) of the checkout or the cwd."""
    for base in (Path(__file__).resolve().parents[4], Path.cwd()):
        candidate = base / "vendor" / "web"
        if candidate.is_dir():
            return candidate
    return None


def viewer_url(uid: str) -> str:
    return "/viewer?" + urlencode({"StudyInstanceUIDs": uid})


def time_left(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    late = minutes < 0
    span = abs(minutes)
    text = f"{span / 60:.1f} h" if span >= 120 else f"{span:.0f} min"
    return f"{text} overdue" if late else text


# -- who may do what ---------------------------------------------------------------------


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


def _visible_item(reading: ReadingService, who: Principal, uid: str) -> Item:
    item = reading.item(uid)
    if item is None or not who.sees(item.study.facility_id, uid):
        raise HTTPException(404, f"study {uid} is not on your worklist")
    return item


# -- what is shown ------------------------------------------------------------------------


@dataclass(frozen=True)
class Details:
    patient: str
    accession: str
    description: str


def _details(platform: Platform, who: Principal, uids: list[str]) -> dict[str, Details]:
    """Patient name, accession and description of the studies, within the caller's scope."""
    if not uids:
        return {}
    found = platform.archive.search(
        StudyQuery(
            Level.STUDY,
            matches={"StudyInstanceUID": UidList(tuple(uids))},
            returns={"StudyDescription", "AccessionNumber", "PatientName"},
            facility_ids=who.facility_ids,
            limit=len(uids),
            granted_studies=who.break_glass,
        )
    )
    return {
        str(s["StudyInstanceUID"]): Details(
            person_name(s.get("PatientName")),
            str(s.get("AccessionNumber") or ""),
            str(s.get("StudyDescription") or ""),
        )
        for s in found
    }


def item_json(item: Item, now: datetime, facility: str = "") -> dict[str, Any]:
    s = item.study
    return {
        "study_uid": s.uid,
        "facility_id": s.facility_id,
        "facility": facility,
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
        "reason": item.why,
        "viewer_url": viewer_url(s.uid),
    }


def _names(platform: Platform) -> dict[int, str]:
    return {f.id: f.name for f in platform.index.list_facilities()}


def router(platform: Platform) -> APIRouter:
    r = APIRouter(tags=["worklist"])
    reading = platform.reading

    # -- the radiologist's queue ----------------------------------------------------------
    @r.get("/api/worklist")
    def my_worklist(request: Request) -> dict[str, Any]:
        """The caller's queue: assigned studies first (most urgent first), then the pull pool."""
        who = reader_of(request, platform)
        assert who.user_id is not None
        now = reading.clock()
        names = _names(platform)
        items = [i for i in reading.worklist_of(who.user_id, now) if who.sees(i.study.facility_id)]
        return {
            "reader_id": who.user_id,
            "items": [item_json(i, now, names.get(i.study.facility_id, "")) for i in items],
        }

    def act(who: Principal, uid: str, action: Action) -> Item | None:
        assert who.user_id is not None
        _visible_item(reading, who, uid)
        try:
            if action == "claim":
                reading.claim(uid, who.user_id)
            elif action == "release":
                reading.release(uid, who.user_id)
            else:
                reading.complete(uid, who.user_id)
        except WorklistError as exc:
            raise HTTPException(409, str(exc)) from exc
        return reading.item(uid)

    @r.post("/api/worklist/{uid}/{action}")
    def worklist_action(request: Request, uid: str, action: Action) -> dict[str, Any]:
        """Claim (open) a study, release it to another reader, or mark it read."""
        who = reader_of(request, platform)
        item = act(who, uid, action)
        now = reading.clock()
        return {
            "study_uid": uid,
            "action": action,
            "item": item_json(item, now) if item is not None else None,
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
            "item": item_json(found.item, now) if found.item else None,
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

    # -- the supervisor's board and the statistics ---------------------------------------
    @r.get("/api/worklist/board")
    def board(request: Request) -> dict[str, Any]:
        """Open studies by priority and deadline, with what is at risk; the readers' load."""
        who = supervisor_of(request)
        now = reading.clock()
        b = reading.board(who.facility_ids, now)
        names = _names(platform)
        return {
            "network": b.network,
            "rules_error": b.rules_error,
            "items": [item_json(i, now, names.get(i.study.facility_id, "")) for i in b.items],
            "readers": [
                {
                    "reader_id": x.user_id,
                    "name": x.name,
                    "signed_in": x.signed_in,
                    "on_shift": x.on_shift,
                    "studies": x.studies,
                    "rvu": round(x.rvu, 2),
                    "cap_rvu": x.cap,
                }
                for x in b.readers
            ],
        }

    @r.get("/api/stats/tat")
    def tat(
        request: Request,
        facility: Annotated[
            int | None, Query(description="Facility id; all you see when unset")
        ] = None,
        days: Annotated[int, Query(ge=1, le=366)] = 30,
    ) -> dict[str, Any]:
        """Turnaround percentiles per priority and SLA compliance per facility."""
        who = supervisor_of(request)
        return tat_stats(platform, who, facility, days)

    # -- pages --------------------------------------------------------------------------
    def page(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, name, {"poll": POLL_SECONDS, **context})

    def rows_context(who: Principal, error: str = "") -> dict[str, Any]:
        assert who.user_id is not None
        now = reading.clock()
        items = [i for i in reading.worklist_of(who.user_id, now) if who.sees(i.study.facility_id)]
        return {
            "who": who,
            "items": items,
            "details": _details(platform, who, [i.study.uid for i in items]),
            "facilities": _names(platform),
            "time_left": time_left,
            "viewer_url": viewer_url,
            "error": error,
        }

    def rows(request: Request, who: Principal, error: str = "") -> HTMLResponse:
        return page(request, "worklist_rows.html", rows_context(who, error))

    @r.get("/worklist", response_class=HTMLResponse, include_in_schema=False)
    def worklist_page(request: Request) -> HTMLResponse:
        who = reader_of(request, platform)
        return page(request, "worklist.html", rows_context(who))

    @r.get("/worklist/rows", response_class=HTMLResponse, include_in_schema=False)
    def worklist_rows(request: Request) -> HTMLResponse:
        return rows(request, reader_of(request, platform))

    @r.post("/worklist/{uid}/{action}", response_class=HTMLResponse, include_in_schema=False)
    def worklist_page_action(request: Request, uid: str, action: Action) -> HTMLResponse:
        who = reader_of(request, platform)
        try:
            act(who, uid, action)
        except HTTPException as exc:
            return rows(request, who, str(exc.detail))
        return rows(request, who)

    @r.get("/board", response_class=HTMLResponse, include_in_schema=False)
    def board_page(request: Request) -> HTMLResponse:
        who = supervisor_of(request)
        names = _names(platform)
        facilities = sorted(
            ((fid, n) for fid, n in names.items() if who.sees(fid)), key=lambda x: x[1]
        )
        return page(request, "board.html", {"who": who, "facilities": facilities})

    @r.get("/board/rows", response_class=HTMLResponse, include_in_schema=False)
    def board_rows(request: Request) -> HTMLResponse:
        who = supervisor_of(request)
        now = reading.clock()
        b = reading.board(who.facility_ids, now)
        return page(
            request,
            "board_rows.html",
            {
                "board": b,
                "facilities": _names(platform),
                "time_left": time_left,
                "viewer_url": viewer_url,
            },
        )

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


def tat_stats(
    platform: Platform, who: Principal, facility: int | None, days: int
) -> dict[str, Any]:
    if facility is not None and not who.sees(facility):
        raise HTTPException(404, f"no facility {facility}")
    scope = frozenset({facility}) if facility is not None else who.facility_ids
    since = platform.reading.clock() - timedelta(days=days)
    tiers, facilities = platform.reading.turnaround(scope, since)
    names = _names(platform)
    return {
        "days": days,
        "facility_id": facility,
        "tat_minutes": [
            {
                "priority": t.priority.value,
                "reads": t.count,
                "p50": round(t.minutes[50], 1),
                "p90": round(t.minutes[90], 1),
                "p95": round(t.minutes[95], 1),
                "sla_met": t.met,
            }
            for t in tiers
        ],
        "sla": [
            {
                "facility_id": f.facility_id,
                "facility": names.get(f.facility_id, str(f.facility_id)),
                "reads": f.count,
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


class ReaderActivity:
    """Notes radiologists' bearer-token use (any API) so they count as signed in.

    Pure ASGI: it reads the principal the request authenticated as, after the
    response, and costs a dictionary write; the worklist picks it up at its next tick.
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
        ):
            self.reading.note_token(who.user_id)
