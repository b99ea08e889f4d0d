"""DIMSE C-ECHO and C-STORE against a live ``telerad serve``, with dcmtk and pynetdicom as peers."""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from pynetdicom import _config, build_context
from pynetdicom.sop_class import CTImageStorage, MRImageStorage
from tests.conftest import LiveServer, require_tool
from tests.integration.test_dimse_support import (
    SAMPLES,
    association,
    ct_study,
    dataset_bytes,
    dcmtk,
    read_index,
    sample_path,
    sample_study,
    send_raw_c_store,
    storescu,
)

from telerad.synthetic import StudySpec, ct_series, to_bytes


def test_echoscu(live_server: LiveServer) -> None:
    require_tool("echoscu")
    result = dcmtk("echoscu", "-aec", "TELERAD", "127.0.0.1", str(live_server.dicom_port))
    assert result.returncode == 0, result.stderr


def test_storescu_keeps_every_transfer_syntax_as_sent(
    live_server: LiveServer, tmp_path: Path
) -> None:
    require_tool("storescu")
    index = read_index(live_server.data_dir)
    for name, option in SAMPLES.items():
        study = sample_study([name], tmp_path / name)
        result = storescu(live_server.dicom_port, study.files, option)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        location = index.find_instance(study.sop_uids[0])
        assert location is not None, name
        sent = pydicom.dcmread(study.files[0])
        assert location.transfer_syntax_uid == sent.file_meta.TransferSyntaxUID, name
        stored = pydicom.dcmread(live_server.data_dir / "blobs" / location.blob_key)
        assert stored.file_meta.SourceApplicationEntityTitle == "STORESCU"
        assert stored.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
        # Native or encapsulated, the pixel data is kept byte for byte.
        assert stored.PixelData == sent.PixelData, name
        assert stored.SOPInstanceUID == study.sop_uids[0]


def test_dataset_is_archived_byte_for_byte(live_server: LiveServer, tmp_path: Path) -> None:
    """pynetdicom streams each file's dataset unchanged; the blob holds exactly those bytes."""
    study = sample_study(["CT_small.dcm", "JPEG2000.dcm", "MR_small_bigendian.dcm"], tmp_path)
    contexts = []
    for path in study.files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        contexts.append(build_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID))
    index = read_index(live_server.data_dir)
    saved = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's dataset bytes, undecoded
    try:
        with association(live_server.dicom_port, contexts) as assoc:
            for path in study.files:
                assert assoc.send_c_store(path).Status == 0x0000
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = saved
    for path, uid in zip(study.files, study.sop_uids, strict=True):
        ts, sent = dataset_bytes(path)
        location = index.find_instance(uid)
        assert location is not None
        blob = (live_server.data_dir / "blobs" / location.blob_key).read_bytes()
        assert blob.endswith(sent)
        assert dataset_bytes(live_server.data_dir / "blobs" / location.blob_key) == (ts, sent)


def test_generated_ct_over_one_association(live_server: LiveServer, tmp_path: Path) -> None:
    study = ct_study(tmp_path / "ct", slices=12, size=256)
    result = storescu(live_server.dicom_port, study.files)
    assert result.returncode == 0, result.stderr
    index = read_index(live_server.data_dir)
    for path, uid in zip(study.files, study.sop_uids, strict=True):
        location = index.find_instance(uid)
        assert location is not None and location.study_instance_uid == study.study_uid
        stored = pydicom.dcmread(live_server.data_dir / "blobs" / location.blob_key)
        assert np.array_equal(stored.pixel_array, pydicom.dcmread(path).pixel_array)


def test_resend_is_success_and_a_different_object_under_the_same_uid_is_refused(
    live_server: LiveServer,
) -> None:
    ds = next(ct_series(StudySpec(), slices=1, rows=32, cols=32))
    with association(
        live_server.dicom_port, [build_context(CTImageStorage, ExplicitVRLittleEndian)]
    ) as assoc:
        assert assoc.send_c_store(ds).Status == 0x0000
        assert assoc.send_c_store(ds).Status == 0x0000  # identical: a duplicate, not an error
        ds.PixelData = bytes(len(ds.PixelData))  # same SOP Instance UID, other content
        status = assoc.send_c_store(ds)
    assert status.Status == 0x0111
    assert "SOP Instance UID" in status.ErrorComment


def test_facility_comes_from_the_calling_ae(live_server: LiveServer, tmp_path: Path) -> None:
    aet = "CLINIC" + generate_uid("2.25.")[-6:]
    facility = "Facility " + aet
    added = live_server.telerad(
        "node", "add", aet, "--host", "127.0.0.1", "--port", "104", "--facility", facility
    )
    assert added.returncode == 0, added.stderr
    study = ct_study(tmp_path, slices=2, size=16)
    assert storescu(live_server.dicom_port, study.files, aet=aet).returncode == 0
    other = ct_study(tmp_path / "other", slices=1, size=16)
    assert storescu(live_server.dicom_port, other.files, aet="UNKNOWNAE").returncode == 0
    index = read_index(live_server.data_dir)
    clinic = index.facility_by_name(facility)
    assert clinic is not None
    for uid in study.sop_uids:
        location = index.find_instance(uid)
        assert location is not None and location.facility_id == clinic.id
    location = index.find_instance(other.sop_uids[0])
    default = index.facility_by_name("DEFAULT")
    assert location is not None and default is not None and location.facility_id == default.id


# -- refusals: proper status, nothing stored, the server keeps serving ---------------------


def _uid_file(tmp_path: Path, sop_uid: str) -> Path:
    from pydicom import config

    path = tmp_path / f"bad-{len(sop_uid)}.dcm"
    saved = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the UID is invalid on purpose
            ds = pydicom.dcmread(sample_path("CT_small.dcm"))
            ds.StudyInstanceUID = generate_uid("2.25.")
            ds.SeriesInstanceUID = generate_uid("2.25.")
            ds.SOPInstanceUID = sop_uid
            ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
            ds.save_as(path)
    finally:
        config.settings.writing_validation_mode = saved
    return path


@pytest.mark.parametrize("sop_uid", ["1.2.3." + "4" * 64, "1.2.3.ABC.4", "1.2.03.4"])
def test_invalid_sop_instance_uid_fails_and_stores_nothing(
    live_server: LiveServer, tmp_path: Path, sop_uid: str
) -> None:
    path = _uid_file(tmp_path, sop_uid)
    result = storescu(live_server.dicom_port, [path], "-v")
    assert "Received Store Response (Error: CannotUnderstand)" in result.stdout + result.stderr
    assert read_index(live_server.data_dir).find_instance(sop_uid) is None
    ok = ct_study(tmp_path / "ok", slices=1, size=16)
    assert storescu(live_server.dicom_port, ok.files).returncode == 0


def test_non_dicom_dataset_is_not_understood(live_server: LiveServer) -> None:
    uid = generate_uid("2.25.")
    with association(live_server.dicom_port, [build_context(CTImageStorage)]) as assoc:
        status, comment = send_raw_c_store(
            assoc, CTImageStorage, uid, b"this is not a DICOM dataset\x00"
        )
        assert 0xC000 <= status <= 0xCFFF
        assert comment
        # The association is still usable afterwards.
        ds = next(ct_series(StudySpec(), slices=1, rows=16, cols=16))
        assert assoc.send_c_store(ds).Status == 0x0000
    assert read_index(live_server.data_dir).find_instance(uid) is None


def test_dataset_of_another_sop_class_is_refused_with_a900(live_server: LiveServer) -> None:
    ds = next(ct_series(StudySpec(), slices=1, rows=16, cols=16))
    _, raw = _encoded(ds)
    with association(
        live_server.dicom_port, [build_context(MRImageStorage, ExplicitVRLittleEndian)]
    ) as assoc:
        status, comment = send_raw_c_store(assoc, MRImageStorage, ds.SOPInstanceUID, raw)
    assert status == 0xA900
    assert "SOP Class" in comment
    assert read_index(live_server.data_dir).find_instance(ds.SOPInstanceUID) is None


def test_truncated_pixel_data_is_refused(live_server: LiveServer) -> None:
    ds = next(ct_series(StudySpec(), slices=1, rows=64, cols=64))
    _, raw = _encoded(ds)
    with association(
        live_server.dicom_port, [build_context(CTImageStorage, ExplicitVRLittleEndian)]
    ) as assoc:
        status, comment = send_raw_c_store(assoc, CTImageStorage, ds.SOPInstanceUID, raw[:-2000])
    assert 0xC000 <= status <= 0xCFFF
    assert "truncated" in comment.lower()
    assert read_index(live_server.data_dir).find_instance(ds.SOPInstanceUID) is None


def _encoded(ds: pydicom.Dataset) -> tuple[str, bytes]:
    data = to_bytes(ds)
    meta = pydicom.dcmread(BytesIO(data), stop_before_pixels=True).file_meta
    return str(meta.TransferSyntaxUID), data[132 + 12 + int(meta.FileMetaInformationGroupLength) :]


def test_first_proposed_transfer_syntax_is_accepted(live_server: LiveServer) -> None:
    """Of the syntaxes proposed in one context, the requestor's first supported one wins."""
    sc_storage = "1.2.840.10008.5.1.4.1.1.7"
    proposals = {
        (JPEG2000, ExplicitVRLittleEndian): JPEG2000,
        (ImplicitVRLittleEndian, ExplicitVRLittleEndian): ImplicitVRLittleEndian,
        (
            "1.2.840.10008.1.2.4.100",
            RLELossless,
            ExplicitVRLittleEndian,
        ): RLELossless,  # MPEG2 unsupported
    }
    for proposed, accepted in proposals.items():
        with association(
            live_server.dicom_port, [build_context(sc_storage, list(proposed))]
        ) as assoc:
            assert [cx.transfer_syntax[0] for cx in assoc.accepted_contexts] == [accepted]


def test_parallel_associations_all_store(live_server: LiveServer, tmp_path: Path) -> None:
    import concurrent.futures

    studies = [ct_study(tmp_path / f"s{i}", slices=15, size=32) for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: storescu(live_server.dicom_port, s.files), studies))
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    index = read_index(live_server.data_dir)
    for study in studies:
        assert all(index.find_instance(uid) is not None for uid in study.sop_uids)
