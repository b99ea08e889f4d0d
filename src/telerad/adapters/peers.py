"""Is a peer calling from where it was registered? Shared by the DICOM and HL7 listeners.

A registered peer (a facility's AE or HL7 sender, a DICOM node) may name the
host it calls from — an address, a network in CIDR notation or a host name
(resolved at most once a minute) — and the SHA-256 of the TLS client
certificate it must present. A name alone (an AE title, MSH-4) is not proof.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

_RESOLVE_SECONDS = 60.0
_resolved: dict[str, tuple[float, frozenset[str]]] = {}
_resolve_lock = threading.Lock()


def _addresses(name: str) -> frozenset[str]:
    """Addresses of a host name (cached for a minute)."""
    now = time.monotonic()
    with _resolve_lock:
        hit = _resolved.get(name)
    if hit and hit[0] > now:
        return hit[1]
    try:
        found = frozenset(str(info[4][0]) for info in socket.getaddrinfo(name, None))
    except OSError:
        found = frozenset()
    with _resolve_lock:
        _resolved[name] = (now + _RESOLVE_SECONDS, found)
    return found


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        value = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(value, ipaddress.IPv6Address) and value.ipv4_mapped is not None:
        return value.ipv4_mapped
    return value


def host_matches(registered: str, address: str) -> bool:
    """Whether ``address`` is the registered host: an address, a network or a name."""
    if not registered:
        return True
    peer = _ip(address)
    if peer is None:
        return False
    try:
        return peer in ipaddress.ip_network(registered, strict=False)
    except ValueError:
        pass
    return any(_ip(a) == peer for a in _addresses(registered))


def calls_as_registered(host: str, cert_pin: str, address: str, cert: str | None) -> bool:
    """Whether a peer at ``address`` presenting ``cert`` matches its registration."""
    return host_matches(host, address) and (not cert_pin or cert == cert_pin)
