"""The reading screen: the viewer and the report editor side by side (``/reading/{uid}``).

OHIF runs unmodified in its own frame (``/viewer?StudyInstanceUIDs=…``); the editor
beside it is a server-rendered form. Typing saves the draft by itself (htmx, a
second and a half after the last key), each save made on the version the page
holds, so a second window or a second radiologist cannot overwrite it unseen.
Signing opens a dialog asking for the password (and code), lists what the
pre-sign checks found with a place for each override's reason, and, finalising
another radiologist's preliminary, how the final differs. "Sign and next" opens
the next study on the worklist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from telerad.domain.identity import Permission, Principal
from telerad.domain.reports import ReportError, ReportStatus, VersionConflict
from telerad.services.platform import Platform
from telerad.services.reading_context import ReadingContext
from telerad.services.reading_desk import ReadingDesk
from telerad.services.reports import ChecksFailed, Forbidden, NotFound, Proof
from telerad.web.auth import authenticate, client_address
from telerad.web.routes.ui import TEMPLATES, dicom_date, person_name, viewer_url
from telerad.web.routes.viewer import ISOLATION_HEADERS
from telerad.web.routes.worklist_common import time_left

#: Form names of sections and fields: ``s.<section id>``, ``f.<field id>``.
SECTION, FIELD, OVERRIDE = "s.", "f.", "override."


def _content_of(form: Any) -> tuple[dict[str, str], dict[str, str]]:
    sections = {k[len(SECTION) :]: str(v) for k, v in form.multi_items() if k.startswith(SECTION)}
    fields: dict[str, str] = {}
    for k, v in form.multi_items():
        if k.startswith(FIELD):  # a multiple choice comes as several values: one text
            key = k[len(FIELD) :]
            fields[key] = f"{fields[key]}; {v}" if fields.get(key) else str(v)
    return sections, fields


def router(platform: Platform) -> APIRouter:  # noqa: C901 - one closure per route
    r = APIRouter(include_in_schema=False)
    reports = platform.reports
    desk = ReadingDesk(
        reports, ReadingContext(platform.archive, platform.index, platform.orders), platform.reading
    )

    def who_reads(request: Request) -> Principal:
        who = authenticate(request)
        if not (who.can(Permission.READING) or who.can(Permission.READ)):
            raise HTTPException(403, "this account may not see studies")
        return who

    def page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
        response = TEMPLATES.TemplateResponse(request, name, ctx, status_code=status)
        response.headers.update(ISOLATION_HEADERS)  # the viewer's frame needs them too
        return response

    @r.get("/reading/{uid}", response_class=HTMLResponse)
    def reading_page(request: Request, uid: str, compare: str = "") -> HTMLResponse:
        who = who_reads(request)
        try:
            found = desk.open(who, uid, client_address(request))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        studies = uid + (f",{compare}" if compare else "")
        return page(
            request,
            "reading.html",
            {
                "who": who,
                "desk": found,
                "viewer_src": viewer_url(studies),
                "person_name": person_name,
                "dicom_date": dicom_date,
                "time_left": time_left,
                "preliminary": found.report is not None
                and found.report.status is ReportStatus.PRELIMINARY,
                "SECTION": SECTION,
                "FIELD": FIELD,
            },
        )

    @r.post("/reading/{uid}/save", response_class=HTMLResponse)
    async def save(request: Request, uid: str) -> HTMLResponse:
        who = who_reads(request)
        form = await request.form()
        sections, fields = _content_of(form)
        report_id, version = int(str(form.get("report", 0))), int(str(form.get("version", 0)))
        template_id = str(form.get("template_id", ""))

        def work() -> tuple[int, bool]:
            content = reports.compose(who, report_id, sections, fields, template_id)
            saved = reports.save(who, report_id, content, version, client_address(request))
            before = saved.versions[-2].content.template_id
            return saved.version, before != saved.content.template_id

        error, switched = "", False
        try:
            version, switched = await run_in_threadpool(work)
        except VersionConflict as exc:
            error = (
                f"Not saved: {exc}. Reload to see the current version (your text is kept below)."
            )
        except (Forbidden, NotFound, ReportError) as exc:
            error = f"Not saved: {exc}"
        findings = []
        if not error:
            findings = await run_in_threadpool(reports.checks, who, report_id)
        ctx = {"version": version, "error": error, "findings": findings, "saved": not error}
        response = TEMPLATES.TemplateResponse(request, "reading_status.html", ctx)
        if switched:
            response.headers["HX-Refresh"] = "true"  # another template: its form
        return response

    @r.post("/reading/{uid}/sign", response_class=HTMLResponse, response_model=None)
    async def sign(request: Request, uid: str) -> Response:
        who = who_reads(request)
        form = await request.form()
        report_id, version = int(str(form.get("report", 0))), int(str(form.get("version", 0)))
        final = form.get("final", "1") == "1"
        password, code = str(form.get("password", "")), str(form.get("code", ""))
        proof = Proof(password, code or None, client_address(request)) if password else None
        overrides = {
            k[len(OVERRIDE) :]: str(v) for k, v in form.multi_items() if k.startswith(OVERRIDE)
        }
        difference = str(form.get("difference", ""))
        then_next = form.get("next") == "1"

        def work() -> str:
            reports.sign(who, report_id, version, final, proof, overrides, difference)
            following = desk.next_study(who, uid) if then_next else None
            return f"/reading/{following}" if following else f"/reading/{uid}"

        ctx: dict[str, Any] = {"findings": [], "error": "", "overrides": overrides}
        try:
            target = await run_in_threadpool(work)
        except ChecksFailed as exc:
            ctx["findings"] = exc.findings
            ctx["error"] = "The checks found something: fix it, or give the reason to go past it."
        except VersionConflict as exc:
            ctx["error"] = f"Not signed: {exc}. Reload the page first."
        except (Forbidden, NotFound, ReportError) as exc:
            ctx["error"] = f"Not signed: {exc}"
        else:
            return Response(status_code=204, headers={"HX-Redirect": target})
        return TEMPLATES.TemplateResponse(request, "reading_sign.html", ctx, status_code=422)

    @r.post("/reading/{uid}/addendum", response_class=HTMLResponse, response_model=None)
    async def addendum(request: Request, uid: str) -> Response:
        who = who_reads(request)
        form = await request.form()
        report_id, version = int(str(form.get("report", 0))), int(str(form.get("version", 0)))
        password, code = str(form.get("password", "")), str(form.get("code", ""))
        proof = Proof(password, code or None, client_address(request)) if password else None
        text = str(form.get("text", ""))
        try:
            await run_in_threadpool(reports.addend, who, report_id, text, version, proof)
        except (Forbidden, NotFound, ReportError) as exc:
            ctx = {"findings": [], "error": f"Not added: {exc}", "overrides": {}}
            return TEMPLATES.TemplateResponse(request, "reading_sign.html", ctx, status_code=422)
        return Response(status_code=204, headers={"HX-Refresh": "true"})

    return r
