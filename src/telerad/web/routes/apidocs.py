"""``/docs``: Swagger UI over ``/openapi.json``, from files served here (no CDN).

FastAPI's own page loads Swagger UI from a CDN, which a reading network's
machines often cannot reach. ``make install`` fetches ``swagger-ui-dist`` from
the npm registry into ``vendor/swagger-ui`` (as it does OHIF, Chart.js and
htmx); this page and its assets come from there. ReDoc, which would need its
own CDN script, is not offered.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from telerad.config import vendor_dir

ASSETS = "/static/swagger-ui"
#: The files of swagger-ui-dist that are served, with their media types.
FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def router(title: str, openapi_url: str) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/docs", response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} · API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            # No badge fetched from the public validator service.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @r.get(ASSETS + "/{name}")
    def asset(name: str) -> FileResponse:
        folder = vendor_dir("swagger-ui", "swagger-ui-bundle.js")
        if folder is None or name not in FILES:
            raise HTTPException(404, "no such file (make install fetches Swagger UI)")
        return FileResponse(
            folder / name,
            media_type=FILES[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return r
