"""De-identified export of a study (PS3.15 Basic Profile and options) over HTTP.

``GET /api/studies/{study}/deidentified?option=retain-modified-dates&…`` answers
``multipart/related; type="application/dicom"`` with every instance of the study
de-identified, UIDs remapped consistently per facility (the same secret as
``telerad deid``). Instances that may carry burned-in text are held back and only
counted in a ``Warning`` header; release them with the CLI after a person has
checked them. The caller must be able to see the study. The export and its audit
record (Export, PS3.15 A.5.3.6) are the use case's
(:class:`~telerad.services.deid_export.DeidExport`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from telerad.adapters.dicomweb.multipart import encode_multipart, new_boundary, related_content_type
from telerad.domain.deid import Option, Profile, ProfileError
from telerad.domain.identity import Permission
from telerad.services.access_audit import Actor
from telerad.services.platform import Platform
from telerad.services.studies import NotFound, Scope
from telerad.web.auth import authorise, client_address


def router(platform: Platform) -> APIRouter:
    r = APIRouter(tags=["de-identification"])

    @r.get("/api/studies/{study}/deidentified")
    def deidentified_study(
        request: Request,
        study: str,
        option: Annotated[list[str] | None, Query(description="PS3.15 E.3 options")] = None,
    ) -> Response:
        """The study de-identified for research or teaching (burned-in risks held back)."""
        who = authorise(request, Permission.READ)
        try:
            profile = Profile.of(option or [])
        except (ValueError, ProfileError) as exc:
            known = ", ".join(o.value for o in Option)
            raise HTTPException(400, f"{exc} (options: {known})") from exc
        actor = Actor.of(who, client_address(request))
        try:
            export = platform.deid.study(actor, Scope.of(who), study, profile)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        headers = {}
        if export.quarantined:
            headers["Warning"] = (
                f'299 telerad "{len(export.quarantined)} instance(s) held back: '
                f'{sorted(set(export.quarantined))[0]}"'
            )
        if not export.released:
            return Response(status_code=204, headers=headers)
        boundary = new_boundary()
        body = encode_multipart(boundary, [("application/dicom", d) for d in export.released])
        return Response(
            body, media_type=related_content_type(boundary, "application/dicom"), headers=headers
        )

    return r
