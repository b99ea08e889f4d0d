"""DICOMweb against a running ``telerad serve``, with dicomweb-client as the real peer."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from requests.exceptions import HTTPError

from telerad import synthetic as syn
from telerad.adapters.dicomweb.multipart import encode_multipart
from telerad.dicom import transcode as tx

CT = 'multipart/related; type="application/dicom"; boundary=b0und'


@pytest.fixture(scope="module")
def client(live_server) -> DICOMwebClient:  # type: ignore[no-untyped-def]
    return DICOMwebClient(url=live_server.dicomweb)


@pytest.fixture(scope="module")
def ct_study(client: DICOMwebClient) -> tuple[syn.StudySpec, list[Dataset]]:
    """A CT series (with a patient name of its own) stored through STOW-RS."""
    spec = syn.StudySpec(
        patient_id="DW-INT-1",
        patient_name="WEBCLIENT^ALICE",
        study_date="20250315",
        accession="DWINT1",
    )
    datasets = list(syn.ct_series(spec, slices=6, rows=128, cols=128))
    response = client.store_instances(datasets)
    assert len(response.ReferencedSOPSequence) == 6
    assert "FailedSOPSequence" not in response or not response.FailedSOPSequence
    return spec, datasets


def sample(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None
    return dcmread(path)


def test_search_with_filters(client: DICOMwebClient, ct_study) -> None:  # type: ignore[no-untyped-def]
    spec, datasets = ct_study
    [study] = client.search_for_studies(search_filters={"PatientID": "DW-INT-1"})
    assert study["0020000D"]["Value"] == [spec.study_uid]
    assert study["00100010"]["Value"] == [{"Alphabetic": "WEBCLIENT^ALICE"}]
    assert study["00201208"]["Value"] == [6]
    wildcard = client.search_for_studies(search_filters={"PatientName": "WEBCL*"})
    assert [s["0020000D"]["Value"][0] for s in wildcard] == [spec.study_uid]
    fuzzy = client.search_for_studies(search_filters={"PatientName": "ALI"}, fuzzymatching=True)
    assert spec.study_uid in [s["0020000D"]["Value"][0] for s in fuzzy]
    ranged = client.search_for_studies(
        search_filters={"StudyDate": "20250301-20250331", "PatientID": "DW-INT-1"}
    )
    assert len(ranged) == 1
    with_field = client.search_for_studies(
        search_filters={"PatientID": "DW-INT-1"}, fields=["InstitutionName"]
    )
    assert with_field[0]["00080080"]["Value"] == ["Demo General Hospital"]
    series = client.search_for_series(spec.study_uid)
    assert [s["0020000E"]["Value"][0] for s in series] == [datasets[0].SeriesInstanceUID]
    everything = client.search_for_instances(spec.study_uid, datasets[0].SeriesInstanceUID)
    assert sorted(i["00200013"]["Value"][0] for i in everything) == [1, 2, 3, 4, 5, 6]
    page = client.search_for_instances(
        spec.study_uid, datasets[0].SeriesInstanceUID, limit=2, offset=1
    )
    assert page == everything[1:3]


def test_retrieve_compares_pixels(client: DICOMwebClient, ct_study) -> None:  # type: ignore[no-untyped-def]
    spec, datasets = ct_study
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    got = client.retrieve_study(spec.study_uid)
    assert len(got) == 6
    for ds in got:
        assert np.array_equal(ds.pixel_array, by_uid[ds.SOPInstanceUID].pixel_array)
    series = client.retrieve_series(spec.study_uid, datasets[0].SeriesInstanceUID)
    assert len(series) == 6
    one = client.retrieve_instance(
        spec.study_uid,
        datasets[2].SeriesInstanceUID,
        datasets[2].SOPInstanceUID,
        media_types=(("application/dicom", tx.J2K_LOSSLESS),),
    )
    assert one.file_meta.TransferSyntaxUID == tx.J2K_LOSSLESS
    assert np.array_equal(one.pixel_array, datasets[2].pixel_array)


def test_metadata_and_bulkdata(client: DICOMwebClient, ct_study) -> None:  # type: ignore[no-untyped-def]
    spec, datasets = ct_study
    metadata = client.retrieve_series_metadata(spec.study_uid, datasets[0].SeriesInstanceUID)
    assert len(metadata) == 6
    first = next(m for m in metadata if m["00080018"]["Value"] == [datasets[0].SOPInstanceUID])
    assert first["00280010"]["Value"] == [128]
    uri = first["7FE00010"]["BulkDataURI"]
    [pixel_data] = client.retrieve_bulkdata(
        uri, media_types=(("application/octet-stream", tx.EXPLICIT_LE),)
    )
    assert pixel_data == datasets[0].PixelData
    again = client.retrieve_instance_metadata(
        spec.study_uid, datasets[0].SeriesInstanceUID, datasets[0].SOPInstanceUID
    )
    assert again == first


def test_frames_in_several_media_types(client: DICOMwebClient, ct_study) -> None:  # type: ignore[no-untyped-def]
    spec, datasets = ct_study
    ds = datasets[3]
    ids = (spec.study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    [native] = client.retrieve_instance_frames(
        *ids, frame_numbers=[1], media_types=(("application/octet-stream", tx.EXPLICIT_LE),)
    )
    assert native == ds.PixelData
    for media_type, syntax in (
        ("image/jls", tx.JPEG_LS_LOSSLESS),
        ("image/jp2", tx.J2K_LOSSLESS),
        ("image/x-dicom-rle", tx.RLE),
    ):
        [frame] = client.retrieve_instance_frames(
            *ids, frame_numbers=[1], media_types=((media_type, syntax),)
        )
        assert np.array_equal(_decode(frame, syntax, ds), ds.pixel_array), media_type


def _decode(frame: bytes, syntax: str, like: Dataset) -> np.ndarray:
    from pydicom.encaps import encapsulate

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    for keyword in (
        "Rows",
        "Columns",
        "SamplesPerPixel",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PhotometricInterpretation",
    ):
        setattr(ds, keyword, getattr(like, keyword))
    ds.NumberOfFrames = 1
    ds.PixelData = encapsulate([frame])
    arr, _ = get_decoder(syntax).as_array(ds)
    return arr


def test_compressed_samples_round_trip(client: DICOMwebClient) -> None:
    for name in ("JPEG2000.dcm", "SC_rgb_rle.dcm", "emri_small_jpeg_2k_lossless.dcm"):
        original = sample(name)
        client.store_instances([original])
        ids = (original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID)
        as_stored = client.retrieve_instance(*ids, media_types=(("application/dicom", "*"),))
        assert as_stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        native = client.retrieve_instance(
            *ids, media_types=(("application/dicom", tx.EXPLICIT_LE),)
        )
        assert native.file_meta.TransferSyntaxUID == tx.EXPLICIT_LE
        assert np.array_equal(native.pixel_array, original.pixel_array), name


def test_rendered(client: DICOMwebClient, ct_study) -> None:  # type: ignore[no-untyped-def]
    spec, datasets = ct_study
    ids = (spec.study_uid, datasets[0].SeriesInstanceUID, datasets[0].SOPInstanceUID)
    jpeg = client.retrieve_instance_rendered(*ids, media_types=("image/jpeg",))
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    png = client.retrieve_instance_rendered(
        *ids, media_types=("image/png",), params={"viewport": "64,64"}
    )
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (64, 64)


def test_bad_input_and_the_server_keeps_serving(live_server, client: DICOMwebClient) -> None:  # type: ignore[no-untyped-def]
    url = live_server.dicomweb + "/studies"
    good = syn.to_bytes(
        next(syn.ct_series(syn.StudySpec(patient_id="DW-BAD"), slices=1, rows=16, cols=16))
    )
    with httpx.Client(timeout=30) as http:
        r = http.post(url, content=good, headers={"Content-Type": "application/dicom"})
        assert r.status_code == 415 and r.json()["detail"]
        truncated = encode_multipart("b0und", [("application/dicom", good)])[:-30]
        r = http.post(url, content=truncated, headers={"Content-Type": CT})
        assert r.status_code == 400 and "truncated" in r.json()["detail"]
        assert client.search_for_studies(search_filters={"PatientID": "DW-BAD"}) == []
        mixed = encode_multipart(
            "b0und", [("application/dicom", b"\x00garbage"), ("application/dicom", good)]
        )
        r = http.post(url, content=mixed, headers={"Content-Type": CT})
        assert r.status_code == 202
        assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
        assert len(client.search_for_studies(search_filters={"PatientID": "DW-BAD"})) == 1
        r = http.get(live_server.dicomweb + "/studies", params={"NoSuchKey": "1"})
        assert r.status_code == 400
        r = http.get(live_server.dicomweb + "/studies", params={"StudyDate": "2025-99"})
        assert r.status_code == 400
        r = http.get(live_server.dicomweb + "/studies/1.2.840.99999.1")
        assert r.status_code == 404
        r = http.get(live_server.dicomweb + "/studies/bad..uid/metadata")
        assert r.status_code == 400
        assert http.get(live_server.http_url + "/healthz").status_code == 200
    anonymous = Dataset()
    anonymous.PatientID = "DW-NOBODY"
    anonymous.file_meta = FileMetaDataset()
    anonymous.file_meta.TransferSyntaxUID = tx.EXPLICIT_LE
    with pytest.raises(HTTPError) as raised:  # no identifying UIDs: every part failed, 409
        client.store_instances([anonymous])
    assert raised.value.response.status_code == 409
