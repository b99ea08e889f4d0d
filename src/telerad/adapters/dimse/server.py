"""The archive's DIMSE listener: one tuned pynetdicom AE serving every service in threads."""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import _config, evt
from pynetdicom.transport import ThreadedAssociationServer

from telerad.adapters.dimse.commitment import CommitmentSCP
from telerad.adapters.dimse.contexts import (
    MODALITY_WORKLIST_FIND,
    follow_requestor_order,
    supported_contexts,
)
from telerad.adapters.dimse.find import handle_find
from telerad.adapters.dimse.gate import gated_handler
from telerad.adapters.dimse.limits import AssociationLimits
from telerad.adapters.dimse.mpps import MppsSCP
from telerad.adapters.dimse.mwl import handle_worklist
from telerad.adapters.dimse.retrieve import handle_get, handle_move
from telerad.adapters.dimse.status import SUCCESS
from telerad.adapters.dimse.store import StoreSCP
from telerad.adapters.dimse.tuned_ae import TunedAE
from telerad.adapters.dimse.tuned_transport import TunedAssociationServer
from telerad.services.platform import Platform

log = logging.getLogger(__name__)


def quiet_libraries() -> None:
    """No per-message logging: it costs time per instance and would log identifiers (PHI).

    pydicom warns about every non-conformant value it reads, quoting the value
    (a malformed birth date or name would end up in the log), so its warnings
    are silenced too; real errors are still logged.
    """
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?$")


class ListeningServer(TunedAssociationServer):
    """The tuned server with room in its listen backlog for a burst of connections
    (socketserver's 5 makes the kernel drop SYNs, and peers wait a second each)."""

    request_queue_size = 128


@dataclass
class DimseServer:
    """Handle on a running listener."""

    ae: TunedAE
    server: ThreadedAssociationServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def shutdown(self) -> None:
        """Stop accepting, end the open associations, close the socket."""
        self.server.shutdown()
        self.server.server_close()
        for assoc in list(self.ae.active_associations):
            with contextlib.suppress(Exception):
                assoc.abort()
        self.thread.join(timeout=5)


def _echo(event: Any) -> int:
    return SUCCESS


def _find(event: Any, platform: Platform) -> Iterator[tuple[Any, Any]]:
    """EVT_C_FIND: the Modality Worklist model has its own handler; Query/Retrieve the other."""
    if str(event.request.AffectedSOPClassUID) == MODALITY_WORKLIST_FIND:
        return handle_worklist(event, platform)
    return handle_find(event, platform)


@dataclass
class _Activity:
    """What one association did, for the line logged when it ends (counts only, no PHI)."""

    started: float = field(default_factory=time.monotonic)
    stored: int = 0
    refused: int = 0


def _activity(assoc: Any) -> _Activity:
    found = getattr(assoc, "_telerad_activity", None)
    if found is None:
        found = assoc._telerad_activity = _Activity()
    return found


def _established(event: Any) -> None:
    assoc = event.assoc
    _activity(assoc)
    log.info(
        "association from %s at %s:%s",
        str(assoc.requestor.ae_title).strip(),
        assoc.requestor.address,
        assoc.requestor.port,
    )


def _ended(event: Any) -> None:
    """EVT_RELEASED / EVT_ABORTED: how many instances the association stored or had refused."""
    assoc = event.assoc
    done = _activity(assoc)
    how = "released" if event.event is evt.EVT_RELEASED else "aborted"
    log.info(
        "association from %s %s after %.1f s: %d instances stored, %d refused",
        str(assoc.requestor.ae_title).strip(),
        how,
        time.monotonic() - done.started,
        done.stored,
        done.refused,
    )


def _counted(store: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The C-STORE handler, counting its answers per association (one thread each)."""

    def handler(event: Any) -> Any:
        status = store(event)
        done = _activity(event.assoc)
        if isinstance(status, int) and status == SUCCESS:
            done.stored += 1
        else:
            done.refused += 1
        return status

    return handler


def start_dimse_server(
    platform: Platform,
    *,
    acse_timeout: float = 30.0,
    network_timeout: float = 60.0,
    dimse_timeout: float = 60.0,
    port: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> DimseServer:
    """Listen on (settings.dicom_host, settings.dicom_port) without blocking.

    ``port`` overrides the settings' port (0 picks a free one; see
    :attr:`DimseServer.port`). The timeouts are in seconds: ``acse_timeout``
    bounds association negotiation (and a connection that never sends an
    A-ASSOCIATE-RQ), ``network_timeout`` an idle association or a PDU that
    stops half-way, ``dimse_timeout`` the wait for a peer's DIMSE response.
    With ``ssl_context`` every connection is TLS (see :mod:`telerad.adapters.tls`);
    the handshake is bounded by ``acse_timeout``.
    """
    settings = platform.settings
    quiet_libraries()
    ae = TunedAE(ae_title=settings.dicom_aet)
    ae.maximum_pdu_size = settings.dicom_max_pdu
    limits = AssociationLimits(settings.dicom_max_associations)
    # limits.py decides; pynetdicom's own check counts threads still negotiating too.
    ae.maximum_associations = 1 << 30
    ae.acse_timeout = acse_timeout
    ae.network_timeout = network_timeout
    ae.dimse_timeout = dimse_timeout
    ae.connection_timeout = 10
    # Any Called AE title is accepted (peers configured with an old title keep working);
    # the calling AE title and address decide who may associate and for which facility
    # (gate.py).
    ae.require_called_aet = False
    ae.require_calling_aet = []
    for cx in supported_contexts():
        assert cx.abstract_syntax is not None
        ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax, cx.scu_role, cx.scp_role)
    store = _counted(StoreSCP(platform))
    ae.store_handler = store  # served inline in the DUL thread; EVT_C_STORE is the fallback
    mpps = MppsSCP(platform)
    handlers: list[Any] = [
        (evt.EVT_C_ECHO, _echo),
        (evt.EVT_C_STORE, store),
        (evt.EVT_C_FIND, _find, [platform]),
        (evt.EVT_C_GET, handle_get, [platform]),
        (evt.EVT_C_MOVE, handle_move, [platform]),
        (evt.EVT_N_ACTION, CommitmentSCP(platform)),
        (evt.EVT_N_CREATE, mpps.create),
        (evt.EVT_N_SET, mpps.set),
        (evt.EVT_REQUESTED, follow_requestor_order),
        (evt.EVT_ESTABLISHED, _established),
        (evt.EVT_RELEASED, _ended),
        (evt.EVT_ABORTED, _ended),
    ]
    address = (settings.dicom_host, settings.dicom_port if port is None else port)
    server = ae.make_server(
        address,
        ssl_context=ssl_context,
        evt_handlers=handlers,
        server_class=ListeningServer,
        request_handler=gated_handler(platform, limits),
    )
    ae._servers.append(server)
    kind = "DIMSE" if ssl_context is None else "DICOM TLS"
    name = "dimse-listener" if ssl_context is None else "dimse-tls-listener"
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    log.info(
        "%s listener %s on %s:%s", kind, settings.dicom_aet, address[0], server.server_address[1]
    )
    return DimseServer(ae, server, thread)
