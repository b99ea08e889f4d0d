"""Run the platform: DIMSE listener in its threads, the web app under uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time

import uvicorn

from telerad.bootstrap import Platform, bootstrap
from telerad.config import Settings

log = logging.getLogger("telerad")


def start_listeners(platform: Platform) -> list[object]:
    """Start the DIMSE listener; return handles to stop later."""
    from telerad.adapters.dimse.server import start_dimse_server

    server = start_dimse_server(platform)
    platform.listeners["dimse"] = True
    return [server]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: Settings, has_users: bool) -> str | None:
    """Why the platform must not start: listening beyond this machine with nobody to sign in.

    Without accounts everything is open (the platform cannot tell people apart), so it
    may only be reachable from this machine.
    """
    if has_users:
        return None
    exposed = [
        f"{name} {host}"
        for name, host in (
            ("TELERAD_HTTP_HOST", settings.http_host),
            ("TELERAD_DICOM_HOST", settings.dicom_host),
        )
        if not _loopback(host)
    ]
    if not exposed:
        return None
    return (
        f"refusing to listen on {', '.join(exposed)} without any user: create one first "
        "(telerad user add NAME --role network-admin --password-stdin) or listen on 127.0.0.1"
    )


def run(settings: Settings, demo: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    platform = bootstrap(settings)
    if demo:
        from telerad.demo_people import ensure_demo_people

        ensure_demo_people(platform)
    exposed = exposure_problem(settings, platform.auth.has_users())
    if exposed:
        platform.close()
        raise SystemExit(f"telerad: {exposed}")
    if demo:
        from telerad.demo import load_demo_once

        threading.Thread(target=load_demo_once, args=(platform,), daemon=True).start()
    from telerad.web.app import create_app

    handles = start_listeners(platform)
    app = create_app(platform)
    s = settings
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=s.http_host, port=s.http_port, log_level="warning", access_log=False
        )
    )

    def _mark_http_up() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        platform.listeners["http"] = server.started

    platform.listeners["http"] = False
    threading.Thread(target=_mark_http_up, daemon=True).start()
    print(
        f"telerad: web http://{s.http_host}:{s.http_port}/  viewer /viewer  DICOMweb /dicom-web  "
        f"DICOM {s.dicom_aet}@{s.dicom_host}:{s.dicom_port}",
        flush=True,
    )
    try:
        server.run()
    finally:
        for handle in handles:
            shutdown = getattr(handle, "shutdown", None)
            if shutdown:
                shutdown()
        platform.close()
