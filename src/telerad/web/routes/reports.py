"""Reports over REST: ``/api/reports``.

Thin: bodies are checked by the schemas (422 naming the field), the report service
decides and audits. Answers: 404 for a report or study the caller may not see
(the same as one that does not exist); 403 when the caller may not write it (not
holding the study, not a radiologist, the re-authentication failed); 409 for a
move the report's status refuses or a change made on an old version (with the
current report); 422 when pre-sign checks found something (with the findings).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from telerad.domain.identity import Permission, Principal
from telerad.domain.reports import ReportError, ReportStatus, VersionConflict
from telerad.services.platform import Platform
from telerad.services.reports import (
    ChecksFailed,
    Forbidden,
    NotFound,
    Proof,
    ReportFilter,
)
from telerad.web.auth import authorise, client_address
from telerad.web.schemas.reports import (
    AddendumIn,
    ContentIn,
    CorrectionIn,
    FindingOut,
    Reauthentication,
    ReportListItem,
    ReportOut,
    SignIn,
    StartIn,
)


def router(platform: Platform) -> APIRouter:  # noqa: C901 - one closure per route
    r = APIRouter(prefix="/api/reports", tags=["reports"])
    reports = platform.reports

    @contextmanager
    def answered(who: Principal, report_id: int | None = None) -> Iterator[None]:
        try:
            yield
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except Forbidden as exc:
            raise HTTPException(403, str(exc)) from exc
        except VersionConflict as exc:
            body: dict[str, Any] = {"detail": str(exc)}
            if report_id is not None:  # what the report says now, so nothing is lost
                body["current"] = ReportOut.of(reports.get(who, report_id)).model_dump(mode="json")
            raise Answer(409, body) from exc
        except ChecksFailed as exc:
            findings = [FindingOut.of(f).model_dump() for f in exc.findings]
            raise Answer(422, {"detail": str(exc), "findings": findings}) from exc
        except ReportError as exc:
            raise HTTPException(409, str(exc)) from exc

    def proof(request: Request, body: Reauthentication) -> Proof | None:
        if not body.password:
            return None  # a recent sign-in (e.g. at the identity provider) must do
        return Proof(body.password, body.code or None, client_address(request))

    @r.post("", status_code=201, response_model=ReportOut)
    def start(request: Request, body: StartIn) -> ReportOut:
        """The study's report to work on: a new draft, or the one it already has."""
        who = authorise(request, Permission.READING)
        with answered(who):
            report = reports.start(
                who, body.study_instance_uid, body.template_id, client_address(request)
            )
        return ReportOut.of(report)

    @r.get("", response_model=list[ReportListItem])
    def listed(
        request: Request,
        study: Annotated[str, Query(max_length=64)] = "",
        patient_id: Annotated[str, Query(max_length=64)] = "",
        status: Annotated[list[ReportStatus] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[ReportListItem]:
        who = authorise(request, Permission.READ)
        f = ReportFilter(
            study_uids=(study,) if study else (),
            patient_id=patient_id,
            statuses=frozenset(status or ()),
            limit=limit,
            offset=offset,
        )
        return [ReportListItem.of(s) for s in reports.find(who, f)]

    @r.get("/{report_id}", response_model=ReportOut)
    def read(request: Request, report_id: int) -> ReportOut:
        who = authorise(request, Permission.READ)
        with answered(who):
            return ReportOut.of(reports.get(who, report_id, client_address(request)))

    @r.put("/{report_id}", response_model=ReportOut)
    def save(request: Request, report_id: int, body: ContentIn) -> ReportOut:
        """A new version of the draft, made on ``version``."""
        who = authorise(request, Permission.READING)
        with answered(who, report_id):
            changed = reports.compose(who, report_id, body.sections, body.fields, body.template_id)
            report = reports.save(who, report_id, changed, body.version, client_address(request))
        return ReportOut.of(report)

    @r.get("/{report_id}/checks", response_model=list[FindingOut])
    def checks(request: Request, report_id: int) -> list[FindingOut]:
        """What the pre-sign checks find in the report as it stands."""
        who = authorise(request, Permission.READING)
        with answered(who, report_id):
            return [FindingOut.of(f) for f in reports.checks(who, report_id)]

    @r.post("/{report_id}/sign", response_model=ReportOut)
    def sign(request: Request, report_id: int, body: SignIn) -> ReportOut:
        who = authorise(request, Permission.READING)
        with answered(who, report_id):
            report = reports.sign(
                who,
                report_id,
                body.version,
                body.final,
                proof(request, body),
                body.overrides,
                body.difference,
            )
        return ReportOut.of(report)

    @r.post("/{report_id}/addenda", response_model=ReportOut)
    def addend(request: Request, report_id: int, body: AddendumIn) -> ReportOut:
        who = authorise(request, Permission.READING)
        with answered(who, report_id):
            report = reports.addend(who, report_id, body.text, body.version, proof(request, body))
        return ReportOut.of(report)

    @r.post("/{report_id}/corrections", response_model=ReportOut)
    def correct(request: Request, report_id: int, body: CorrectionIn) -> ReportOut:
        who = authorise(request, Permission.READING)
        with answered(who, report_id):
            changed = reports.compose(who, report_id, body.sections, body.fields)
            report = reports.correct(
                who,
                report_id,
                changed,
                body.reason,
                body.version,
                proof(request, body),
                body.overrides,
            )
        return ReportOut.of(report)

    return r


class Answer(HTTPException):
    """An HTTP error whose body is a JSON object (the detail and more)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body.get("detail", ""))
        self.body = body


def answer_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Answer)
    return JSONResponse(exc.body, status_code=exc.status_code)
