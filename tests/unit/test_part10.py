"""Part 10 wrapping: the directly encoded File Meta Information equals pydicom's."""

from __future__ import annotations

import io

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID
from tests.support import sample_files

from telerad.dicom.part10 import IMPLEMENTATION_VERSION, build_part10, file_meta_bytes, read


def _pydicom_meta(ts: str, sop_class: str, sop_instance: str, ae: str | None) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(ts)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    if ae:
        meta.SourceApplicationEntityTitle = ae
    buf = io.BytesIO()
    write_file_meta_info(buf, meta, enforce_standard=True)  # type: ignore[arg-type]
    return buf.getvalue()


@pytest.mark.parametrize("ae", [None, "MODALITY1", "CT"])
@pytest.mark.parametrize(
    ("ts", "sop_instance"),
    [
        ("1.2.840.10008.1.2", "1.2.3.4"),
        ("1.2.840.10008.1.2.1", "1.2.3.45"),
        ("1.2.840.10008.1.2.4.90", "2.25." + "9" * 59),
    ],
)
def test_meta_bytes_equal_pydicom(ts: str, sop_instance: str, ae: str | None) -> None:
    sop_class = "1.2.840.10008.5.1.4.1.1.2"
    assert file_meta_bytes(ts, sop_class, sop_instance, ae) == _pydicom_meta(
        ts, sop_class, sop_instance, ae
    )


def test_wrapped_dataset_reads_back() -> None:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    from telerad.synthetic import StudySpec, ct_series

    ds = next(ct_series(StudySpec(), slices=1, rows=8, cols=8))
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    wrapped = build_part10(
        fp.getvalue(), "1.2.840.10008.1.2.1", ds.SOPClassUID, ds.SOPInstanceUID, "CTSCANNER"
    )
    back = read(wrapped)
    assert back.SOPInstanceUID == ds.SOPInstanceUID
    assert back.file_meta.SourceApplicationEntityTitle == "CTSCANNER"
    assert back.PixelData == ds.PixelData


def test_every_truncation_of_every_sample_file_is_refused() -> None:
    """Cut any real sample file short (by 1, 7, 9, 100 bytes or in half) and it is
    refused, whatever its transfer syntax, encapsulation or sequences."""
    from pathlib import Path

    from telerad.dicom.part10 import InvalidInstance, parse_instance

    accepted, missed = 0, []
    for name in sample_files():
        data = Path(name).read_bytes()
        try:
            parse_instance(data)
        except InvalidInstance:
            continue  # refused whole (no meta, no UIDs, already truncated): fine
        accepted += 1
        # image_dfl.dcm carries 8 bytes after its deflate stream: cuts below 9
        # remove only those.
        for cut in (1, 7, 9, 100, len(data) // 2):
            if Path(name).name == "image_dfl.dcm" and cut < 9:
                continue
            try:
                parse_instance(data[:-cut])
            except InvalidInstance:
                continue
            missed.append((Path(name).name, cut))
    assert accepted > 100
    assert missed == []


def test_walked_header_equals_pydicoms_on_every_sample() -> None:
    """The header walk (no Dataset) gives exactly what the pydicom path gives,
    and refuses exactly what it refuses."""
    from pathlib import Path

    from telerad.dicom.part10 import InvalidInstance, check_instance, parse_instance
    from telerad.synthetic import StudySpec, ct_series, tiny_instance, to_bytes

    samples = [Path(name).read_bytes() for name in sample_files()]
    spec = StudySpec(patient_name="Müller^Jörg")
    samples += [to_bytes(ds) for ds in ct_series(spec, slices=2, rows=32, cols=32)]
    samples += [to_bytes(tiny_instance(StudySpec(), "1.2.3", 1))]
    for data in samples:
        for variant in (data, data[:-3]):
            try:
                expected = parse_instance(variant)[1]
            except InvalidInstance:
                with pytest.raises(InvalidInstance):
                    check_instance(variant)
                continue
            assert check_instance(variant) == expected
