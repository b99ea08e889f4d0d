"""Run the platform: DIMSE listener in its threads, the web app under uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import logging.handlers
import threading
import time
from pathlib import Path

import uvicorn

from telerad.adapters.tls import ListenerContexts, TLSConfigError, listener_contexts
from telerad.bootstrap import Platform, bootstrap
from telerad.config import Settings
from telerad.services.periodic import Periodic
from telerad.storage.blobs.keys import MasterKeyError

log = logging.getLogger("telerad")


def start_listeners(platform: Platform, tls: ListenerContexts | None = None) -> list[object]:
    """Start the DIMSE and MLLP listeners (and their TLS twins); return handles to stop later."""
    from telerad.adapters.dimse.server import start_dimse_server
    from telerad.adapters.hl7.receive import start_mllp

    handles: list[object] = [start_dimse_server(platform)]
    every = platform.settings.reconcile_seconds
    handles.append(Periodic("reconciliation", every, platform.reconciler.run).start())
    platform.listeners["dimse"] = True
    if tls is not None:
        port = platform.settings.dicom_tls_port
        handles.append(start_dimse_server(platform, port=port, ssl_context=tls.dicom))
        platform.listeners["dicom-tls"] = True
    handles.append(start_mllp(platform))
    platform.listeners["mllp"] = True
    if tls is not None:
        port = platform.settings.mllp_tls_port
        handles.append(start_mllp(platform, port=port, ssl_context=tls.mllp))
        platform.listeners["mllp-tls"] = True
    # The reading worklist: rebuilt from its open entries, then its clock ticks.
    platform.reading.start()
    platform.reading.start_ticker(platform.settings.worklist_tick_seconds)
    handles.append(platform.reading)  # its shutdown() stops the ticker
    return handles


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


def run(settings: Settings, demo: bool = False) -> None:
    configure_logging(settings)
    try:  # a bad certificate path is a clear message at start, not a traceback
        tls = listener_contexts(settings)
    except TLSConfigError as exc:
        raise SystemExit(f"telerad: {exc}") from None
    try:
        platform = bootstrap(settings)
    except MasterKeyError as exc:  # a wrong or unreadable master key: say so, no traceback
        raise SystemExit(f"telerad: {exc}") from None
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

    try:
        handles = start_listeners(platform, tls)
    except OSError as exc:  # a port in use: say which, no traceback
        platform.close()
        raise SystemExit(f"telerad: cannot listen: {exc}") from None
    app = create_app(platform)
    s = settings
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=s.http_host,
            port=s.http_port,
            log_level="warning",
            access_log=False,
            # uvicorn's own context would have no TLS 1.2 floor: it gets ours instead.
            ssl_context_factory=None if tls is None else (lambda _config, _default: tls.https),
        )
    )

    def _mark_http_up() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        platform.listeners["http"] = server.started

    platform.listeners["http"] = False
    threading.Thread(target=_mark_http_up, daemon=True).start()
    scheme = "http" if tls is None else "https"
    dicom_tls = "" if tls is None else f"  DICOM TLS {s.dicom_host}:{s.dicom_tls_port}"
    mllp_tls = "" if tls is None else f"  MLLP TLS {s.mllp_host}:{s.mllp_tls_port}"
    print(
        f"telerad: web {scheme}://{s.http_host}:{s.http_port}/  viewer /viewer  "
        f"DICOMweb /dicom-web  DICOM {s.dicom_aet}@{s.dicom_host}:{s.dicom_port}{dicom_tls}  "
        f"HL7 MLLP {s.mllp_host}:{s.mllp_port}{mllp_tls}",
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
