"""Studies shaped like real ones, generated: used by the demo, the tests and the benchmarks.

CT: axial slices with body-shaped anatomy in Hounsfield units (rescale slope 1,
intercept -1024), positions stepping along z. MR: a head-shaped phantom. The
attributes a modality would send (patient, study, series, geometry, windowing)
are all there so viewers and queries see what they would see in practice.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

UID_ROOT = "2.25."  # UUID-derived UIDs (PS3.5 B.2): no registered root needed


@dataclass
class StudySpec:
    patient_id: str = "SYN0001"
    patient_name: str = "DOE^JANE"
    birth_date: str = "19700101"
    sex: str = "F"
    study_date: str = "20260101"
    study_time: str = "080000"
    accession: str = "ACC0001"
    description: str = "CT CHEST WITH CONTRAST"
    institution: str = "Demo General Hospital"
    referring: str = "HOUSE^GREGORY"
    study_uid: str = field(default_factory=lambda: generate_uid(UID_ROOT))
    frame_of_reference_uid: str = field(default_factory=lambda: generate_uid(UID_ROOT))


def _base(spec: StudySpec, sop_class: str, modality: str, series_uid: str, number: int) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(generate_uid(UID_ROOT))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = spec.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = spec.study_time
    ds.AccessionNumber = spec.accession
    ds.Modality = modality
    ds.Manufacturer = "telerad synthetic"
    ds.InstitutionName = spec.institution
    ds.ReferringPhysicianName = spec.referring
    ds.StudyDescription = spec.description
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.birth_date
    ds.PatientSex = spec.sex
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = spec.accession[-8:]
    ds.SeriesNumber = number
    ds.FrameOfReferenceUID = spec.frame_of_reference_uid
    return ds


def _phantom(rows: int, cols: int, z: float, kind: str) -> np.ndarray:
    y, x = np.mgrid[-1 : 1 : rows * 1j, -1 : 1 : cols * 1j]
    if kind == "CT":
        img = np.full((rows, cols), -1000.0)  # air
        body = (x / 0.85) ** 2 + (y / 0.6) ** 2 < 1
        img[body] = 40  # soft tissue
        for side in (-0.38, 0.38):  # lungs shrink toward the ends of the scan
            lung = ((x - side) / (0.28 * (1 - 0.3 * abs(z)))) ** 2 + (y / 0.42) ** 2 < 1
            img[lung & body] = -850
        spine = x**2 + ((y - 0.42) / 0.9) ** 2 < 0.012
        img[spine] = 700
        heart = ((x + 0.1) / 0.22) ** 2 + ((y + 0.05) / 0.2) ** 2 < 1 - abs(z)
        img[heart] = 60
        noise = np.random.default_rng(int(abs(z) * 1000)).normal(0, 12, (rows, cols))
        return img + noise
    head = (x / 0.75) ** 2 + (y / 0.9) ** 2 < 1 - 0.5 * z * z
    img = np.zeros((rows, cols))
    img[head] = 900
    brain = (x / 0.66) ** 2 + (y / 0.8) ** 2 < 1 - 0.5 * z * z
    img[brain] = 500
    ventricles = ((np.abs(x) - 0.12) / 0.08) ** 2 + (y / 0.25) ** 2 < 1
    img[ventricles & brain] = 1500
    return img


def _axial_slice(
    spec: StudySpec,
    sop_class: str,
    modality: str,
    series_uid: str,
    number: int,
    index: int,
    z: float,
    field_of_view: float,
    thickness: float,
    shape: tuple[int, int],
) -> Dataset:
    """Geometry shared by every axial slice of a cross-sectional series."""
    ds = _base(spec, sop_class, modality, series_uid, number)
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-field_of_view / 2, -field_of_view / 2, z]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceThickness = thickness
    ds.SliceLocation = z
    ds.PixelSpacing = [field_of_view / shape[0], field_of_view / shape[1]]
    return ds


def ct_series(
    spec: StudySpec, slices: int = 40, rows: int = 512, cols: int = 512, number: int = 1
) -> Iterator[Dataset]:
    series_uid = generate_uid(UID_ROOT)
    for i in range(slices):
        z = (i - slices / 2) * 2.5
        ds = _axial_slice(
            spec, CTImageStorage, "CT", series_uid, number, i, z, 500.0, 2.5, (rows, cols)
        )
        ds.SeriesDescription = "AXIAL 2.5MM"
        ds.BodyPartExamined = "CHEST"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP = 120
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        hu = _phantom(rows, cols, z / max(1.0, slices * 1.25), "CT")
        _set_pixels(ds, np.clip(hu + 1024, 0, 4095).astype(np.uint16), bits_stored=12)
        yield ds


def mr_series(
    spec: StudySpec, slices: int = 24, rows: int = 256, cols: int = 256, number: int = 1
) -> Iterator[Dataset]:
    series_uid = generate_uid(UID_ROOT)
    for i in range(slices):
        z = (i - slices / 2) * 5.0
        ds = _axial_slice(
            spec, MRImageStorage, "MR", series_uid, number, i, z, 240.0, 5.0, (rows, cols)
        )
        ds.SeriesDescription = "AX T2"
        ds.BodyPartExamined = "HEAD"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
        ds.MagneticFieldStrength = 1.5
        ds.EchoTime = 90
        ds.RepetitionTime = 4000
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.WindowCenter = 700
        ds.WindowWidth = 1400
        img = _phantom(rows, cols, z / (slices * 2.5), "MR")
        _set_pixels(ds, np.clip(img, 0, 4095).astype(np.uint16), bits_stored=12)
        yield ds


def tiny_instance(spec: StudySpec, series_uid: str, number: int) -> Dataset:
    """A minimal secondary capture (8×8) for per-message overhead tests."""
    ds = _base(spec, SecondaryCaptureImageStorage, "OT", series_uid, 1)
    ds.ConversionType = "WSD"
    ds.InstanceNumber = number
    _set_pixels(ds, np.full((8, 8), number % 256, np.uint8), bits_stored=8)
    return ds


#: Comprehensive 3D SR: what OHIF's measurement tracking saves (TID 1500).
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


def measurement_report(spec: StudySpec, text: str = "Lesion 12 mm") -> Dataset:
    """A structured report in its own series, as a viewer saves one into the study."""
    ds = _base(spec, COMPREHENSIVE_3D_SR, "SR", generate_uid(UID_ROOT), 900)
    del ds.FrameOfReferenceUID
    ds.InstanceNumber = 1
    ds.CompletionFlag = "PARTIAL"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator = "126000", "DCM"
    title.CodeMeaning = "Imaging Measurement Report"
    ds.ConceptNameCodeSequence = [title]
    item = Dataset()
    item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", text
    finding = Dataset()
    finding.CodeValue, finding.CodingSchemeDesignator = "121071", "DCM"
    finding.CodeMeaning = "Finding"
    item.ConceptNameCodeSequence = [finding]
    ds.ContentSequence = [item]
    return ds


def _set_pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int) -> None:
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def study_date(days_ago: int, today: dt.date | None = None) -> str:
    return ((today or dt.date.today()) - dt.timedelta(days=days_ago)).strftime("%Y%m%d")
