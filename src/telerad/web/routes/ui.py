"""The study list at ``/``: a search form over the index; each study opens the viewer.

Plain HTML from a Jinja2 template over :class:`~telerad.services.study_list.StudyList`
(the study search use case, like any C-FIND or QIDO-RS request, audited, newest
first, with each study's facility, the patient's age and sex and the read status).
Search terms are never logged (they are PHI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi import Query as QueryParam
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from telerad.services.access_audit import Actor
from telerad.services.platform import Platform
from telerad.services.study_list import StudyList, StudySearch
from telerad.web.auth import authenticate, client_address

WEB = Path(__file__).resolve().parents[1]
TEMPLATES = Jinja2Templates(directory=WEB / "templates")
STATIC = WEB / "static"
PAGE_SIZES = (25, 50, 100)
MODALITIES = ("CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF", "OT", "SR", "SEG")
_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def person_name(value: object) -> str:
    """DOE^JANE^M → 'DOE, JANE M' (the alphabetic component group only)."""
    text = str(value or "").split("=")[0]
    parts = [p.strip() for p in text.split("^")]
    family, given = (parts + ["", ""])[:2]
    rest = " ".join(p for p in parts[2:] if p)
    name = ", ".join(p for p in (family, " ".join(x for x in (given, rest) if x)) if p)
    return name


def dicom_date(value: object) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def dicom_time(value: object) -> str:
    """HHMMSS.FFFFFF → 'HH:MM' ("" when there is none)."""
    text = str(value or "")
    return f"{text[:2]}:{text[2:4]}" if len(text) >= 4 and text[:4].isdigit() else ""


def viewer_url(study_uid: str) -> str:
    """The OHIF viewer opened on one study."""
    return "/viewer?" + urlencode({"StudyInstanceUIDs": study_uid})


def router(platform: Platform) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    studies = StudyList(platform.studies, platform.index, platform.reading.store)

    @api.get("/", response_class=HTMLResponse)
    def study_list(
        request: Request,
        patient_name: Annotated[str, QueryParam(max_length=64)] = "",
        patient_id: Annotated[str, QueryParam(max_length=64)] = "",
        accession: Annotated[str, QueryParam(max_length=16)] = "",
        date_from: Annotated[str, QueryParam(max_length=10)] = "",
        date_to: Annotated[str, QueryParam(max_length=10)] = "",
        modality: Annotated[str, QueryParam(max_length=16)] = "",
        facility: Annotated[str, QueryParam(max_length=12)] = "",
        page: Annotated[int, QueryParam(ge=1, le=100_000)] = 1,
        size: Annotated[int, QueryParam(ge=1, le=max(PAGE_SIZES))] = PAGE_SIZES[0],
    ) -> HTMLResponse:
        who = authenticate(request)
        search = StudySearch(
            patient_name, patient_id, accession, date_from, date_to, modality, facility
        )
        found = studies.page(who, search, page, size, by=Actor.of(who, client_address(request)))
        form = {k: v for k, v in vars(search).items() if v}

        def page_url(number: int) -> str:
            return "/?" + urlencode({**form, "size": size, "page": number})

        return TEMPLATES.TemplateResponse(
            request,
            "studies.html",
            {
                "search": search,
                "studies": found.rows,
                "facilities": found.facilities,
                "error": found.error,
                "page": page,
                "size": size,
                "first": (page - 1) * size + 1,
                "prev_url": page_url(page - 1) if page > 1 else None,
                "next_url": page_url(page + 1) if found.has_next else None,
                "page_sizes": PAGE_SIZES,
                "modalities": MODALITIES,
                "person_name": person_name,
                "dicom_date": dicom_date,
                "dicom_time": dicom_time,
                "viewer_url": viewer_url,
                "who": who,
            },
            status_code=400 if found.error else 200,
        )

    @api.get("/static/{name}")
    def static(name: str) -> FileResponse:
        path = STATIC / name
        # Only files directly in the static folder, named as they are there.
        if name not in {p.name for p in STATIC.iterdir() if p.is_file()}:
            raise HTTPException(404, "no such file")
        return FileResponse(
            path,
            media_type=_STATIC_TYPES.get(path.suffix, "application/octet-stream"),
            headers={"Cache-Control": "no-cache"},
        )

    return api
