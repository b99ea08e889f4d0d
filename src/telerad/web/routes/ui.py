"""The study list at ``/``: a search form over the index; each study opens the viewer.

Plain HTML from a Jinja2 template; the query goes through the archive's search
like any C-FIND or QIDO-RS request. Search terms are never logged (they are PHI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi import Query as QueryParam
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from telerad.bootstrap import Platform
from telerad.domain.model import Level
from telerad.domain.query import Match, Query, QueryError, Range, UidList, Wildcard, parse_match
from telerad.web.auth import authenticate

WEB = Path(__file__).resolve().parents[1]
TEMPLATES = Jinja2Templates(directory=WEB / "templates")
STATIC = WEB / "static"
PAGE_SIZES = (25, 50, 100)
MODALITIES = ("CT", "MR", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF", "OT", "SR", "SEG")
_ISO_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Search:
    """The study list's search form, as typed by the user."""

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""

    def matches(self) -> dict[str, Match]:
        """The form as DICOM matching keys; raises QueryError on a value that makes no sense."""
        out: dict[str, Match] = {}
        if self.patient_name.strip():
            out["PatientName"] = Wildcard(_prefix(self.patient_name.strip()))
        for keyword, raw in (("PatientID", self.patient_id), ("AccessionNumber", self.accession)):
            match = parse_match(keyword, _prefix(raw.strip()) if raw.strip() else None)
            if match is not None:
                out[keyword] = match
        low, high = _dicom_date(self.date_from), _dicom_date(self.date_to)
        if low and high and low > high:
            raise QueryError("the 'from' date is after the 'to' date")
        if low or high:
            out["StudyDate"] = Range(low, high)
        if self.modality.strip():
            out["ModalitiesInStudy"] = UidList((self.modality.strip().upper(),))
        return out


def _prefix(value: str) -> str:
    """What a person types in a search box means 'starts with', unless it has wildcards."""
    return value if ("*" in value or "?" in value) else value + "*"


def _dicom_date(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    found = _ISO_DATE.match(value)
    if not found:
        raise QueryError(f"'{value}' is not a date (YYYY-MM-DD)")
    return "".join(found.groups())


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


def router(platform: Platform) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    @api.get("/", response_class=HTMLResponse)
    def study_list(
        request: Request,
        patient_name: Annotated[str, QueryParam(max_length=64)] = "",
        patient_id: Annotated[str, QueryParam(max_length=64)] = "",
        accession: Annotated[str, QueryParam(max_length=16)] = "",
        date_from: Annotated[str, QueryParam(max_length=10)] = "",
        date_to: Annotated[str, QueryParam(max_length=10)] = "",
        modality: Annotated[str, QueryParam(max_length=16)] = "",
        page: Annotated[int, QueryParam(ge=1, le=100_000)] = 1,
        size: Annotated[int, QueryParam(ge=1, le=max(PAGE_SIZES))] = PAGE_SIZES[0],
    ) -> HTMLResponse:
        who = authenticate(request)
        search = Search(patient_name, patient_id, accession, date_from, date_to, modality)
        error = ""
        rows: list[dict[str, object]] = []
        try:
            found = platform.archive.search(
                Query(
                    Level.STUDY,
                    matches=search.matches(),
                    returns={"InstitutionName"},
                    fuzzy=True,
                    facility_ids=who.facility_ids,
                    limit=size + 1,  # one more tells whether there is a next page
                    offset=(page - 1) * size,
                    granted_studies=who.break_glass,
                )
            )
        except QueryError as exc:
            error = str(exc)
            found = []
        has_next = len(found) > size
        names = {f.id: f.name for f in platform.index.list_facilities()}
        for study in found[:size]:
            uid = str(study["StudyInstanceUID"])
            facility_id = platform.index.study_facility(uid)
            rows.append(
                {
                    **study,
                    "facility": names.get(facility_id, "") if facility_id is not None else "",
                    "viewer_url": "/viewer?" + urlencode({"StudyInstanceUIDs": uid}),
                }
            )
        form = {k: v for k, v in vars(search).items() if v}

        def page_url(number: int) -> str:
            return "/?" + urlencode({**form, "size": size, "page": number})

        return TEMPLATES.TemplateResponse(
            request,
            "studies.html",
            {
                "search": search,
                "studies": rows,
                "error": error,
                "page": page,
                "size": size,
                "first": (page - 1) * size + 1,
                "prev_url": page_url(page - 1) if page > 1 else None,
                "next_url": page_url(page + 1) if has_next else None,
                "page_sizes": PAGE_SIZES,
                "modalities": MODALITIES,
                "person_name": person_name,
                "dicom_date": dicom_date,
                "who": who,
            },
            status_code=400 if error else 200,
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
