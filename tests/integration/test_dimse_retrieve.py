"""C-MOVE and C-GET against a live ``telerad serve``: movescu → storescp, getscu, pynetdicom."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import build_context, build_role
from tests.conftest import LiveServer, free_port, require_tool
from tests.integration.test_dimse_support import (
    Received,
    association,
    ct_study,
    dataset_bytes,
    dcmtk,
    dcmtk_env,
    read_index,
    sample_study,
    storescu,
)
from tests.support import eventually

from telerad.adapters.dimse.contexts import (
    PATIENT_ROOT_GET,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
)

#: Compressed samples pydicom can decode (so a converted copy can be checked pixel by pixel).
DECODABLE = {
    "JPEG2000.dcm": "-xw",
    "MR_small_jp2klossless.dcm": "-xv",
    "SC_rgb_rle.dcm": "-xr",
    "JPEGLSNearLossless_08.dcm": "-xu",
    "SC_rgb_jpeg_dcmtk.dcm": "-xy",
    "JPEG-LL.dcm": "-xs",
}


class Storescp:
    def __init__(self, folder: Path, aet: str, accept_all: bool) -> None:
        require_tool("storescp")
        self.folder = folder
        self.aet = aet
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        args = ["storescp", "-aet", aet, "-od", str(folder)]
        if accept_all:
            args.append("+xa")
        self.process = subprocess.Popen(
            [*args, str(self.port)],
            env=dcmtk_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        eventually(
            lambda: (
                dcmtk("echoscu", "-aec", aet, "127.0.0.1", str(self.port), timeout=5).returncode
                == 0
            ),
            10,
            0.1,
            "storescp answering C-ECHO",
        )

    def received(self) -> dict[str, Dataset]:
        return {
            str(ds.SOPInstanceUID): ds
            for ds in (pydicom.dcmread(p) for p in self.folder.iterdir() if p.is_file())
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def destination(live_server: LiveServer, tmp_path: Path) -> Iterator[Storescp]:
    scp = Storescp(tmp_path / "received", "DEST" + generate_uid("2.25.")[-8:], accept_all=True)
    added = live_server.telerad(
        "node", "add", scp.aet, "--host", "127.0.0.1", "--port", str(scp.port)
    )
    assert added.returncode == 0, added.stderr
    yield scp
    scp.stop()


@pytest.fixture
def plain_destination(live_server: LiveServer, tmp_path: Path) -> Iterator[Storescp]:
    """A storescp that accepts uncompressed transfer syntaxes only."""
    scp = Storescp(tmp_path / "plain", "PLAIN" + generate_uid("2.25.")[-8:], accept_all=False)
    added = live_server.telerad(
        "node", "add", scp.aet, "--host", "127.0.0.1", "--port", str(scp.port)
    )
    assert added.returncode == 0, added.stderr
    yield scp
    scp.stop()


def _send_samples(
    live_server: LiveServer, names: dict[str, str], folder: Path
) -> tuple[str, list[Path], list[str]]:
    study = sample_study(list(names), folder)
    for path, option in zip(study.files, names.values(), strict=True):
        result = storescu(live_server.dicom_port, [path], option)
        assert result.returncode == 0, result.stdout + result.stderr
    return study.study_uid, study.files, study.sop_uids


def _movescu(live_server: LiveServer, dest: str, *keys: str) -> subprocess.CompletedProcess[str]:
    args = ["-v", "-S", "-aec", "TELERAD", "-aem", dest]
    for key in keys:
        args += ["-k", key]
    return dcmtk("movescu", *args, "127.0.0.1", str(live_server.dicom_port))


def test_movescu_sends_originals_unchanged(
    live_server: LiveServer, destination: Storescp, tmp_path: Path
) -> None:
    require_tool("movescu")
    study_uid, files, sops = _send_samples(
        live_server,
        {**DECODABLE, "CT_small.dcm": "-xe", "MR_small_bigendian.dcm": "-xb"},
        tmp_path / "in",
    )
    result = _movescu(
        live_server, destination.aet, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study_uid}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Received Final Move Response (Success)" in result.stdout + result.stderr
    received = destination.received()
    assert set(received) == set(sops)
    for path, uid in zip(files, sops, strict=True):
        original = pydicom.dcmread(path)
        copy = received[uid]
        assert copy.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID, path.name
        assert copy.PixelData == original.PixelData, path.name


def test_move_converts_for_a_peer_without_the_compressed_syntax(
    live_server: LiveServer, plain_destination: Storescp, tmp_path: Path
) -> None:
    study_uid, files, sops = _send_samples(
        live_server, {**DECODABLE, "JPEG-lossy.dcm": "-xx"}, tmp_path / "in"
    )
    index = read_index(live_server.data_dir)
    before = {uid: index.find_instance(uid) for uid in sops}
    result = _movescu(
        live_server,
        plain_destination.aet,
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={study_uid}",
    )
    output = result.stdout + result.stderr
    # JPEG-lossy.dcm (12-bit JPEG extended) cannot be decoded here: one failed sub-operation.
    assert (
        "Received Final Move Response (Warning: SubOperationsCompleteOneOrMoreFailures)" in output
    )
    received = plain_destination.received()
    lossy_uid = sops[files.index(next(p for p in files if p.name == "JPEG-lossy.dcm"))]
    assert set(received) == set(sops) - {lossy_uid}
    for path, uid in zip(files, sops, strict=True):
        if uid == lossy_uid:
            continue
        copy = received[uid]
        assert copy.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
        assert np.array_equal(copy.pixel_array, pydicom.dcmread(path).pixel_array), path.name
    # The archived originals are untouched.
    after = {uid: index.find_instance(uid) for uid in sops}
    assert {u: (loc.sha256, loc.transfer_syntax_uid) for u, loc in before.items() if loc} == {
        u: (loc.sha256, loc.transfer_syntax_uid) for u, loc in after.items() if loc
    }


def test_move_to_an_unknown_destination_is_a801(live_server: LiveServer, tmp_path: Path) -> None:
    study = ct_study(tmp_path, slices=1, size=16)
    assert storescu(live_server.dicom_port, study.files).returncode == 0
    with association(live_server.dicom_port, [build_context(STUDY_ROOT_MOVE)]) as assoc:
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study.study_uid
        responses = list(assoc.send_c_move(query, "NOSUCHNODE", STUDY_ROOT_MOVE))
    assert [status.Status for status, _ in responses] == [0xA801]


def test_move_without_unique_key_is_refused(live_server: LiveServer, destination: Storescp) -> None:
    with association(live_server.dicom_port, [build_context(STUDY_ROOT_MOVE)]) as assoc:
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = generate_uid("2.25.")
        responses = list(assoc.send_c_move(query, destination.aet, STUDY_ROOT_MOVE))
    final = responses[-1][0]
    assert final.Status == 0xA900
    assert "SeriesInstanceUID" in final.ErrorComment
    assert destination.received() == {}


def test_getscu_retrieves_a_generated_ct(live_server: LiveServer, tmp_path: Path) -> None:
    require_tool("getscu")
    study = ct_study(tmp_path / "in", slices=5, size=128)
    assert storescu(live_server.dicom_port, study.files).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    result = dcmtk(
        "getscu",
        "-S",
        "-aec",
        "TELERAD",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study.study_uid}",
        "127.0.0.1",
        str(live_server.dicom_port),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    got = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p) for p in out.iterdir())}
    assert set(got) == set(study.sop_uids)
    for path, uid in zip(study.files, study.sop_uids, strict=True):
        assert np.array_equal(got[uid].pixel_array, pydicom.dcmread(path).pixel_array)


def _get_contexts(
    sop_classes: set[str], transfer_syntaxes: list[str], model: str
) -> tuple[list, list]:
    contexts = [build_context(model)]
    roles = []
    for sop_class in sorted(sop_classes):
        contexts.append(build_context(sop_class, transfer_syntaxes))
        roles.append(build_role(sop_class, scp_role=True))
    return contexts, roles


def test_cget_returns_the_stored_bytes(live_server: LiveServer, tmp_path: Path) -> None:
    names = {
        "CT_small.dcm": "-xe",
        "JPEG2000.dcm": "-xw",
        "SC_rgb_rle.dcm": "-xr",
        "MR_small_implicit.dcm": "-xi",
    }
    study_uid, files, sops = _send_samples(live_server, names, tmp_path)
    originals = {
        uid: pydicom.dcmread(p, stop_before_pixels=True) for p, uid in zip(files, sops, strict=True)
    }
    syntaxes = sorted({str(ds.file_meta.TransferSyntaxUID) for ds in originals.values()})
    contexts = [build_context(STUDY_ROOT_GET)]
    roles = []
    for sop_class in sorted({str(ds.SOPClassUID) for ds in originals.values()}):
        roles.append(build_role(sop_class, scp_role=True))
        for ts in syntaxes:  # one context per syntax: the archive picks the original's
            contexts.append(build_context(sop_class, ts))
    received = Received()
    with association(
        live_server.dicom_port, contexts, ext_neg=roles, evt_handlers=received.bind
    ) as assoc:
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study_uid
        responses = list(assoc.send_c_get(query, STUDY_ROOT_GET))
    final = responses[-1][0]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == len(sops)
    index = read_index(live_server.data_dir)
    for uid in sops:
        location = index.find_instance(uid)
        assert location is not None
        # Exactly the dataset bytes the archive holds, in the transfer syntax it holds them.
        assert received.items[uid] == dataset_bytes(
            live_server.data_dir / "blobs" / location.blob_key
        )


def test_cget_converts_when_only_uncompressed_is_accepted(
    live_server: LiveServer, tmp_path: Path
) -> None:
    names = {
        "JPEG2000.dcm": "-xw",
        "MR_small_jp2klossless.dcm": "-xv",
        "JPEGLSNearLossless_08.dcm": "-xu",
    }
    study_uid, files, sops = _send_samples(live_server, names, tmp_path)
    classes = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID) for p in files}
    contexts, roles = _get_contexts(classes, [ImplicitVRLittleEndian], STUDY_ROOT_GET)
    received = Received()
    with association(
        live_server.dicom_port, contexts, ext_neg=roles, evt_handlers=received.bind
    ) as assoc:
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID = study_uid
        query.SOPInstanceUID = sops
        responses = list(assoc.send_c_get(query, STUDY_ROOT_GET))
    assert responses[-1][0].Status == 0x0000
    for path, uid in zip(files, sops, strict=True):
        ts, _ = received.items[uid]
        assert ts == ImplicitVRLittleEndian
        ds = received.dataset(uid)
        assert ds.SOPInstanceUID == uid
        assert np.array_equal(ds.pixel_array, pydicom.dcmread(path).pixel_array), path.name


def test_cget_patient_level_and_failure_count(live_server: LiveServer, tmp_path: Path) -> None:
    """Patient Root PATIENT level; a class the requestor did not offer is a failed sub-op."""
    study = ct_study(
        tmp_path / "ct", slices=2, size=32, patient_id="GETP" + generate_uid("2.25.")[-8:]
    )
    assert storescu(live_server.dicom_port, study.files).returncode == 0
    extra = sample_study(["MR_small.dcm"], tmp_path / "mr", patient_id=study.patient_id)
    assert storescu(live_server.dicom_port, extra.files).returncode == 0
    contexts, roles = _get_contexts(
        {"1.2.840.10008.5.1.4.1.1.2"}, [ExplicitVRLittleEndian], PATIENT_ROOT_GET
    )
    received = Received()
    with association(
        live_server.dicom_port, contexts, ext_neg=roles, evt_handlers=received.bind
    ) as assoc:
        query = Dataset()
        query.QueryRetrieveLevel = "PATIENT"
        query.PatientID = study.patient_id
        responses = list(assoc.send_c_get(query, PATIENT_ROOT_GET))
    final, identifier = responses[-1]
    assert final.Status == 0xB000
    assert final.NumberOfCompletedSuboperations == 2
    assert final.NumberOfFailedSuboperations == 1
    assert identifier is not None
    failed = identifier.FailedSOPInstanceUIDList
    assert ([failed] if isinstance(failed, str) else list(failed)) == extra.sop_uids
    assert set(received.items) == set(study.sop_uids)
