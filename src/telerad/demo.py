"""Demo studies across modality families, loaded through the archive like any other instance.

Generated CT and MR series (``telerad.synthetic``) and a generated DX chest
radiograph sit beside real sample files shipped by pydicom and pydicom-data: US
multi-frame, CR, enhanced CT/MR, NM, RGB secondary capture, and the compressed
transfer syntaxes a viewer must decode (JPEG baseline and lossless, JPEG 2000,
JPEG-LS, RLE). No DX sample ships with those packages, hence the generated one.

Every UID is derived from a fixed name, so loading twice gives duplicates, not
a second copy, and every object goes through ``Archive.store`` so the same
checks apply as for C-STORE, STOW-RS and import.
"""

from __future__ import annotations

import functools
import io
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
)
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from telerad import synthetic
from telerad.bootstrap import Platform
from telerad.domain.orders import Order, PatientDemographics, triage_priority
from telerad.services.archive import StoreTally
from telerad.services.orders import Origin
from telerad.workflow.model import Priority

log = logging.getLogger(__name__)

DEMO_FACILITY = "Demo General Hospital"
MARKER = ".demo-loaded"
_NAMESPACE = uuid.UUID("6f0c4f0e-5d1b-4c55-9d59-7a3c1f3d7e21")


def demo_uid(*parts: str) -> str:
    """A UID derived from a name (PS3.5 B.2 UUID form), the same on every run."""
    return "2.25." + str(uuid.uuid5(_NAMESPACE, "/".join(parts)).int)


@dataclass(frozen=True)
class Sample:
    """A real sample file from pydicom's test data and why it is in the demo."""

    file: str
    shows: str


SAMPLES: tuple[Sample, ...] = (
    Sample("CT_small.dcm", "CT, explicit VR little endian"),
    Sample("693_J2KR.dcm", "CT, JPEG 2000 lossless"),
    Sample("MR_small.dcm", "MR, explicit VR little endian"),
    Sample("MR2_J2KR.dcm", "MR 1024x1024, JPEG 2000 lossless"),
    Sample("MR_small_RLE.dcm", "MR, RLE lossless"),
    Sample("MR_small_jpeg_ls_lossless.dcm", "MR, JPEG-LS lossless"),
    Sample("eCT_Supplemental.dcm", "Enhanced CT, multi-frame"),
    Sample("emri_small.dcm", "Enhanced MR, 10 frames"),
    Sample("color3d_jpeg_baseline.dcm", "US multi-frame (120 frames), JPEG baseline"),
    Sample("US1_J2KR.dcm", "US RGB, JPEG 2000 lossless"),
    Sample("OBXXXX1A_rle_2frame.dcm", "US multi-frame palette colour, RLE"),
    Sample("JPGLosslessP14SV1_1s_1f_8b.dcm", "US, JPEG lossless (process 14 SV1)"),
    Sample("RG1_J2KR.dcm", "CR chest, JPEG 2000 lossless"),
    Sample("RG3_UNCR.dcm", "CR, uncompressed"),
    Sample("JPEG-LL.dcm", "NM, JPEG lossless"),
    Sample("JPEG-lossy.dcm", "NM, JPEG extended (lossy)"),
    Sample("JPEG2000.dcm", "NM, JPEG 2000"),
    Sample("SC_rgb.dcm", "RGB secondary capture"),
    Sample("SC_rgb_rle.dcm", "RGB secondary capture, RLE"),
    Sample("SC_rgb_jpeg_gdcm.dcm", "RGB secondary capture, JPEG lossless"),
    Sample("JPEGLSNearLossless_08.dcm", "JPEG-LS near-lossless, 8 bit"),
    Sample("JPEGLSNearLossless_16.dcm", "JPEG-LS near-lossless, 16 bit"),
)

# Generated studies: (key, spec, kind, slices, rows, cols)
_SPECS: tuple[tuple[str, synthetic.StudySpec, str, int, int, int], ...] = (
    (
        "ct-chest-1",
        synthetic.StudySpec(
            patient_id="DEMO0001",
            patient_name="DOE^JANE",
            birth_date="19640312",
            sex="F",
            study_date="20260105",
            study_time="081500",
            accession="DEMO0001",
            description="CT CHEST WITH CONTRAST",
            institution=DEMO_FACILITY,
            study_uid=demo_uid("ct-chest-1", "study"),
            frame_of_reference_uid=demo_uid("ct-chest-1", "frame"),
        ),
        "CT",
        60,
        512,
        512,
    ),
    (
        "ct-chest-2",
        synthetic.StudySpec(
            patient_id="DEMO0002",
            patient_name="ROE^RICHARD",
            birth_date="19580720",
            sex="M",
            study_date="20260106",
            study_time="231000",
            accession="DEMO0002",
            description="CT CHEST PE PROTOCOL",
            institution=DEMO_FACILITY,
            study_uid=demo_uid("ct-chest-2", "study"),
            frame_of_reference_uid=demo_uid("ct-chest-2", "frame"),
        ),
        "CT",
        60,
        512,
        512,
    ),
    (
        "mr-head-1",
        synthetic.StudySpec(
            patient_id="DEMO0003",
            patient_name="MOE^ANNA",
            birth_date="19811102",
            sex="F",
            study_date="20260107",
            study_time="101000",
            accession="DEMO0003",
            description="MR BRAIN WITHOUT CONTRAST",
            institution=DEMO_FACILITY,
            study_uid=demo_uid("mr-head-1", "study"),
            frame_of_reference_uid=demo_uid("mr-head-1", "frame"),
        ),
        "MR",
        24,
        256,
        256,
    ),
)
_DX_SPEC = synthetic.StudySpec(
    patient_id="DEMO0004",
    patient_name="POE^EDGAR",
    birth_date="19490119",
    sex="M",
    study_date="20260108",
    study_time="030500",
    accession="DEMO0004",
    description="XR CHEST PA",
    institution=DEMO_FACILITY,
    study_uid=demo_uid("dx-chest-1", "study"),
    frame_of_reference_uid=demo_uid("dx-chest-1", "frame"),
)


@dataclass
class DemoSummary(StoreTally):
    #: Sample files that the installed pydicom data packages do not have.
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0


Item = tuple[str, Callable[[], bytes]]


def _to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _generated_items() -> Iterator[Item]:
    for key, spec, kind, slices, rows, cols in _SPECS:
        make = synthetic.ct_series if kind == "CT" else synthetic.mr_series
        series_uid = demo_uid(key, "series")
        for ds in make(spec, slices=slices, rows=rows, cols=cols):
            yield f"{key} #{ds.InstanceNumber}", _with_uids(ds, series_uid)
    yield "dx-chest-1", lambda: _to_bytes(dx_chest(_DX_SPEC))


def _with_uids(ds: Dataset, series_uid: str) -> Callable[[], bytes]:
    def build() -> bytes:
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = demo_uid(series_uid, str(ds.InstanceNumber))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        return _to_bytes(ds)

    return build


def sample_path(name: str) -> Path | None:
    """A file of pydicom's test data (pydicom-data, installed, works offline); None if absent."""
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name, download=False)
    return Path(str(found)) if found else None


def sample_bytes(path: Path, note: str) -> bytes:
    """A sample file with demo UIDs: several samples share UIDs (one image, many encodings).

    Pixel data and every other attribute are kept as they are; a missing patient or
    study identity (some codec samples have none) is filled in.
    """
    ds = dcmread(path)
    name = path.name
    patient_id = str(ds.get("PatientID", "") or "") or "SAMPLE"
    if not ds.get("PatientID"):
        ds.PatientID = patient_id
    if not ds.get("PatientName"):
        ds.PatientName = "SAMPLE^FILES"
    if not ds.get("Modality"):
        ds.Modality = "OT"
    if not ds.get("StudyDate"):
        ds.StudyDate = "20260101"
    if not ds.get("StudyDescription"):
        ds.StudyDescription = "pydicom sample files"
    original_study = str(ds.get("StudyInstanceUID", "") or "")
    ds.StudyInstanceUID = demo_uid("sample-study", original_study, patient_id)
    ds.SeriesInstanceUID = demo_uid("sample-series", name)
    ds.SOPInstanceUID = demo_uid("sample-instance", name)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = f"{note} [{name}]"[:64]
    return _to_bytes(ds)


def _sample_items(summary: DemoSummary) -> Iterator[Item]:
    for sample in SAMPLES:
        path = sample_path(sample.file)
        if path is None:
            summary.missing.append(sample.file)
            continue
        yield sample.file, functools.partial(sample_bytes, path, sample.shows)


def dx_chest(spec: synthetic.StudySpec, size: int = 1024) -> Dataset:
    """A DX chest radiograph (PA), For Presentation, shaped like a real one."""
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    img = np.full((size, size), 150.0)  # air around the patient
    thorax = (x / 0.82) ** 2 + ((y + 0.05) / 0.95) ** 2 < 1
    img[thorax] = 2300
    for side in (-1, 1):
        lung = ((x - side * 0.36) / 0.27) ** 2 + ((y + 0.1) / 0.62) ** 2 < 1
        img[lung & thorax] = 900
        for k in range(9):  # posterior ribs: bright arcs across each lung
            arc = np.abs(y + 0.65 - 0.15 * k - 0.25 * (x - side * 0.36) ** 2) < 0.018
            img[arc & lung] += 700
    mediastinum = (np.abs(x + 0.04 * y) < 0.12) & (y > -0.75)
    heart = ((x - 0.1) / 0.3) ** 2 + ((y - 0.25) / 0.25) ** 2 < 1
    img[(mediastinum | heart) & thorax] = 2600
    img[(y > 0.45 + 0.1 * np.abs(x)) & thorax] = 2700  # diaphragm and abdomen
    img += np.random.default_rng(7).normal(0, 25, (size, size))
    pixels = np.clip(img, 0, 4095).astype(np.uint16)

    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = UID(demo_uid(spec.study_uid, "dx", "1"))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = spec.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = spec.study_time
    ds.AccessionNumber = spec.accession
    ds.Modality = "DX"
    ds.Manufacturer = "telerad synthetic"
    ds.InstitutionName = spec.institution
    ds.ReferringPhysicianName = spec.referring
    ds.StudyDescription = spec.description
    ds.SeriesDescription = "CHEST PA"
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.birth_date
    ds.PatientSex = spec.sex
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = demo_uid(spec.study_uid, "dx-series")
    ds.StudyID = spec.accession[-8:]
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImageLaterality = "U"
    ds.KVP = 120
    ds.ImagerPixelSpacing = [0.4, 0.4]
    ds.PixelSpacing = [0.4, 0.4]
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = 1800
    ds.WindowWidth = 3200
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    return ds


# The orders the demo studies answer (the sample files have none: they wait in reconciliation).
_ORDERS: tuple[tuple[synthetic.StudySpec, str, Priority, str], ...] = (
    (_SPECS[0][1], "71250", Priority.ROUTINE, "staging, known lung nodule"),
    (_SPECS[1][1], "71275", Priority.STAT, "suspected pulmonary embolism"),
    (_SPECS[2][1], "70551", Priority.URGENT, "acute aphasia since this morning"),
    (_DX_SPEC, "71046", Priority.ROUTINE, "cough for three weeks"),
)


def place_demo_orders(platform: Platform, facility_id: int) -> int:
    """The demo's orders, as a RIS would have sent them (again on each start: no twins)."""
    origin = Origin("demo", "telerad demo")
    for spec, code, ordered, reason in _ORDERS:
        order = Order(
            facility_id=facility_id,
            accession_number=spec.accession,
            patient=PatientDemographics(
                spec.patient_id, spec.patient_name, spec.birth_date, spec.sex
            ),
            procedure=platform.orders.catalogue.resolve(code, spec.description),
            priority=triage_priority(ordered, reason),
            reason=reason,
            ordering_physician=spec.referring,
        )
        platform.orders.place_or_revise(order, origin)
    return len(_ORDERS)


def demo_size() -> int:
    """How many objects the demo loads (for the progress bar)."""
    generated = sum(slices for _key, _spec, _kind, slices, _r, _c in _SPECS) + 1
    return generated + len(SAMPLES)


def load_demo(platform: Platform, console: Console | None = None) -> DemoSummary:
    """Store the demo studies into the facility 'Demo General Hospital' (created if needed)."""
    facility = platform.index.facility_by_name(DEMO_FACILITY)
    if facility is None:
        facility = platform.index.add_facility(DEMO_FACILITY)
    place_demo_orders(platform, facility.id)
    summary = DemoSummary()
    quiet = console is None
    progress = Progress(
        TextColumn("[bold]demo[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(quiet=True),
        disable=quiet,
    )
    items = _generated_items(), _sample_items(summary)
    with progress:
        task = progress.add_task("loading", total=demo_size())
        for label, build in (item for group in items for item in group):
            progress.update(task, description=label)
            try:
                result = platform.archive.store(facility.id, build())
            except Exception as exc:  # a sample pydicom cannot rewrite, a broken store
                summary.fail(label, f"{type(exc).__name__}: {exc}")
            else:
                summary.count(label, result)
            progress.advance(task)
        progress.update(task, total=progress.tasks[0].completed, description="done")
    if console is not None:
        print_summary(console, summary)
    return summary


def print_summary(console: Console, summary: DemoSummary) -> None:
    console.print(
        f"demo: {summary.stored} stored, {summary.duplicates} already there, "
        f"{summary.failed} failed — facility '{DEMO_FACILITY}'"
    )
    if summary.missing:
        console.print("[yellow]sample files not installed:[/yellow] " + ", ".join(summary.missing))
    if summary.failures:
        table = Table("object", "reason", title="demo objects not stored")
        for label, reason in summary.failures:
            table.add_row(label, reason)
        console.print(table)


def load_demo_once(platform: Platform) -> bool:
    """Load the demo on the first start only (a marker in the data dir records it).

    Returns True when it loaded now. Runs in a background thread of ``telerad serve --demo``.
    """
    marker = platform.settings.data_dir / MARKER
    if marker.exists():
        return False
    log.info("demo: loading %d demo objects in the background", demo_size())
    try:
        summary = load_demo(platform)
    except Exception:
        log.exception("demo: loading failed")
        return False
    log.info(
        "demo: %d stored, %d already there, %d failed",
        summary.stored,
        summary.duplicates,
        summary.failed,
    )
    for label, reason in summary.failures:
        log.warning("demo: %s not stored: %s", label, reason)
    if summary.ok:  # a failed object is tried again on the next start
        marker.write_text("demo loaded\n")
    return True
