"""WADO-RS and WADO-URI over the FastAPI app: instances, metadata, frames, bulk data, rendering."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import get_decoder

from telerad import synthetic as syn
from telerad.adapters.dicomweb.multipart import parse_media_type, split_parts
from telerad.bootstrap import Platform
from telerad.dicom import transcode as tx
from telerad.dicom.part10 import normalise_preamble
from telerad.domain.model import Level
from telerad.web.app import create_app

DW = "/dicom-web"
DICOM = 'multipart/related; type="application/dicom"'


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform)) as c:
        yield c


def store(platform: Platform, data: bytes) -> tuple[str, str, str]:
    result = platform.archive.store(platform.default_facility().id, data)
    assert result.ok, result.reason
    assert result.study_instance_uid and result.series_instance_uid and result.sop_instance_uid
    return result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid


def sample(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None, name
    with open(path, "rb") as f:
        return f.read()


def parts(response) -> list[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    media = parse_media_type(response.headers["content-type"])
    assert media.type == "multipart/related"
    body = response.content
    return [
        (p.content_type or "", body[p.start : p.end])
        for p in split_parts(body, media.params["boundary"])
    ]


def pixels(data: bytes) -> np.ndarray:
    return dcmread(io.BytesIO(data)).pixel_array


def url(study: str, series: str | None = None, sop: str | None = None) -> str:
    out = f"{DW}/studies/{study}"
    if series:
        out += f"/series/{series}"
    if sop:
        out += f"/instances/{sop}"
    return out


# -- instances ---------------------------------------------------------------------------
def test_retrieve_study_series_instance(client: TestClient, platform: Platform) -> None:
    spec = syn.StudySpec()
    originals = [syn.to_bytes(ds) for ds in syn.ct_series(spec, slices=3, rows=16, cols=16)]
    ids = [store(platform, d) for d in originals]
    study, series, sop = ids[1]
    got = parts(client.get(url(study), headers={"Accept": DICOM}))
    assert sorted(d for _, d in got) == sorted(originals)  # stored as Explicit VR LE: as is
    assert all(ct == f"application/dicom; transfer-syntax={tx.EXPLICIT_LE}" for ct, _ in got)
    assert len(parts(client.get(url(study, series)))) == 3
    [(_, one)] = parts(client.get(url(study, series, sop)))
    assert one == originals[1]


@pytest.mark.parametrize(
    "name",
    [
        "JPEG2000.dcm",
        "JPEG-LL.dcm",
        "SC_rgb_rle.dcm",
        "US1_J2KR.dcm",
        "MR_small_bigendian.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
    ],
)
def test_default_syntax_decompresses_losslessly(
    client: TestClient, platform: Platform, name: str
) -> None:
    original = sample(name)
    study, series, sop = store(platform, original)
    [(ctype, data)] = parts(client.get(url(study, series, sop), headers={"Accept": DICOM}))
    assert ctype.endswith(f"transfer-syntax={tx.EXPLICIT_LE}")
    out = dcmread(io.BytesIO(data))
    assert out.file_meta.TransferSyntaxUID == tx.EXPLICIT_LE
    assert out.SOPInstanceUID == sop
    assert np.array_equal(out.pixel_array, pixels(original))
    # The stored original is untouched (but for its preamble, kept zeroed).
    loc = platform.archive.locate(Level.IMAGE, [sop])[0]
    assert platform.archive.read(loc) == normalise_preamble(original)


def test_transfer_syntax_star_returns_the_stored_bytes(
    client: TestClient, platform: Platform
) -> None:
    original = sample("JPEG2000.dcm")
    study, series, sop = store(platform, original)
    [(ctype, data)] = parts(
        client.get(url(study, series, sop), headers={"Accept": DICOM + "; transfer-syntax=*"})
    )
    assert data == original
    assert ctype.endswith(f"transfer-syntax={tx.J2K}")


@pytest.mark.parametrize(
    "target", [tx.J2K_LOSSLESS, tx.JPEG_LS_LOSSLESS, tx.RLE, tx.IMPLICIT_LE, tx.DEFLATED_LE]
)
def test_requested_lossless_syntax_round_trips(
    client: TestClient, platform: Platform, target: str
) -> None:
    original = sample("emri_small.dcm")  # 10 frames, 12 of 16 bits
    study, series, sop = store(platform, original)
    accept = f"{DICOM}; transfer-syntax={target}"
    [(ctype, data)] = parts(client.get(url(study, series, sop), headers={"Accept": accept}))
    assert ctype.endswith(f"transfer-syntax={target}")
    out = dcmread(io.BytesIO(data))
    assert out.file_meta.TransferSyntaxUID == target
    assert np.array_equal(out.pixel_array, pixels(original))


def test_unsatisfiable_syntax_is_406(client: TestClient, platform: Platform) -> None:
    study, series, sop = store(platform, sample("MR_small.dcm"))  # 16-bit
    r = client.get(
        url(study, series, sop), headers={"Accept": f"{DICOM}; transfer-syntax={tx.JPEG_BASELINE}"}
    )
    assert r.status_code == 406 and "8-bit" in r.json()["detail"]
    r = client.get(url(study, series, sop), headers={"Accept": f"{DICOM}; transfer-syntax=1.2.3"})
    assert r.status_code == 406
    r = client.get(url(study, series, sop), headers={"Accept": "text/html"})
    assert r.status_code == 406


def test_lossy_request_is_marked_lossy(client: TestClient, platform: Platform) -> None:
    original = sample("SC_rgb_rle.dcm")
    study, series, sop = store(platform, original)
    accept = f"{DICOM}; transfer-syntax={tx.JPEG_BASELINE}"
    [(_, data)] = parts(client.get(url(study, series, sop), headers={"Accept": accept}))
    out = dcmread(io.BytesIO(data))
    assert out.LossyImageCompression == "01"
    assert np.abs(out.pixel_array.astype(int) - pixels(original).astype(int)).mean() < 3


def test_unknown_and_mismatched_uids_are_404(client: TestClient, platform: Platform) -> None:
    study, series, sop = store(platform, sample("CT_small.dcm"))
    for path in (
        url("1.2.3"),
        url(study, "1.2.3"),
        url(study, series, "1.2.3"),
        url("1.2.3", series, sop),
        url(study, "1.2.3", sop),
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "no " in r.json()["detail"]
    assert client.get(url("1.2.x")).status_code == 400


def test_corrupted_blob_is_reported_not_served(client: TestClient, platform: Platform) -> None:
    study, series, sop = store(platform, sample("CT_small.dcm"))
    loc = platform.archive.locate(Level.IMAGE, [sop])[0]
    path = platform.blobs.path(loc.blob_key)
    with open(path, "r+b") as f:
        f.seek(-10, 2)
        f.write(b"0123456789")
    r = client.get(url(study, series, sop))
    assert r.status_code == 500 and "integrity" in r.json()["detail"]


# -- metadata and bulk data ------------------------------------------------------------
def test_metadata_with_bulkdata_uris_and_cache(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = sample("MR-SIEMENS-DICOM-WithOverlays.dcm")
    study, series, sop = store(platform, original)
    r = client.get(f"{url(study, series)}/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/dicom+json")
    [meta] = r.json()
    assert list(meta) == sorted(meta)
    assert "7FE00010" in meta and "Value" not in meta["7FE00010"]
    pixel_uri = meta["7FE00010"]["BulkDataURI"]
    assert pixel_uri == f"http://testserver{url(study, series, sop)}/bulkdata/7FE00010"
    assert meta["00083002"]["Value"] == [tx.EXPLICIT_LE]
    assert meta["00100010"]["vr"] == "PN"
    assert meta["00280010"] == {"vr": "US", "Value": [484]}
    overlay = meta["60003000"]  # OverlayData: binary, large → bulk data
    assert overlay["BulkDataURI"].endswith("/bulkdata/60003000")

    # Bulk data comes back as the value itself.
    ds = dcmread(io.BytesIO(original))
    [(ctype, value)] = parts(client.get(overlay["BulkDataURI"].replace("http://testserver", "")))
    assert ctype == "application/octet-stream" and value == ds[0x60003000].value
    [(_, frame)] = parts(client.get(pixel_uri.replace("http://testserver", "")))
    assert frame == ds.PixelData

    # The second request is served from the cache: the blob is not read again.
    def no_read(location):  # type: ignore[no-untyped-def]
        raise AssertionError("metadata should come from the cache")

    monkeypatch.setattr(platform.archive, "read", no_read)
    again = client.get(f"{url(study)}/metadata", headers={"Host": "viewer.example"})
    assert again.status_code == 200
    [cached] = again.json()
    assert cached["7FE00010"]["BulkDataURI"].startswith("http://viewer.example/dicom-web/")
    assert client.get(f"{url(study, series, sop)}/metadata").status_code == 200


def test_metadata_of_sequences_and_inline_binary(client: TestClient, platform: Platform) -> None:
    ds = next(syn.ct_series(syn.StudySpec(), slices=1, rows=8, cols=8))
    item = syn.Dataset()
    item.CodeValue = "T-D3000"
    item.CodeMeaning = "Chest"
    item.add_new(0x00091010, "OB", b"\x01\x02")
    ds.AnatomicRegionSequence = [item]
    study, series, sop = store(platform, syn.to_bytes(ds))
    [meta] = client.get(f"{url(study, series, sop)}/metadata").json()
    [region] = meta["00082218"]["Value"]
    assert region["00080100"]["Value"] == ["T-D3000"]
    assert region["00091010"]["InlineBinary"] == "AQI="


def test_bulk_data_inside_a_sequence(client: TestClient, platform: Platform) -> None:
    ds = next(syn.ct_series(syn.StudySpec(), slices=1, rows=8, cols=8))
    item = Dataset()
    item.CodeValue = "X"
    blob = bytes(range(256)) * 8  # 2 KiB: over the inline threshold
    item.add_new(0x00091010, "OB", blob)
    ds.add_new(0x00091001, "LO", "TELERAD TEST")  # private creator for (0009,10xx)
    ds.AnatomicRegionSequence = [item]
    result = platform.archive.store(platform.default_facility().id, syn.to_bytes(ds))
    assert result.ok
    base = (
        f"/dicom-web/studies/{result.study_instance_uid}/series/"
        f"{result.series_instance_uid}/instances/{result.sop_instance_uid}"
    )
    [meta] = client.get(f"{base}/metadata").json()
    uri = meta["00082218"]["Value"][0]["00091010"]["BulkDataURI"]
    assert uri == f"http://testserver{base}/bulkdata/00082218/0/00091010"
    r = client.get(uri.replace("http://testserver", ""))
    media = parse_media_type(r.headers["content-type"])
    [part] = split_parts(r.content, media.params["boundary"])
    assert r.content[part.start : part.end] == blob


def test_bulkdata_path_that_does_not_exist(client: TestClient, platform: Platform) -> None:
    study, series, sop = store(platform, sample("CT_small.dcm"))
    base = f"{url(study, series, sop)}/bulkdata"
    assert client.get(f"{base}/60003000").status_code == 404
    assert client.get(f"{base}/00100010").status_code == 404  # not binary
    assert client.get(f"{base}/zz").status_code == 404


# -- frames --------------------------------------------------------------------------------
def test_native_frames_without_decoding(client: TestClient, platform: Platform) -> None:
    original = sample("emri_small.dcm")
    study, series, sop = store(platform, original)
    ds = dcmread(io.BytesIO(original))
    size = 64 * 64 * 2
    r = client.get(
        f"{url(study, series, sop)}/frames/2,5",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    assert r.status_code == 200
    got = parts(r)
    assert [d for _, d in got] == [ds.PixelData[size : 2 * size], ds.PixelData[4 * size : 5 * size]]
    assert got[0][0] == f"application/octet-stream; transfer-syntax={tx.EXPLICIT_LE}"


def test_compressed_frames_as_stored_and_transcoded(client: TestClient, platform: Platform) -> None:
    original = sample("emri_small_jpeg_2k_lossless.dcm")
    study, series, sop = store(platform, original)
    ds = dcmread(io.BytesIO(original))
    frames_url = f"{url(study, series, sop)}/frames/3"
    star = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    [(ctype, raw)] = parts(client.get(frames_url, headers={"Accept": star}))
    assert raw == get_frame(ds.PixelData, 2, number_of_frames=10)
    assert ctype == f"application/octet-stream; transfer-syntax={tx.J2K_LOSSLESS}"
    jp2_accept = {"Accept": 'multipart/related; type="image/jp2"'}
    [(ctype, jp2)] = parts(client.get(frames_url, headers=jp2_accept))
    assert ctype == f"image/jp2; transfer-syntax={tx.J2K_LOSSLESS}" and jp2 == raw
    expected = ds.pixel_array[2]
    # Native: decoded to little-endian values.
    [(ctype, native)] = parts(
        client.get(
            frames_url, headers={"Accept": 'multipart/related; type="application/octet-stream"'}
        )
    )
    assert np.array_equal(np.frombuffer(native, "<u2").reshape(64, 64), expected)
    # JPEG-LS: transcoded, decodes to the same values.
    [(ctype, jls)] = parts(
        client.get(frames_url, headers={"Accept": 'multipart/related; type="image/jls"'})
    )
    assert ctype == f"image/jls; transfer-syntax={tx.JPEG_LS_LOSSLESS}"
    import jpeg_ls

    assert np.array_equal(jpeg_ls.decode(np.frombuffer(jls, np.uint8)), expected)


def test_frames_errors(client: TestClient, platform: Platform) -> None:
    study, series, sop = store(platform, sample("CT_small.dcm"))
    base = f"{url(study, series, sop)}/frames"
    assert client.get(f"{base}/2").status_code == 404
    assert client.get(f"{base}/0").status_code == 400
    assert client.get(f"{base}/1,x").status_code == 400
    r = client.get(f"{base}/1", headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert r.status_code == 406  # 16-bit CT has no JPEG Baseline form
    r = client.get(f"{base}/1", headers={"Accept": 'multipart/related; type="video/mp4"'})
    assert r.status_code == 406


def test_rgb_jpeg_frame(client: TestClient, platform: Platform) -> None:
    original = sample("SC_rgb_2frame.dcm")
    study, series, sop = store(platform, original)
    [(ctype, jpeg)] = parts(
        client.get(
            f"{url(study, series, sop)}/frames/2",
            headers={"Accept": 'multipart/related; type="image/jpeg"'},
        )
    )
    assert ctype == f"image/jpeg; transfer-syntax={tx.JPEG_BASELINE}"
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(int)
    assert np.abs(decoded - pixels(original)[1].astype(int)).mean() < 3


def test_jpeg_lossless_frames_decode_with_the_stored_codec(
    client: TestClient, platform: Platform
) -> None:
    original = sample("JPEG-LL.dcm")
    study, series, sop = store(platform, original)
    [(ctype, raw)] = parts(client.get(f"{url(study, series, sop)}/frames/1"))  # any: as stored
    assert ctype == f"image/jpeg; transfer-syntax={tx.JPEG_LOSSLESS_SV1}"
    ds = dcmread(io.BytesIO(original))
    arr, _ = get_decoder(tx.JPEG_LOSSLESS_SV1).as_array(ds)
    assert raw == get_frame(ds.PixelData, 0, number_of_frames=1)
    assert np.array_equal(arr, ds.pixel_array)


# -- rendered, thumbnails, WADO-URI ---------------------------------------------------------
def test_rendered_instance_jpeg_png_window_viewport(client: TestClient, platform: Platform) -> None:
    spec = syn.StudySpec()
    ds = next(syn.ct_series(spec, slices=1, rows=64, cols=64))
    study, series, sop = store(platform, syn.to_bytes(ds))
    base = f"{url(study, series, sop)}/rendered"
    r = client.get(base)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (64, 64)
    png = client.get(base, headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(png.content)))
    assert img[0, 0] == 0  # air under the object's soft-tissue window
    bone = np.asarray(
        Image.open(
            io.BytesIO(
                client.get(
                    base, params={"window": "-500,2"}, headers={"Accept": "image/png"}
                ).content
            )
        )
    )
    hu = ds.pixel_array.astype(int) - 1024
    assert np.array_equal(bone == 255, hu >= -500)  # a threshold window: PS3.3 C.11.2.1.2.1
    assert np.array_equal(bone == 0, hu < -500)
    small = client.get(base, params={"viewport": "32,16"})
    assert Image.open(io.BytesIO(small.content)).size == (16, 16)
    assert client.get(base, params={"window": "40"}).status_code == 400
    assert client.get(base, params={"viewport": "0,10"}).status_code == 400
    assert client.get(base, params={"quality": "500"}).status_code == 400
    assert client.get(base, params={"bogus": "1"}).status_code == 400
    assert client.get(base, headers={"Accept": "application/pdf"}).status_code == 406


def test_rendered_frames_series_study_and_thumbnails(
    client: TestClient, platform: Platform
) -> None:
    original = sample("emri_small.dcm")
    study, series, sop = store(platform, original)
    single = client.get(f"{url(study, series, sop)}/frames/4/rendered")
    assert single.headers["content-type"] == "image/jpeg"
    several = parts(client.get(f"{url(study, series, sop)}/frames/1,2/rendered"))
    assert [c for c, _ in several] == ["image/jpeg", "image/jpeg"]
    assert len(parts(client.get(f"{url(study, series)}/rendered"))) == 1
    assert len(parts(client.get(f"{url(study)}/rendered"))) == 1
    for path in (url(study), url(study, series), url(study, series, sop)):
        r = client.get(f"{path}/thumbnail")
        assert r.status_code == 200, path
        assert max(Image.open(io.BytesIO(r.content)).size) <= 128
    assert client.get(f"{url(study, series, sop)}/frames/11/rendered").status_code == 404


def test_wado_uri(client: TestClient, platform: Platform) -> None:
    original = sample("JPEG2000.dcm")
    study, series, sop = store(platform, original)
    params = {"requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": sop}
    r = client.get(f"{DW}/wado", params=params)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    r = client.get(f"{DW}/wado", params={**params, "contentType": "application/dicom"})
    assert r.headers["content-type"] == "application/dicom"
    assert np.array_equal(pixels(r.content), pixels(original))
    assert dcmread(io.BytesIO(r.content)).file_meta.TransferSyntaxUID == tx.EXPLICIT_LE
    r = client.get(
        f"{DW}/wado",
        params={**params, "contentType": "application/dicom", "transferSyntax": tx.J2K},
    )
    assert r.content == original
    r = client.get(
        f"{DW}/wado",
        params={
            **params,
            "contentType": "image/png",
            "rows": "64",
            "windowCenter": "500",
            "windowWidth": "1000",
        },
    )
    assert Image.open(io.BytesIO(r.content)).size[1] == 64
    missing = client.get(f"{DW}/wado", params={"requestType": "WADO", "studyUID": study})
    assert missing.status_code == 400 and "seriesUID" in missing.json()["detail"]
    assert client.get(f"{DW}/wado", params={**params, "objectUID": "1.2.3"}).status_code == 404
    assert client.get(f"{DW}/wado", params={**params, "requestType": "X"}).status_code == 400


def test_json_is_gzipped_only_for_clients_that_accept_it(
    client: TestClient, platform: Platform
) -> None:
    study, series, _ = store(platform, sample("CT_small.dcm"))
    zipped = client.get(f"{url(study, series)}/metadata", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    plain = client.get(f"{url(study, series)}/metadata", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()
    assert len(plain.content) > int(zipped.headers["content-length"])
