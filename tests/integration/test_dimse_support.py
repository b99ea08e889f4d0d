"""Helpers shared by the DIMSE tests (this module holds no tests of its own).

Every test sends objects under fresh UIDs so that tests sharing the session's
live server never see each other's data.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_context, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.sop_class import Verification
from pynetdicom.transport import AddressInformation
from tests.support import eventually

from telerad.storage.db.database import make_engine
from telerad.storage.db.index_repository import SqlIndex
from telerad.synthetic import StudySpec, ct_series, to_bytes

#: pydicom's sample files and the storescu option that proposes their transfer syntax.
SAMPLES: dict[str, str] = {
    "CT_small.dcm": "-xe",  # explicit VR little endian
    "MR_small_implicit.dcm": "-xi",  # implicit VR little endian
    "MR_small_bigendian.dcm": "-xb",  # explicit VR big endian
    "image_dfl.dcm": "-xd",  # deflated explicit VR little endian
    "SC_rgb_jpeg_dcmtk.dcm": "-xy",  # JPEG baseline .50
    "JPEG-lossy.dcm": "-xx",  # JPEG extended .51
    "JPEG-LL.dcm": "-xs",  # JPEG lossless SV1 .70
    "JPEG2000.dcm": "-xw",  # JPEG 2000 .91
    "MR_small_jp2klossless.dcm": "-xv",  # JPEG 2000 lossless .90
    "SC_rgb_rle.dcm": "-xr",  # RLE lossless .5
    "JPEGLSNearLossless_08.dcm": "-xu",  # JPEG-LS near-lossless .81
}


def sample_path(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom sample {name} is missing"
    return Path(str(path))


def dcmtk_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    return env


@dataclass
class Study:
    """Files of one study written under fresh UIDs."""

    study_uid: str
    patient_id: str
    files: list[Path] = field(default_factory=list)
    sop_uids: list[str] = field(default_factory=list)


def renamed(ds: Dataset, study_uid: str, series_uid: str, patient_id: str, **attrs: Any) -> Dataset:
    """The dataset under new Study/Series/SOP Instance UIDs (pixel data and encoding untouched)."""
    sop_uid = generate_uid("2.25.")
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.PatientID = patient_id
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def sample_study(
    names: list[str], folder: Path, patient_id: str | None = None, **attrs: Any
) -> Study:
    """pydicom samples copied into one new study (one series per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    study = Study(generate_uid("2.25."), patient_id or "T" + generate_uid("2.25.")[-10:])
    for name in names:
        ds = pydicom.dcmread(sample_path(name))
        renamed(ds, study.study_uid, generate_uid("2.25."), study.patient_id, **attrs)
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        study.files.append(path)
        study.sop_uids.append(ds.SOPInstanceUID)
    return study


def ct_study(folder: Path, slices: int = 4, size: int = 64, **spec: Any) -> Study:
    """A generated CT series written as files."""
    folder.mkdir(parents=True, exist_ok=True)
    spec_obj = StudySpec(**spec)
    study = Study(spec_obj.study_uid, spec_obj.patient_id)
    for i, ds in enumerate(ct_series(spec_obj, slices=slices, rows=size, cols=size)):
        path = folder / f"ct{i:03d}.dcm"
        path.write_bytes(to_bytes(ds))
        study.files.append(path)
        study.sop_uids.append(ds.SOPInstanceUID)
    return study


def storescu(
    port: int, files: list[Path], *options: str, aet: str = "STORESCU"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "storescu",
            "-aet",
            aet,
            "-aec",
            "TELERAD",
            *options,
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        env=dcmtk_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def dcmtk(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, *args], env=dcmtk_env(), capture_output=True, text=True, timeout=timeout
    )


def read_index(data_dir: Path) -> SqlIndex:
    """A reader of a running server's index (no migrations, no blob sweeping)."""
    return SqlIndex(make_engine(f"sqlite:///{(data_dir / 'index.sqlite').resolve()}"))


def dataset_bytes(path: Path) -> tuple[str, bytes]:
    """(transfer syntax, encoded dataset without File Meta) of a Part 10 file."""
    data = path.read_bytes()
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    meta_end = 132 + 12 + int(ds.file_meta.FileMetaInformationGroupLength)
    return str(ds.file_meta.TransferSyntaxUID), data[meta_end:]


@contextmanager
def association(
    port: int, contexts: list[Any], ae_title: str = "PYSCU", **kwargs: Any
) -> Iterator[Association]:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", port, contexts=contexts, ae_title="TELERAD", **kwargs)
    assert assoc.is_established, "the archive refused the association"
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


@dataclass
class Received:
    """What a pynetdicom C-STORE SCP (C-GET requestor) received: raw bytes per SOP Instance UID."""

    items: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def handler(self, event: Any) -> int:
        ts = str(event.context.transfer_syntax)
        self.items[str(event.request.AffectedSOPInstanceUID)] = (
            ts,
            event.request.DataSet.getvalue(),
        )
        return 0x0000

    def dataset(self, sop_uid: str) -> Dataset:
        ts, raw = self.items[sop_uid]
        from pydicom.filereader import read_dataset
        from pydicom.uid import UID

        uid = UID(ts)
        stream = BytesIO(raw)
        if uid.is_deflated:
            import zlib

            stream = BytesIO(zlib.decompress(raw, -zlib.MAX_WBITS))
        ds = read_dataset(stream, uid.is_implicit_VR, uid.is_little_endian)
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = uid
        return ds

    @property
    def bind(self) -> list[Any]:
        return [(evt.EVT_C_STORE, self.handler)]


def raw_connection(port: int, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def receive_all(sock: socket.socket, limit: int = 65536) -> bytes:
    """Read until the peer closes (or the socket times out)."""
    chunks = []
    try:
        while True:
            chunk = sock.recv(limit)
            if not chunk:
                break
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def send_raw_c_store(
    assoc: Association, sop_class: str, sop_instance: str, dataset: bytes
) -> tuple[int, str]:
    """Send a C-STORE whose dataset bytes are given as they are; return (status, error comment).

    pynetdicom's send_c_store() always encodes a Dataset, so this does what it
    does internally, with bytes that need not be valid DICOM.
    """
    from pynetdicom.dimse_primitives import C_STORE

    context = next(cx for cx in assoc.accepted_contexts if cx.abstract_syntax == sop_class)
    req = C_STORE()
    req.MessageID = 7
    req.Priority = 2
    req.AffectedSOPClassUID = sop_class
    req.AffectedSOPInstanceUID = sop_instance
    req.DataSet = BytesIO(dataset)
    assoc._reactor_checkpoint.clear()
    eventually(lambda: assoc._is_paused, 10, 0.0001, "the association's reactor paused")
    try:
        assoc.dimse.send_msg(req, context.context_id)
        _, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    assert rsp is not None, "no C-STORE response"
    return int(rsp.Status), str(getattr(rsp, "ErrorComment", "") or "")


def associate_rq(calling: str = "PLAIN") -> bytes:
    """An A-ASSOCIATE-RQ for Verification from ``calling``, as bytes for the wire."""
    primitive = A_ASSOCIATE()
    primitive.calling_ae_title = calling
    primitive.called_ae_title = "TELERAD"
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    address = AddressInformation.from_tuple(("127.0.0.1", 104))
    primitive.calling_presentation_address = address
    primitive.called_presentation_address = address
    context = build_context(Verification)
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    item = MaximumLengthNotification()
    item.maximum_length_received = 16384
    primitive.user_information = [item]
    rq = A_ASSOCIATE_RQ()
    rq.from_primitive(primitive)
    return bytes(rq.encode())
