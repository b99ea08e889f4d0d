"""DICOMweb routes (PS3.18): STOW-RS, QIDO-RS, WADO-RS and WADO-URI under ``/dicom-web``.

Thin: each route turns HTTP into calls on the archive and the DICOMweb adapter
(``telerad.adapters.dicomweb``) and maps their exceptions to status codes.
Routes are plain ``def`` (run in the threadpool) except STOW-RS, which streams
the request body and hands the work to the threadpool.
"""

from __future__ import annotations

import mmap
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from telerad.adapters.dicomweb import retrieve as wado
from telerad.adapters.dicomweb.dicomjson import qido_results
from telerad.adapters.dicomweb.multipart import (
    Buffer,
    MultipartError,
    encode_multipart,
    iter_multipart,
    new_boundary,
    parse_accept,
    parse_media_type,
    related_content_type,
    split_parts,
)
from telerad.adapters.dicomweb.negotiation import (
    NotAcceptable,
    frame_choices,
    instance_syntaxes,
    rendered_media_type,
)
from telerad.adapters.dicomweb.qido import check_path_uid, parse_qido
from telerad.adapters.dicomweb.stow import (
    StowResult,
    UnsupportedMediaType,
    boundary_of,
    store_parts,
)
from telerad.dicom import transcode as tx
from telerad.dicom.palette import PaletteError
from telerad.dicom.render import (
    RenderError,
    RenderOptions,
    parse_quality,
    parse_viewport,
    parse_window,
    thumbnail_options,
)
from telerad.domain.audit import EventID
from telerad.domain.identity import Permission, Principal, origin_of
from telerad.domain.model import Facility, InstanceLocation, Level, StoreResult
from telerad.domain.query import QueryError
from telerad.services.access_audit import Actor
from telerad.services.admission import FacilityNeeded, NoSuchFacility
from telerad.services.archive import out_of_space
from telerad.services.platform import Platform
from telerad.services.ports import IntegrityError
from telerad.services.studies import Scope
from telerad.web.auth import authenticate, authorise, client_address

DICOM_JSON = "application/dicom+json"
#: Bodies larger than this are spooled to a temporary file and framed through mmap.
SPOOL_LIMIT = 256 * 1024 * 1024
_SPOOL_WRITE = 8 * 1024 * 1024
_RENDER_PARAMS = {"window", "viewport", "quality", "annotation", "charset", "iccprofile"}


@contextmanager
def _http_errors() -> Iterator[None]:
    """Adapter exceptions → HTTP status codes with the reason as ``detail``."""
    try:
        yield
    except (QueryError, RenderError, MultipartError, ValueError) as exc:
        if isinstance(exc, (tx.ImageTooLarge, PaletteError)):
            # The stored object, not the request, is beyond what is decoded or rendered.
            raise HTTPException(422, str(exc)) from exc
        if isinstance(exc, (NotAcceptable, tx.TranscodeError)):
            raise HTTPException(406, str(exc)) from exc
        if isinstance(exc, UnsupportedMediaType):
            raise HTTPException(415, str(exc)) from exc
        raise HTTPException(400, str(exc)) from exc
    except wado.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except IntegrityError as exc:
        raise HTTPException(500, "a stored object failed its integrity check") from exc
    except OSError as exc:
        raise HTTPException(500, "a stored object could not be read") from exc


def _base(request: Request) -> str:
    """The absolute URL of /dicom-web as this client reaches it (for RetrieveURL, BulkDataURI).

    dicomweb-client sends ``Host`` without the port; when the host is an address
    (a direct connection, not a proxy's name) the port the request arrived on is added.
    """
    headers = request.headers
    scheme = headers.get("x-forwarded-proto") or request.url.scheme
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    server = request.scope.get("server")
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not port.isdigit():
        name, port = host, ""
    if not host and server:
        host = f"{server[0]}:{server[1]}"
    elif not port and server and "x-forwarded-host" not in headers:
        direct = name in ("localhost", "127.0.0.1", "[::1]") or name.replace(".", "").isdigit()
        default = {"http": 80, "https": 443}.get(scheme)
        if direct and server[1] != default:
            host = f"{name}:{server[1]}"
    return f"{scheme}://{host}{request.scope.get('root_path', '')}/dicom-web"


def _json(request: Request, body: bytes, headers: dict[str, str] | None = None) -> Response:
    """A DICOM JSON response, gzip-compressed here at level 1 when the client accepts it.

    DICOM JSON is repetitive (a 400-instance series: 1 MB → 40 kB even at level 1),
    and level 1 costs a third of the middleware's level 5; the middleware leaves a
    response that already has a Content-Encoding alone.
    """
    headers = dict(headers or {})
    if len(body) >= 1024 and "gzip" in request.headers.get("accept-encoding", ""):
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: gzip container
        body = packer.compress(body) + packer.flush()
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return Response(body, media_type=DICOM_JSON, headers=headers)


def _warning(messages: Sequence[str]) -> dict[str, str]:
    if not messages:
        return {}
    text = ", ".join(f'299 telerad "{m}"' for m in messages)
    return {"Warning": text.encode("latin-1", "replace").decode("latin-1")}


def _check_json_accept(accept: str | None) -> None:
    for media in parse_accept(accept) or []:
        if media.type in (DICOM_JSON, "application/json", "*/*", "application/*"):
            return
    if accept and accept.strip():
        raise NotAcceptable(f"results are offered as {DICOM_JSON} only")


def _multipart(parts: Iterator[tuple[str, bytes]], part_type: str) -> StreamingResponse:
    boundary = new_boundary()
    return StreamingResponse(
        iter_multipart(boundary, parts),
        media_type=related_content_type(boundary, part_type),
    )


def _multipart_now(parts: list[tuple[str, bytes]], part_type: str) -> Response:
    boundary = new_boundary()
    return Response(
        encode_multipart(boundary, parts),
        media_type=related_content_type(boundary, part_type),
    )


def _render_options(request: Request, media_type: str, thumbnail: bool = False) -> RenderOptions:
    params = request.query_params
    unknown = set(params) - _RENDER_PARAMS
    if unknown:
        raise RenderError(f"unsupported rendering parameter(s): {', '.join(sorted(unknown))}")
    viewport = parse_viewport(params.get("viewport"))
    if thumbnail:
        return thumbnail_options(media_type, viewport)
    return RenderOptions(
        media_type,
        parse_window(params.get("window")),
        viewport,
        parse_quality(params.get("quality")),
    )


def _actor(request: Request, who: Principal) -> Actor:
    return Actor.of(who, client_address(request))


def router(platform: Platform) -> APIRouter:  # noqa: C901 - one closure per resource
    r = APIRouter(prefix="/dicom-web", tags=["DICOMweb"])
    archive, index, studies = platform.archive, platform.index, platform.studies

    # -- STOW-RS ------------------------------------------------------------------
    async def receive(request: Request) -> tuple[Buffer, Callable[[], None]]:
        """The whole body: in memory, or spooled to disk past SPOOL_LIMIT (then mmap'd)."""
        buf = bytearray()
        spool: Any = None
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for chunk in request.stream():
                if spool is None:
                    buf += chunk
                    if len(buf) > SPOOL_LIMIT:
                        tmp_dir = platform.settings.data_dir / "tmp"
                        tmp_dir.mkdir(parents=True, exist_ok=True)
                        spool = tempfile.TemporaryFile(dir=tmp_dir, prefix="stow-")  # noqa: SIM115
                        await run_in_threadpool(spool.write, buf)
                        buf = bytearray()
                else:
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= _SPOOL_WRITE:
                        await run_in_threadpool(spool.writelines, pending)
                        pending, pending_size = [], 0
            if spool is not None:
                await run_in_threadpool(spool.writelines, pending)
                spool.flush()
        except BaseException as exc:
            if spool is not None:
                spool.close()
            if isinstance(exc, ClientDisconnect):
                raise MultipartError(
                    "the client disconnected before the body was complete"
                ) from exc
            if out_of_space(exc):
                raise HTTPException(507, "no space left to receive the request body") from exc
            raise
        if spool is None:
            return buf, lambda: None  # no copy: parts are sliced out of it
        mapped = mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ)

        def close() -> None:
            mapped.close()
            spool.close()

        return mapped, close

    def stow_facility(request: Request, study: str | None, facility_name: str | None) -> Facility:
        """Where a STOW-RS request stores (the admission rule decides)."""
        who = authorise(request, Permission.WRITE)
        try:
            return platform.admission.account(who, facility_name, study)
        except NoSuchFacility as exc:
            raise wado.NotFound(str(exc)) from None
        except FacilityNeeded as exc:
            raise QueryError(str(exc)) from None

    async def stow(request: Request, study: str | None, facility_name: str | None) -> Response:
        with _http_errors():
            _check_json_accept(request.headers.get("accept"))
            if study is not None:
                check_path_uid("StudyInstanceUID", study)
            facility = await run_in_threadpool(stow_facility, request, study, facility_name)
            content_type = request.headers.get("content-type")
            if not content_type:
                raise UnsupportedMediaType("STOW-RS needs a multipart/related Content-Type")
            boundary = boundary_of(parse_media_type(content_type))
            fid = facility.id
            who = authenticate(request)
            actor, origin = _actor(request, who), origin_of(who)

            def store_batch(items: Iterable[bytes]) -> list[StoreResult | Exception]:
                return studies.receive_batch(actor, fid, items, origin)

            base = _base(request)
            body, close = await receive(request)

            def store() -> StowResult:
                parts = split_parts(body, boundary)  # the whole body is framed first
                return store_parts(store_batch, body, parts, study, base)

            try:
                result = await run_in_threadpool(store)
            finally:
                close()
        return Response(result.body, status_code=result.status, media_type=DICOM_JSON)

    @r.post("/studies")
    async def store_instances(request: Request) -> Response:
        return await stow(request, None, None)

    @r.post("/studies/{study}")
    async def store_study_instances(request: Request, study: str) -> Response:
        return await stow(request, study, None)

    @r.post("/facilities/{facility_name}/studies")
    async def store_facility_instances(request: Request, facility_name: str) -> Response:
        return await stow(request, None, facility_name)

    @r.post("/facilities/{facility_name}/studies/{study}")
    async def store_facility_study(request: Request, facility_name: str, study: str) -> Response:
        return await stow(request, study, facility_name)

    # -- QIDO-RS ------------------------------------------------------------------
    def qido(request: Request, level: Level, path: dict[str, str]) -> Response:
        who = authorise(request, Permission.READ)
        with _http_errors():
            _check_json_accept(request.headers.get("accept"))
            req = parse_qido(level, request.query_params.multi_items(), path)
            asked = f"QIDO-RS {request.url.path} ?{request.url.query}"
            rows = studies.search(_actor(request, who), Scope.of(who), req.query, asked)
        warnings = list(req.warnings)
        if req.cap is not None and len(rows) > req.cap:
            rows = rows[: req.cap]
            warnings.append("There are additional results that can be requested")
        body = qido_results(level, req.query.return_keys(), rows, _base(request))
        return _json(request, body, _warning(warnings))

    @r.get("/studies")
    def search_studies(request: Request) -> Response:
        return qido(request, Level.STUDY, {})

    @r.get("/series")
    def search_all_series(request: Request) -> Response:
        return qido(request, Level.SERIES, {})

    @r.get("/studies/{study}/series")
    def search_series(request: Request, study: str) -> Response:
        return qido(request, Level.SERIES, {"StudyInstanceUID": study})

    @r.get("/instances")
    def search_all_instances(request: Request) -> Response:
        return qido(request, Level.IMAGE, {})

    @r.get("/studies/{study}/instances")
    def search_study_instances(request: Request, study: str) -> Response:
        return qido(request, Level.IMAGE, {"StudyInstanceUID": study})

    @r.get("/studies/{study}/series/{series}/instances")
    def search_instances(request: Request, study: str, series: str) -> Response:
        return qido(request, Level.IMAGE, {"StudyInstanceUID": study, "SeriesInstanceUID": series})

    # -- WADO-RS: instances and metadata --------------------------------------------
    def retrieve(request: Request, study: str, series: str | None, sop: str | None) -> Response:
        with _http_errors():
            syntaxes = instance_syntaxes(request.headers.get("accept"))
            locations = locate(request, study, series, sop, EventID.INSTANCES_TRANSFERRED)
            parts = wado.instance_parts(archive, locations, syntaxes)
        return _multipart(parts, "application/dicom")

    @r.get("/studies/{study}")
    def retrieve_study(request: Request, study: str) -> Response:
        return retrieve(request, study, None, None)

    @r.get("/studies/{study}/series/{series}")
    def retrieve_series(request: Request, study: str, series: str) -> Response:
        return retrieve(request, study, series, None)

    @r.get("/studies/{study}/series/{series}/instances/{sop}")
    def retrieve_instance(request: Request, study: str, series: str, sop: str) -> Response:
        return retrieve(request, study, series, sop)

    def metadata(request: Request, study: str, series: str | None, sop: str | None) -> Response:
        with _http_errors():
            _check_json_accept(request.headers.get("accept"))
            locations = locate(request, study, series, sop)
            body = wado.metadata(archive, index, locations, _base(request))
        return _json(request, body)

    @r.get("/studies/{study}/metadata")
    def study_metadata(request: Request, study: str) -> Response:
        return metadata(request, study, None, None)

    @r.get("/studies/{study}/series/{series}/metadata")
    def series_metadata(request: Request, study: str, series: str) -> Response:
        return metadata(request, study, series, None)

    @r.get("/studies/{study}/series/{series}/instances/{sop}/metadata")
    def instance_metadata(request: Request, study: str, series: str, sop: str) -> Response:
        return metadata(request, study, series, sop)

    # -- WADO-RS: frames and bulk data ----------------------------------------------
    def locate(
        request: Request,
        study: str,
        series: str | None,
        sop: str | None,
        event: EventID = EventID.INSTANCES_ACCESSED,
    ) -> list[InstanceLocation]:
        """The instances a READ request names, within the caller's scope (audited)."""
        who = authorise(request, Permission.READ)
        wado.check_resource(study, series, sop)
        return studies.locate(_actor(request, who), Scope.of(who), study, series, sop, event)

    def one(request: Request, study: str, series: str, sop: str) -> InstanceLocation:
        return locate(request, study, series, sop)[0]

    @r.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}")
    def retrieve_frames(
        request: Request, study: str, series: str, sop: str, frames: str
    ) -> Response:
        with _http_errors():
            numbers = wado.parse_frame_list(frames)
            choices = frame_choices(request.headers.get("accept"))
            source = wado.open_frames(archive, one(request, study, series, sop))
            parts = wado.frame_parts(source, numbers, choices)
        return _multipart_now(parts, parts[0][0].split(";")[0])

    @r.get("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{path:path}")
    def retrieve_bulkdata(
        request: Request, study: str, series: str, sop: str, path: str
    ) -> Response:
        with _http_errors():
            loc = one(request, study, series, sop)
            if path.strip("/").upper() in ("7FE00010", "7FE00008", "7FE00009"):
                source = wado.open_frames(archive, loc)
                choices = frame_choices(request.headers.get("accept"))
                parts = wado.frame_parts(source, range(1, source.count + 1), choices)
                return _multipart_now(parts, parts[0][0].split(";")[0])
            value = wado.bulk_value(archive.read(loc), path)
        return _multipart_now([("application/octet-stream", value)], "application/octet-stream")

    # -- WADO-RS: rendered and thumbnails --------------------------------------------
    def rendered(
        request: Request,
        study: str,
        series: str | None,
        sop: str | None,
        frames: str | None,
        thumbnail: bool,
    ) -> Response:
        with _http_errors():
            media_type = rendered_media_type(request.headers.get("accept"))
            options = _render_options(request, media_type, thumbnail)
            locations = locate(request, study, series, sop)
            numbers = wado.parse_frame_list(frames) if frames else None
            if thumbnail:
                loc = wado.representative(locations) if sop is None else locations[0]
                frame = numbers[0] if numbers else wado.thumbnail_frame(loc)
                image = wado.render_instance(archive, loc, options, frame)
                return Response(image, media_type=media_type)
            if sop is not None:
                if numbers and len(numbers) > 1:
                    images = [
                        (media_type, wado.render_instance(archive, locations[0], options, n))
                        for n in numbers
                    ]
                    return _multipart_now(images, media_type)
                image = wado.render_instance(
                    archive, locations[0], options, numbers[0] if numbers else None
                )
                return Response(image, media_type=media_type)
            images = []
            for loc in locations:
                try:
                    images.append((media_type, wado.render_instance(archive, loc, options)))
                except wado.NotFound:
                    continue  # instances without pixel data (SR, KOS) have no rendering
            if not images:
                raise wado.NotFound("nothing renderable in this resource")
        return _multipart_now(images, media_type)

    base = "/studies/{study}"
    for suffix in ("rendered", "thumbnail"):
        thumb = suffix == "thumbnail"

        def study_view(request: Request, study: str, _t: bool = thumb) -> Response:
            return rendered(request, study, None, None, None, _t)

        def series_view(request: Request, study: str, series: str, _t: bool = thumb) -> Response:
            return rendered(request, study, series, None, None, _t)

        def instance_view(
            request: Request, study: str, series: str, sop: str, _t: bool = thumb
        ) -> Response:
            return rendered(request, study, series, sop, None, _t)

        def frames_view(
            request: Request, study: str, series: str, sop: str, frames: str, _t: bool = thumb
        ) -> Response:
            return rendered(request, study, series, sop, frames, _t)

        r.add_api_route(f"{base}/{suffix}", study_view, methods=["GET"], name=f"study_{suffix}")
        r.add_api_route(
            f"{base}/series/{{series}}/{suffix}",
            series_view,
            methods=["GET"],
            name=f"series_{suffix}",
        )
        r.add_api_route(
            f"{base}/series/{{series}}/instances/{{sop}}/{suffix}",
            instance_view,
            methods=["GET"],
            name=f"instance_{suffix}",
        )
        r.add_api_route(
            f"{base}/series/{{series}}/instances/{{sop}}/frames/{{frames}}/{suffix}",
            frames_view,
            methods=["GET"],
            name=f"frames_{suffix}",
        )

    # -- WADO-URI (PS3.18 9) ------------------------------------------------------------
    @r.get("/wado")
    def wado_uri(request: Request) -> Response:
        q = request.query_params
        with _http_errors():
            if q.get("requestType") != "WADO":
                raise QueryError("requestType must be WADO")
            missing = [k for k in ("studyUID", "seriesUID", "objectUID") if not q.get(k)]
            if missing:
                raise QueryError(f"missing parameter(s): {', '.join(missing)}")
            loc = one(request, q["studyUID"], q["seriesUID"], q["objectUID"])
            content_type = (q.get("contentType") or "image/jpeg").split(",")[0].strip()
            if content_type in ("application/dicom", "application/dicom;"):
                syntax = q.get("transferSyntax") or tx.EXPLICIT_LE
                _ctype, data = wado.instance_parts(archive, [loc], [syntax]).__next__()
                return Response(data, media_type="application/dicom")
            if content_type not in ("image/jpeg", "image/png"):
                raise NotAcceptable(f"contentType {content_type} is not offered")
            window = None
            if q.get("windowCenter") is not None or q.get("windowWidth") is not None:
                window = parse_window(f"{q.get('windowCenter', '')},{q.get('windowWidth', '')}")
            viewport = None
            if q.get("rows") or q.get("columns"):
                rows = q.get("rows") or q.get("columns")
                cols = q.get("columns") or q.get("rows")
                viewport = parse_viewport(f"{cols},{rows}")
            quality = parse_quality(q.get("imageQuality"))
            frame = int(q["frameNumber"]) if (q.get("frameNumber") or "").isdigit() else None
            options = RenderOptions(content_type, window, viewport, quality)
            image = wado.render_instance(archive, loc, options, frame)
        return Response(image, media_type=content_type)

    return r
