"""HTTPS and DICOM TLS against a live ``telerad serve``: dcmtk, pynetdicom and httpx as peers.

Certificates come from a test CA made here; a second CA signs the certificate
of a client that must be refused. Every refusal test has a control that shows
the same client would have got through a weaker server.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dimse_messages import C_ECHO_RQ
from pynetdicom.dimse_primitives import C_ECHO
from pynetdicom.pdu import A_RELEASE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import A_RELEASE
from pynetdicom.sop_class import CTImageStorage, Verification
from tests.conftest import LiveServer, free_port, require_tool, start_server
from tests.integration.test_dimse_support import (
    associate_rq,
    ct_study,
    dcmtk,
    read_index,
    storescu,
)

from telerad.adapters.dimse.server import start_dimse_server
from telerad.adapters.tls import (
    ClientCerts,
    certificate_fingerprint,
    peer_fingerprint,
    server_context,
)
from telerad.bootstrap import Platform

# The TLS 1.0/1.1 clients below are deliberate.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")

# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    ca: Path  # the CA that signs the server's and the good client's certificates
    server: Pair
    client: Pair
    rogue_client: Pair  # signed by another CA


Issued = tuple[x509.Certificate, rsa.RSAPrivateKey]


def _write_pair(folder: Path, name: str, issued: Issued) -> Pair:
    cert, key = issued
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return Pair(cert_path, key_path)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, issuer: Issued | None, extensions: list[x509.ExtensionType]) -> Issued:
    """A certificate valid for a day; self-signed when ``issuer`` is None."""
    # RSA: dcmtk's BCP 195 TLS 1.2 suites are ECDHE_RSA and DHE_RSA.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if issuer is None:
        issuer_name, issuer_key = _name(subject), key
    else:
        issuer_name, issuer_key = issuer[0].subject, issuer[1]
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    for extension in extensions:
        critical = isinstance(extension, (x509.BasicConstraints, x509.KeyUsage))
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _ca(cn: str) -> Issued:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return _issue(cn, None, [x509.BasicConstraints(ca=True, path_length=None), usage])


def _leaf(cn: str, issuer: Issued, server: bool) -> Issued:
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    extensions: list[x509.ExtensionType] = [
        x509.BasicConstraints(ca=False, path_length=None),
        x509.ExtendedKeyUsage([purpose]),
    ]
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        extensions.append(x509.SubjectAlternativeName(names))
    return _issue(cn, issuer, extensions)


def _make_pki(folder: Path) -> PKI:
    good_ca, other_ca = _ca("telerad test CA"), _ca("another CA")
    ca_path = folder / "ca.pem"
    ca_path.write_bytes(good_ca[0].public_bytes(serialization.Encoding.PEM))
    return PKI(
        ca=ca_path,
        server=_write_pair(folder, "server", _leaf("telerad archive", good_ca, server=True)),
        client=_write_pair(folder, "client", _leaf("MODALITY1", good_ca, server=False)),
        rogue_client=_write_pair(folder, "rogue", _leaf("MODALITY1", other_ca, server=False)),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return _make_pki(tmp_path_factory.mktemp("pki"))


def _serve(folder: Path, env: dict[str, str]) -> Iterator[LiveServer]:
    data_dir = folder / "data"
    data_dir.mkdir()
    server = start_server(data_dir, env)
    yield server
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="module")
def tls_server(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """HTTPS and DICOM TLS; no client CA, so clients need no certificate."""
    env = {"TELERAD_TLS_CERT": str(pki.server.cert), "TELERAD_TLS_KEY": str(pki.server.key)}
    yield from _serve(tmp_path_factory.mktemp("tls"), env)


@pytest.fixture(scope="module")
def mtls_server(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """DICOM TLS with mutual authentication: client certificates from the test CA only."""
    env = {
        "TELERAD_TLS_CERT": str(pki.server.cert),
        "TELERAD_TLS_KEY": str(pki.server.key),
        "TELERAD_TLS_CLIENT_CA": str(pki.ca),
    }
    yield from _serve(tmp_path_factory.mktemp("mtls"), env)


def tls_port(server: LiveServer) -> int:
    return int(server.env["TELERAD_DICOM_TLS_PORT"])


def http_port(server: LiveServer) -> int:
    return int(server.env["TELERAD_HTTP_PORT"])


def client_context(pki: PKI, pair: Pair | None = None) -> ssl.SSLContext:
    """A client that trusts the test CA (and checks the name), with a certificate if given."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if pair is not None:
        ctx.load_cert_chain(pair.cert, pair.key)
    return ctx


# --------------------------------------------------------------------------- DICOM peers


def echo(port: int, ctx: ssl.SSLContext | None) -> bool:
    """A pynetdicom C-ECHO over TLS (``ctx``) or plain TCP; True when it succeeded."""
    ae = AE(ae_title="PYSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = 10
    ae.add_requested_context(Verification)
    tls_args = None if ctx is None else (ctx, "localhost")
    assoc = ae.associate("127.0.0.1", port, ae_title="TELERAD", tls_args=tls_args)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0x0000
    finally:
        assoc.release()


def tls_dcmtk(pki: PKI, pair: Pair | None) -> list[str]:
    """dcmtk's TLS options: authenticated with ``pair``, else anonymous; trusting the test CA."""
    who = ["+tla"] if pair is None else ["+tls", str(pair.key), str(pair.cert)]
    return [*who, "+cf", str(pki.ca)]


def test_echoscu_and_storescu_over_tls(tls_server: LiveServer, pki: PKI, tmp_path: Path) -> None:
    require_tool("echoscu")
    require_tool("storescu")
    port = tls_port(tls_server)
    result = dcmtk("echoscu", *tls_dcmtk(pki, None), "-aec", "TELERAD", "127.0.0.1", str(port))
    assert result.returncode == 0, result.stderr
    study = ct_study(tmp_path, slices=3)
    result = storescu(port, study.files, *tls_dcmtk(pki, None))
    assert result.returncode == 0, result.stdout + result.stderr
    index = read_index(tls_server.data_dir)
    for path, uid in zip(study.files, study.sop_uids, strict=True):
        location = index.find_instance(uid)
        assert location is not None
        stored = pydicom.dcmread(tls_server.data_dir / "blobs" / location.blob_key)
        assert stored.PixelData == pydicom.dcmread(path).PixelData
    # The same study is found by QIDO-RS over HTTPS, with the server's certificate checked.
    response = httpx.get(
        tls_server.dicomweb + "/studies",
        params={"StudyInstanceUID": study.study_uid},
        verify=client_context(pki),
    )
    assert response.status_code == 200, response.text
    assert [s["0020000D"]["Value"][0] for s in response.json()] == [study.study_uid]


def test_storescu_does_not_get_through_without_tls(tls_server: LiveServer, tmp_path: Path) -> None:
    """Plain storescu against the TLS port stores nothing (and the port still serves TLS)."""
    require_tool("storescu")
    study = ct_study(tmp_path, slices=1)
    result = storescu(tls_port(tls_server), study.files)
    assert result.returncode != 0
    assert read_index(tls_server.data_dir).find_instance(study.sop_uids[0]) is None


def test_pynetdicom_stores_over_tls(tls_server: LiveServer, pki: PKI, tmp_path: Path) -> None:
    study = ct_study(tmp_path, slices=20, size=32)
    ae = AE(ae_title="PYSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(
        "127.0.0.1",
        tls_port(tls_server),
        ae_title="TELERAD",
        tls_args=(client_context(pki), "localhost"),
    )
    assert assoc.is_established
    try:
        for path in study.files:
            assert assoc.send_c_store(pydicom.dcmread(path)).Status == 0x0000
    finally:
        assoc.release()
    index = read_index(tls_server.data_dir)
    assert all(index.find_instance(uid) is not None for uid in study.sop_uids)


def _read_pdu(sock: socket.socket) -> bytes:
    header = b""
    while len(header) < 6:
        header += sock.recv(6 - len(header)) or b"!" * 6
    length = int.from_bytes(header[2:6], "big")
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            break
        body += chunk
    return header + body


def test_pdus_sharing_one_tls_record_are_all_served(tls_server: LiveServer, pki: PKI) -> None:
    """A C-ECHO-RQ and an A-RELEASE-RQ in one TLS record: the second waits, decrypted, in the
    TLS layer where select() cannot see it; a reactor that only asks select() never answers it."""
    echo_rq = C_ECHO()
    echo_rq.MessageID = 1
    echo_rq.AffectedSOPClassUID = Verification
    message = C_ECHO_RQ()
    message.primitive_to_message(echo_rq)
    pdata = b""
    for primitive in message.encode_msg(1, 16384):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        pdata += pdu.encode()
    release = A_RELEASE_RQ()
    release.from_primitive(A_RELEASE())
    raw = socket.create_connection(("127.0.0.1", tls_port(tls_server)), timeout=10)
    with client_context(pki).wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(associate_rq())
        assert _read_pdu(tls)[:1] == b"\x02"  # A-ASSOCIATE-AC
        tls.sendall(pdata + release.encode())  # one write, one record
        assert _read_pdu(tls)[:1] == b"\x04"  # the C-ECHO-RSP
        assert _read_pdu(tls)[:1] == b"\x06"  # A-RELEASE-RP, not a network timeout


def test_healthz_over_https_lists_the_dicom_tls_listener(tls_server: LiveServer, pki: PKI) -> None:
    assert tls_server.http_url.startswith("https://")
    response = httpx.get(tls_server.http_url + "/healthz", verify=client_context(pki))
    assert response.status_code == 200
    assert response.json()["listeners"] == {
        "dimse": True,
        "dicom-tls": True,
        "mllp": True,
        "mllp-tls": True,
        "http": True,
    }
    # The plain DIMSE listener is unchanged.
    assert echo(tls_server.dicom_port, None)


def test_untrusted_server_certificate_is_refused_by_a_checking_client(
    tls_server: LiveServer,
) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(tls_server.http_url + "/healthz", verify=ssl.create_default_context())


# --------------------------------------------------------------------------- mutual TLS


def test_mutual_tls_needs_a_certificate_from_the_client_ca(
    mtls_server: LiveServer, pki: PKI, tmp_path: Path
) -> None:
    require_tool("echoscu")
    require_tool("storescu")
    port = tls_port(mtls_server)
    good, rogue = client_context(pki, pki.client), client_context(pki, pki.rogue_client)
    assert not echo(port, client_context(pki)), "a client without a certificate got in"
    assert not echo(port, rogue), "a certificate from another CA got in"
    assert echo(port, good)

    anonymous = dcmtk("echoscu", *tls_dcmtk(pki, None), "-aec", "TELERAD", "127.0.0.1", str(port))
    assert anonymous.returncode != 0
    wrong_ca = dcmtk(
        "echoscu", *tls_dcmtk(pki, pki.rogue_client), "-aec", "TELERAD", "127.0.0.1", str(port)
    )
    assert wrong_ca.returncode != 0
    study = ct_study(tmp_path, slices=2)
    result = storescu(port, study.files, *tls_dcmtk(pki, pki.client))
    assert result.returncode == 0, result.stdout + result.stderr
    index = read_index(mtls_server.data_dir)
    assert all(index.find_instance(uid) is not None for uid in study.sop_uids)


def test_mutual_tls_makes_client_certificates_optional_on_https(
    mtls_server: LiveServer, pki: PKI
) -> None:
    url = mtls_server.http_url + "/healthz"
    assert httpx.get(url, verify=client_context(pki)).status_code == 200
    assert httpx.get(url, verify=client_context(pki, pki.client)).status_code == 200
    with pytest.raises(httpx.HTTPError):  # a certificate that is sent must chain to the CA
        httpx.get(url, verify=client_context(pki, pki.rogue_client))


def test_peer_fingerprint_of_a_dimse_association(platform: Platform, pki: PKI) -> None:
    """The certificate a peer presented, as a SHA-256 fingerprint, for per-peer pinning."""
    ctx = server_context(pki.server.cert, pki.server.key, pki.ca, ClientCerts.REQUIRED)
    servers = [
        start_dimse_server(platform, port=0, ssl_context=ctx),
        start_dimse_server(platform, port=0),
    ]
    try:
        expected = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(pki.client.cert.read_text()))
        seen = []
        for server, ctx_or_none in zip(
            servers, [client_context(pki, pki.client), None], strict=True
        ):
            ae = AE(ae_title="PYSCU")
            ae.add_requested_context(Verification)
            tls_args = None if ctx_or_none is None else (ctx_or_none, "localhost")
            assoc = ae.associate("127.0.0.1", server.port, ae_title="TELERAD", tls_args=tls_args)
            assert assoc.is_established
            try:
                (acceptor,) = server.ae.active_associations
                seen.append(peer_fingerprint(acceptor))
            finally:
                assoc.release()
        assert seen == [expected, None]
        assert len(expected) == 64
    finally:
        for server in servers:
            server.shutdown()


# --------------------------------------------------------------------------- hostile peers


def _read_until_closed(sock: socket.socket, limit: float = 10) -> bytes:
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_plain_associate_rq_on_the_tls_port_gets_no_association(
    tls_server: LiveServer, pki: PKI
) -> None:
    rq = associate_rq()
    # Control: the same bytes in clear on the plain port are accepted (A-ASSOCIATE-AC, 0x02).
    with socket.create_connection(("127.0.0.1", tls_server.dicom_port), timeout=10) as s:
        s.sendall(rq)
        assert s.recv(1) == b"\x02"
    with socket.create_connection(("127.0.0.1", tls_port(tls_server)), timeout=10) as s:
        s.sendall(rq)
        answer = _read_until_closed(s)
    assert not answer.startswith(b"\x02"), "an A-ASSOCIATE-AC in clear on the TLS port"
    assert answer[:1] in (b"", b"\x15")  # nothing, or a TLS alert record
    assert echo(tls_port(tls_server), client_context(pki))


def test_a_silent_connection_does_not_hold_up_other_clients(
    tls_server: LiveServer, pki: PKI
) -> None:
    """The TLS handshake is not done in the accepting thread, where one idle client blocks all."""
    with socket.create_connection(("127.0.0.1", tls_port(tls_server)), timeout=10):
        # Silent, and ahead of the echo in the listen queue (accepted first, in order):
        # a handshake in the accepting thread would hold the echo up.
        started = time.monotonic()
        assert echo(tls_port(tls_server), client_context(pki))
        assert time.monotonic() - started < 5


# TLS 1.0 and 1.1: refused by telerad, accepted by a control server that allows them.


def old_client(version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


@pytest.fixture(scope="module")
def weak_control_server(pki: PKI) -> Iterator[int]:
    """A TLS server that allows TLS 1.0 at the lowest security level: handshakes, then closes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.load_cert_chain(pki.server.cert, pki.server.key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(5)
    listener.close()


def handshake(port: int, ctx: ssl.SSLContext) -> str:
    """Negotiated protocol version; raises ssl.SSLError / OSError when refused."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return str(tls.version())
    finally:
        raw.close()


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"]
)
@pytest.mark.parametrize("listener", ["dicom-tls", "https"])
def test_tls_before_1_2_is_refused(
    tls_server: LiveServer, weak_control_server: int, version: ssl.TLSVersion, listener: str
) -> None:
    client = old_client(version)
    try:
        negotiated = handshake(weak_control_server, client)
    except (ssl.SSLError, OSError) as exc:
        pytest.skip(f"the local OpenSSL cannot speak {version.name} at all: {exc}")
    assert negotiated == {"TLSv1": "TLSv1", "TLSv1_1": "TLSv1.1"}[version.name]
    port = tls_port(tls_server) if listener == "dicom-tls" else http_port(tls_server)
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(port, client)
    # A TLS 1.2 client still gets in.
    modern = old_client(ssl.TLSVersion.TLSv1_2)
    modern.set_ciphers("DEFAULT")
    assert handshake(port, modern) == "TLSv1.2"


def test_plain_http_on_the_https_port_gets_no_data(tls_server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", http_port(tls_server)), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = _read_until_closed(s)
    assert b"listeners" not in answer
    assert not answer.startswith(b"HTTP/")


# --------------------------------------------------------------------------- configuration


def _serve_fails(tmp_path: Path, env: dict[str, str]) -> str:
    full = dict(os.environ)
    full.update(
        TELERAD_DATA_DIR=str(tmp_path / "data"),
        TELERAD_HTTP_PORT=str(free_port()),
        TELERAD_DICOM_PORT=str(free_port()),
        TELERAD_DICOM_TLS_PORT=str(free_port()),
    )
    full.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "telerad.cli.main", "serve"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_bad_tls_files_stop_the_server_with_a_clear_message(pki: PKI, tmp_path: Path) -> None:
    cert, key = str(pki.server.cert), str(pki.server.key)
    missing = str(tmp_path / "nope.pem")
    err = _serve_fails(tmp_path, {"TELERAD_TLS_CERT": missing, "TELERAD_TLS_KEY": key})
    assert "TELERAD_TLS_CERT" in err and "no such file" in err
    err = _serve_fails(tmp_path, {"TELERAD_TLS_CERT": cert})
    assert "TELERAD_TLS_KEY is not set" in err
    err = _serve_fails(tmp_path, {"TELERAD_TLS_CERT": cert, "TELERAD_TLS_KEY": str(pki.ca)})
    assert "not a PEM certificate" in err
    err = _serve_fails(
        tmp_path, {"TELERAD_TLS_CERT": cert, "TELERAD_TLS_KEY": key, "TELERAD_TLS_CLIENT_CA": key}
    )
    assert "TELERAD_TLS_CLIENT_CA" in err
