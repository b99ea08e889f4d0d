"""Run the platform: DIMSE listener in its threads, the web app under uvicorn."""

from __future__ import annotations

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


def run(settings: Settings, demo: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    platform = bootstrap(settings)
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
