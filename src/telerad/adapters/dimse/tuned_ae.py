"""pynetdicom's application entity, tuned: its outgoing associations are tuned too.

Overrides :meth:`pynetdicom.ae.ApplicationEntity.associate` (pynetdicom 3.0.4,
see :mod:`telerad.adapters.dimse.upstream`) with a copy that makes a
:class:`~telerad.adapters.dimse.tuned_association.TunedAssociation` on a
:class:`~telerad.adapters.dimse.tuned_transport.TunedSocket`, so C-MOVE
sub-operations and Storage Commitment reports sent on a new association get
the waiting reactors, TCP_NODELAY and the PDU ceiling of the listener's. The
listener itself (:mod:`telerad.adapters.dimse.server`) serves with this AE;
its ``store_handler`` is served inline by
:class:`~telerad.adapters.dimse.tuned_dimse.FastDIMSE`.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from copy import deepcopy
from typing import Any

from pynetdicom._globals import MODE_REQUESTOR
from pynetdicom.ae import ApplicationEntity
from pynetdicom.association import Association
from pynetdicom.transport import AddressInformation

from telerad.adapters.dimse.tuned_association import TunedAssociation
from telerad.adapters.dimse.tuned_dul import pdu_ceiling
from telerad.adapters.dimse.tuned_transport import TunedSocket


class TunedAE(ApplicationEntity):
    """An AE whose outgoing associations (C-MOVE, storage commitment) are tuned too."""

    #: Serves C-STORE requests inline (see FastDIMSE); None: pynetdicom's EVT_C_STORE path.
    store_handler: Callable[[Any], Any] | None = None

    def associate(  # type: ignore[override]
        self,
        addr: str,
        port: int,
        contexts: list[Any] | None = None,
        ae_title: str = "ANY-SCP",
        max_pdu: int = 0,
        ext_neg: list[Any] | None = None,
        evt_handlers: list[Any] | None = None,
        tls_args: tuple[ssl.SSLContext, str] | None = None,
        **_ignored: Any,
    ) -> Association:

        remote = AddressInformation.from_addr_port(addr, port)
        local = AddressInformation.from_tuple(
            ("::0", 0) if remote.address_family == socket.AF_INET6 else ("", 0)
        )
        assoc = TunedAssociation(self, MODE_REQUESTOR, pdu_ceiling(self.maximum_pdu_size))
        assoc.name = f"RequestorThread@{time.strftime('%Y%m%d%H%M%S')}"
        assoc_socket = TunedSocket(assoc, address=local)
        assoc_socket.tls_args = tls_args
        assoc.set_socket(assoc_socket)
        assoc.acceptor.ae_title = ae_title
        assoc.acceptor.address_info = remote
        assoc.requestor.address_info = local
        assoc.requestor.ae_title = self.ae_title
        assoc.requestor.maximum_length = max_pdu if max_pdu else self.maximum_pdu_size
        assoc.requestor.implementation_class_uid = self.implementation_class_uid
        assoc.requestor.implementation_version_name = self.implementation_version_name
        for item in ext_neg or []:
            assoc.requestor.add_negotiation_item(item)
        proposed = deepcopy(contexts or self.requested_contexts)
        if not proposed:
            raise RuntimeError("no presentation contexts to propose")
        for i, context in enumerate(proposed):
            context.context_id = 2 * i + 1
        assoc.requestor.requested_contexts = proposed
        for handler in evt_handlers or []:
            assoc.bind(*handler)
        assoc.request()
        if assoc.is_established:
            assoc.start()
        return assoc
