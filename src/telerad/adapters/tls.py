"""TLS for the archive's listeners: server contexts from settings, peer certificate fingerprints.

One policy for every listener (HTTPS, DICOM TLS, MLLP over TLS): TLS 1.2 at
least, forward-secret AEAD cipher suites only (TLS 1.3 suites are always
AEAD), the server's certificate chain and key from PEM files, and client
certificates checked against a CA file when one is given.
"""

from __future__ import annotations

import enum
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telerad.config import Settings

#: TLS 1.2 suites: ECDHE or DHE key exchange, AES-GCM or ChaCha20-Poly1305
#: (the BCP 195 / DICOM PS3.15 B.9 non-downgrading profile's suites and their
#: ChaCha20 siblings). No CBC, no RSA key transport, no anonymous suites.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!PSK:!SRP"


class TLSConfigError(Exception):
    """The TLS settings name a file that is missing, unreadable or not what it should be."""


class ClientCerts(enum.Enum):
    """What a listener asks of clients when a client CA is configured."""

    REQUIRED = ssl.CERT_REQUIRED  # mutual TLS: no valid client certificate, no connection
    OPTIONAL = ssl.CERT_OPTIONAL  # a certificate, when sent, must chain to the client CA


def _readable(path: Path, setting: str) -> Path:
    try:
        with path.open("rb") as f:
            f.read(1)
    except FileNotFoundError:
        raise TLSConfigError(f"{setting}: {path}: no such file") from None
    except IsADirectoryError:
        raise TLSConfigError(f"{setting}: {path}: is a directory, not a PEM file") from None
    except OSError as exc:
        raise TLSConfigError(f"{setting}: {path}: cannot be read ({exc.strerror})") from None
    return path


def server_context(
    cert: Path,
    key: Path,
    client_ca: Path | None = None,
    client_certs: ClientCerts = ClientCerts.REQUIRED,
) -> ssl.SSLContext:
    """A server-side context: TLS 1.2+, AEAD ciphers, ``cert``/``key``, optional client CA.

    Without ``client_ca`` no client certificate is asked for. Raises
    :class:`TLSConfigError` (with the setting's name) on a bad file.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= ssl.OP_SINGLE_ECDH_USE | ssl.OP_SINGLE_DH_USE
    _readable(cert, "TELERAD_TLS_CERT")
    _readable(key, "TELERAD_TLS_KEY")
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise TLSConfigError(
            f"TELERAD_TLS_CERT/TELERAD_TLS_KEY: {cert}, {key}: not a PEM certificate "
            f"and its matching unencrypted private key ({exc.reason or exc})"
        ) from None
    if client_ca is None:
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    _readable(client_ca, "TELERAD_TLS_CLIENT_CA")
    try:
        ctx.load_verify_locations(cafile=client_ca)
    except ssl.SSLError as exc:
        raise TLSConfigError(
            f"TELERAD_TLS_CLIENT_CA: {client_ca}: no PEM certificate in it ({exc.reason or exc})"
        ) from None
    ctx.verify_mode = ssl.VerifyMode(client_certs.value)
    return ctx


@dataclass(frozen=True)
class ListenerContexts:
    """The contexts of the TLS listeners, built once at start."""

    https: ssl.SSLContext
    dicom: ssl.SSLContext
    mllp: ssl.SSLContext


def listener_contexts(settings: Settings) -> ListenerContexts | None:
    """Contexts for HTTPS, DICOM TLS and MLLP over TLS, or None when TLS is not configured.

    With a client CA, DICOM TLS and MLLP require a client certificate (mutual TLS) and
    HTTPS accepts one (browsers without a certificate can still sign in).
    """
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and key is None:
        if settings.tls_client_ca is not None:
            raise TLSConfigError("TELERAD_TLS_CLIENT_CA is set without TELERAD_TLS_CERT/KEY")
        return None
    if cert is None or key is None:
        missing = "TELERAD_TLS_KEY" if key is None else "TELERAD_TLS_CERT"
        raise TLSConfigError(f"{missing} is not set: TLS needs both a certificate and a key")
    ca = settings.tls_client_ca
    return ListenerContexts(
        https=server_context(cert, key, ca, ClientCerts.OPTIONAL),
        dicom=server_context(cert, key, ca, ClientCerts.REQUIRED),
        mllp=server_context(cert, key, ca, ClientCerts.REQUIRED),
    )


def client_context(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client-side context for the platform's own connections out (results to a
    facility): TLS 1.2+, AEAD ciphers, the peer's certificate checked against ``ca``
    (else the system's CAs) and its host name; ``cert``/``key`` are presented when a
    peer asks for a client certificate (mutual TLS)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION
    if ca is not None:
        _readable(ca, "TELERAD_RESULTS_TLS_CA")
        try:
            ctx.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise TLSConfigError(
                f"TELERAD_RESULTS_TLS_CA: {ca}: no PEM certificate in it ({exc.reason or exc})"
            ) from None
    if cert is not None and key is not None:
        _readable(cert, "TELERAD_TLS_CERT")
        _readable(key, "TELERAD_TLS_KEY")
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise TLSConfigError(
                f"TELERAD_TLS_CERT/TELERAD_TLS_KEY: {cert}, {key}: not a PEM certificate "
                f"and its matching unencrypted private key ({exc.reason or exc})"
            ) from None
    return ctx


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex (``openssl x509 -fingerprint -sha256``)."""
    return hashlib.sha256(der).hexdigest()


def peer_fingerprint(assoc: Any) -> str | None:
    """SHA-256 fingerprint of the certificate the peer of a pynetdicom association presented.

    None on a plain TCP association or when the peer sent no certificate
    (DICOM TLS without a client CA does not ask for one). For per-peer
    pinning at association time (``evt.EVT_REQUESTED`` or later).
    """
    assoc_socket = getattr(getattr(assoc, "dul", None), "socket", None)
    sock = getattr(assoc_socket, "socket", None)
    if not isinstance(sock, ssl.SSLSocket):
        return None
    try:
        der = sock.getpeercert(binary_form=True)
    except (ValueError, OSError):  # not connected, or the handshake has not finished
        return None
    return certificate_fingerprint(der) if der else None
