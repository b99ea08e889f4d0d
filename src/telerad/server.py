"""`telerad serve`: start, serve, stop.

Start: the platform opened (schema, recovery), the DIMSE and MLLP listeners, the
background loops (:mod:`telerad.runtime`), the demo when asked. Serve: the web app
under uvicorn until Ctrl-C or SIGTERM. Stop: listeners, then loops, then the
platform closed (a clean stop: nothing to recover at the next start).
"""

from __future__ import annotations

import ipaddress
import logging
import logging.handlers
import threading
import time
from pathlib import Path
from typing import Protocol

import uvicorn

from telerad.adapters.tls import ListenerContexts, TLSConfigError, listener_contexts
from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.storage.blobs.keys import MasterKeyError

log = logging.getLogger("telerad")


class Listener(Protocol):
    """A running listener (DIMSE, MLLP) and how to stop it."""

    def shutdown(self) -> None: ...


def start_listeners(platform: Platform, tls: ListenerContexts | None = None) -> list[Listener]:
    """Start the DIMSE and MLLP listeners (and their TLS twins); their handles to stop."""
    from telerad.adapters.dimse.server import start_dimse_server
    from telerad.adapters.hl7.receive import start_mllp

    settings = platform.settings
    listeners: list[Listener] = [start_dimse_server(platform)]
    platform.listeners["dimse"] = True
    if tls is not None:
        port = settings.dicom_tls_port
        listeners.append(start_dimse_server(platform, port=port, ssl_context=tls.dicom))
        platform.listeners["dicom-tls"] = True
    listeners.append(start_mllp(platform))
    platform.listeners["mllp"] = True
    if tls is not None:
        port = settings.mllp_tls_port
        listeners.append(start_mllp(platform, port=port, ssl_context=tls.mllp))
        platform.listeners["mllp-tls"] = True
    return listeners


def stop_listeners(listeners: list[Listener]) -> None:
    for listener in reversed(listeners):
        listener.shutdown()


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
            ("TELERAD_MLLP_HOST", settings.mllp_host),
        )
        if not _loopback(host)
    ]
    if not exposed:
        return None
    return (
        f"refusing to listen on {', '.join(exposed)} without any user: create one first "
        "(telerad user add NAME --role network-admin --password-stdin) or listen on 127.0.0.1"
    )


LOG_FILE = "serve.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(settings: Settings) -> Path:
    """Log to the console and to ``serve.log`` in the data dir (rotated at 20 MB, 5 kept).

    What is logged carries no PHI: requests without query values
    (:mod:`telerad.web.access_log`), associations with their counts, HL7 messages
    by type and control ID, and errors by kind.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / LOG_FILE
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    to_file = logging.handlers.RotatingFileHandler(
        path, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8"
    )
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(to_file)
    return path


def _opened(settings: Settings) -> Platform:
    """The platform built and opened, or a clear message (no traceback) why it cannot be."""
    try:
        return open_platform(settings)
    except MasterKeyError as exc:  # a wrong or unreadable master key
        raise SystemExit(f"telerad: {exc}") from None


def _web_server(platform: Platform, tls: ListenerContexts | None) -> uvicorn.Server:
    from telerad.web.app import create_app

    s = platform.settings
    return uvicorn.Server(
        uvicorn.Config(
            create_app(platform),
            host=s.http_host,
            port=s.http_port,
            log_level="warning",
            access_log=False,
            # uvicorn's own context would have no TLS 1.2 floor: it gets ours instead.
            ssl_context_factory=None if tls is None else (lambda _config, _default: tls.https),
        )
    )


def _banner(settings: Settings, tls: ListenerContexts | None) -> str:
    s = settings
    scheme = "http" if tls is None else "https"
    dicom_tls = "" if tls is None else f"  DICOM TLS {s.dicom_host}:{s.dicom_tls_port}"
    mllp_tls = "" if tls is None else f"  MLLP TLS {s.mllp_host}:{s.mllp_tls_port}"
    return (
        f"telerad: web {scheme}://{s.http_host}:{s.http_port}/  viewer /viewer  "
        f"DICOMweb /dicom-web  DICOM {s.dicom_aet}@{s.dicom_host}:{s.dicom_port}{dicom_tls}  "
        f"HL7 MLLP {s.mllp_host}:{s.mllp_port}{mllp_tls}"
    )


def run(settings: Settings, demo: bool = False) -> None:
    """Start, serve until stopped (Ctrl-C, SIGTERM), stop."""
    configure_logging(settings)
    try:  # a bad certificate path is a clear message at start, not a traceback
        tls = listener_contexts(settings)
    except TLSConfigError as exc:
        raise SystemExit(f"telerad: {exc}") from None
    platform = _opened(settings)
    listeners: list[Listener] = []
    try:
        # -- start
        if demo:
            from telerad.demo_people import ensure_demo_people

            ensure_demo_people(platform)
        exposed = exposure_problem(settings, platform.auth.has_users())
        if exposed:
            raise SystemExit(f"telerad: {exposed}")
        try:
            listeners = start_listeners(platform, tls)
        except OSError as exc:  # a port in use: say which, no traceback
            raise SystemExit(f"telerad: cannot listen: {exc}") from None
        platform.start()
        if demo:
            from telerad.demo import load_demo_once

            threading.Thread(target=load_demo_once, args=(platform,), daemon=True).start()
        # -- serve
        web = _web_server(platform, tls)
        _report_http_ready(platform, web)
        print(_banner(settings, tls), flush=True)
        web.run()
    finally:
        # -- stop
        stop_listeners(listeners)
        platform.close()


def _report_http_ready(platform: Platform, web: uvicorn.Server) -> None:
    """/healthz is 200 once the web server listens too."""

    def watch() -> None:
        while not web.started and not web.should_exit:
            time.sleep(0.05)
        platform.listeners["http"] = web.started

    platform.listeners["http"] = False
    threading.Thread(target=watch, name="http-ready", daemon=True).start()
