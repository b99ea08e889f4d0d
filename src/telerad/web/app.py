"""The FastAPI application: DICOMweb, the viewer, the study list and health."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES

from telerad import __version__
from telerad.services.platform import Platform
from telerad.web.access_log import AccessLog
from telerad.web.auth import SESSION_COOKIE, SignInRequired
from telerad.web.body_limit import BodyLimit, limits_by_route
from telerad.web.leader import ToLeader


def create_app(platform: Platform) -> FastAPI:
    app = FastAPI(
        title="telerad",
        version=__version__,
        description="Teleradiology platform: DICOMweb archive, viewer and reading workflow.",
        # /docs is served from local files (routes/apidocs.py); ReDoc would need a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.platform = platform
    _describe_security(app)
    if platform.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=platform.settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["Content-Type", "Content-Location", "Warning"],
        )
    # JSON (QIDO-RS, metadata) compresses well; images are sent as they are.
    app.add_middleware(
        GZipMiddleware,
        minimum_size=1024,
        compresslevel=5,
        exclude_content_types=(
            *DEFAULT_EXCLUDED_CONTENT_TYPES,
            "multipart/related",  # DICOM instances and frames (WADO-RS)
            "application/dicom",
            "application/octet-stream",
        ),
    )

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        ready = platform.ready
        return JSONResponse(
            {"status": "ok" if ready else "starting", "listeners": platform.listeners},
            status_code=200 if ready else 503,
        )

    from telerad.web.routes import (
        account,
        apidocs,
        deid,
        dicomweb,
        fhir,
        fhir_reports,
        orders,
        outbox,
        reading,
        reconciliation,
        reports,
        ui,
        viewer,
    )

    # A report's 409 carries the current report, its 422 the checks' findings.
    app.add_exception_handler(reports.Answer, reports.answer_handler)

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, exc: SignInRequired) -> Response:
        """Browsers asking for a page go to the sign-in page; API clients get the 401."""
        if request.method == "GET" and _wants_page(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=401, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def not_for_this_account(request: Request, exc: StarletteHTTPException) -> Response:
        """A page the account may not use is a page saying so; APIs keep their JSON."""
        if exc.status_code != 403 or not _wants_page(request):
            return await http_exception_handler(request, exc)
        who = getattr(request.state, "principal", None)
        return ui.TEMPLATES.TemplateResponse(
            request,
            "forbidden.html",
            {"reason": exc.detail, "who": who, "path": request.url.path},
            status_code=403,
            headers=exc.headers,
        )

    app.include_router(apidocs.router(app.title, app.openapi_url or "/openapi.json"))
    app.include_router(account.router(platform))
    if platform.oidc is not None:
        from telerad.web.routes import oidc

        app.include_router(oidc.router(platform, platform.oidc))
    app.include_router(dicomweb.router(platform))
    app.include_router(deid.router(platform))
    app.include_router(orders.router(platform))
    app.include_router(fhir.router(platform))
    app.include_router(fhir_reports.router(platform))
    app.include_router(reconciliation.router(platform))
    app.include_router(outbox.router(platform))
    app.include_router(reports.router(platform))
    app.include_router(reading.router(platform))
    app.include_router(ui.router(platform))
    viewer.mount(app, platform)
    from telerad.web.routes import board, worklist

    # The board first: its /api/worklist/{uid}/assign is not a worklist action.
    app.include_router(board.router(platform))
    app.include_router(worklist.router(platform))
    app.add_middleware(worklist.ReaderActivity, reading=platform.reading)
    # What the deciding process answers is forwarded to it from the others.
    app.add_middleware(ToLeader, leadership=platform.leadership, verify=_internal_ca(platform))
    settings = platform.settings
    app.add_middleware(
        BodyLimit, limit_for=limits_by_route(settings.http_max_body, settings.stow_max_body)
    )
    app.add_middleware(AccessLog)  # outermost: it times and logs everything
    return app


def _internal_ca(platform: Platform) -> str | bool:
    """How a forwarded request checks the deciding process's certificate: against the
    network's own certificate (every process serves the same one), else the system's."""
    cert = platform.settings.tls_cert
    return str(cert) if cert else True


#: Paths of the programming interfaces: they answer JSON (or DICOM), never pages.
API_PATHS = ("/dicom-web", "/api", "/fhir")


def _wants_page(request: Request) -> bool:
    """A browser asking for one of the platform's pages (not an API, not a fragment)."""
    return not request.url.path.startswith(API_PATHS) and "text/html" in request.headers.get(
        "accept", ""
    )


def _describe_security(app: FastAPI) -> None:
    """Tell OpenAPI readers (and /docs' Authorize button) how requests authenticate."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "`telerad token create NAME` or POST /api/auth/token",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            }
            schema["security"] = [{"bearer": []}, {"session": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
