"""The benchmark corpus, generated with :mod:`telerad.synthetic` and written as Part 10 files.

Three sets, every server is fed the same files:

* one CT study of 512×512 16-bit slices (the large-object ingest and WADO-RS set);
* one study of tiny 8×8 secondary captures (per-message overhead);
* many one-instance studies with realistic patients, names and dates spread over
  years (the QIDO-RS set).

pydicom needs about 2 ms to write an instance, too slow for tens of thousands, so the
small instances are written by :class:`TemplateWriter`: the static elements of a
``synthetic.tiny_instance`` are encoded once by pydicom, the per-instance text
elements are encoded directly (explicit VR little endian). The first file of each set
is read back with pydicom and checked.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from telerad import synthetic

Progress = Callable[[int], None]


def _words(text: str) -> list[str]:
    return text.split()


SURNAMES = _words(
    "SMITH JOHNSON WILLIAMS BROWN JONES GARCIA MILLER DAVIS RODRIGUEZ MARTINEZ HERNANDEZ "
    "LOPEZ GONZALEZ WILSON ANDERSON THOMAS TAYLOR MOORE JACKSON MARTIN LEE PEREZ THOMPSON "
    "WHITE HARRIS SANCHEZ CLARK RAMIREZ LEWIS ROBINSON WALKER YOUNG ALLEN KING WRIGHT SCOTT "
    "TORRES NGUYEN HILL FLORES GREEN ADAMS NELSON BAKER HALL RIVERA CAMPBELL MITCHELL CARTER "
    "ROBERTS GOMEZ PHILLIPS EVANS TURNER DIAZ PARKER CRUZ EDWARDS COLLINS REYES STEWART "
    "MORRIS MORALES MURPHY COOK ROGERS GUTIERREZ ORTIZ MORGAN COOPER PETERSON BAILEY REED "
    "KELLY HOWARD RAMOS KIM COX WARD RICHARDSON WATSON BROOKS CHAVEZ WOOD JAMES BENNETT GRAY "
    "MENDOZA RUIZ HUGHES PRICE ALVAREZ CASTILLO SANDERS PATEL MYERS LONG ROSS FOSTER JIMENEZ "
    "POWELL JENKINS PERRY RUSSELL SULLIVAN BELL COLEMAN BUTLER HENDERSON BARNES GONZALES "
    "FISHER VASQUEZ SIMMONS ROMERO JORDAN PATTERSON ALEXANDER HAMILTON GRAHAM REYNOLDS "
    "GRIFFIN WALLACE MORENO WEST COLE HAYES BRYANT HERRERA GIBSON ELLIS TRAN MEDINA AGUILAR "
    "STEVENS MURRAY FORD CASTRO MARSHALL OWENS HARRISON FERNANDEZ MCDONALD WOODS WASHINGTON "
    "KENNEDY WELLS VARGAS HENRY CHEN FREEMAN WEBB TUCKER GUZMAN BURNS CRAWFORD OLSON SIMPSON "
    "PORTER HUNTER GORDON MENDEZ SILVA SHAW SNYDER MASON DIXON MUNOZ HUNT HICKS HOLMES PALMER "
    "WAGNER BLACK ROBERTSON BOYD ROSE STONE SALAZAR FOX WARREN MILLS MEYER RICE SCHMIDT GARZA"
)
# Zipf-like: the common surnames are several times more common than the rare ones.
SURNAME_WEIGHTS = [1 / (rank + 20) for rank in range(len(SURNAMES))]
GIVEN_F = _words(
    "MARY PATRICIA JENNIFER LINDA ELIZABETH BARBARA SUSAN JESSICA SARAH KAREN LISA NANCY "
    "BETTY MARGARET SANDRA ASHLEY KIMBERLY EMILY DONNA MICHELLE CAROL AMANDA DOROTHY MELISSA "
    "DEBORAH STEPHANIE REBECCA SHARON LAURA CYNTHIA KATHLEEN AMY ANGELA SHIRLEY ANNA BRENDA"
)
GIVEN_M = _words(
    "JAMES ROBERT JOHN MICHAEL DAVID WILLIAM RICHARD JOSEPH THOMAS CHARLES CHRISTOPHER "
    "DANIEL MATTHEW ANTHONY MARK DONALD STEVEN PAUL ANDREW JOSHUA KENNETH KEVIN BRIAN GEORGE "
    "TIMOTHY RONALD EDWARD JASON JEFFREY RYAN JACOB GARY NICHOLAS ERIC JONATHAN STEPHEN"
)
EXAMS = (
    ("CT", "CT HEAD WO CONTRAST"),
    ("CT", "CT CHEST WITH CONTRAST"),
    ("CT", "CT ABDOMEN PELVIS W CONTRAST"),
    ("MR", "MRI BRAIN WO CONTRAST"),
    ("MR", "MRI LUMBAR SPINE WO"),
    ("CR", "XR CHEST 2 VIEWS"),
    ("DX", "XR KNEE 3 VIEWS"),
    ("US", "US ABDOMEN COMPLETE"),
    ("MG", "MAMMO SCREENING BILATERAL"),
    ("NM", "NM BONE SCAN WHOLE BODY"),
)
INSTITUTIONS = (
    "Riverside Community Hospital",
    "St. Mary Medical Center",
    "Valley Imaging Center",
    "Northside Clinic",
    "Lakeview Regional",
)

# Text elements that change per instance in the tiny/one-per-study sets.
DYNAMIC = (
    "SOPInstanceUID",
    "StudyDate",
    "SeriesDate",
    "ContentDate",
    "StudyTime",
    "SeriesTime",
    "ContentTime",
    "AccessionNumber",
    "Modality",
    "InstitutionName",
    "StudyDescription",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "StudyID",
    "InstanceNumber",
    "FrameOfReferenceUID",
)


def _encode(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    for elem in ds:
        write_data_element(fp, elem)
    return fp.getvalue()


def _text(tag: int, vr: str, value: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) % 2:
        raw += b"\0" if vr == "UI" else b" "
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(raw)) + raw


class TemplateWriter:
    """Writes copies of a template dataset that differ in a few text elements, fast."""

    def __init__(self, template: Dataset, dynamic: Iterable[str]) -> None:
        self._dynamic = set(dynamic)
        meta = template.file_meta
        self._meta_before = _encode(
            Dataset({e.tag: e for e in meta if 0x00020000 < e.tag < 0x00020003})
        )
        self._meta_after = _encode(Dataset({e.tag: e for e in meta if e.tag > 0x00020003}))
        # Segments of the main dataset in tag order: bytes, or (tag, vr, keyword) to fill in.
        self._segments: list[bytes | tuple[int, str, str]] = []
        static = Dataset()
        for elem in template:
            if elem.keyword in self._dynamic:
                if len(static):
                    self._segments.append(_encode(static))
                    static = Dataset()
                self._segments.append((int(elem.tag), elem.VR, elem.keyword))
            else:
                static.add(elem)
        if len(static):
            self._segments.append(_encode(static))
        missing = self._dynamic - {s[2] for s in self._segments if isinstance(s, tuple)}
        if missing:
            raise ValueError(f"template lacks {sorted(missing)}")

    def render(self, values: dict[str, str]) -> bytes:
        sop_uid = values["SOPInstanceUID"]
        meta = self._meta_before + _text(0x00020003, "UI", sop_uid) + self._meta_after
        head = b"\0" * 128 + b"DICM" + struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(meta)) + meta
        parts = [head]
        for seg in self._segments:
            parts.append(seg if isinstance(seg, bytes) else _text(seg[0], seg[1], values[seg[2]]))
        return b"".join(parts)


@dataclass
class SeriesSet:
    """Files of one series, with the UIDs a retrieve needs."""

    study_uid: str
    series_uid: str
    sop_uids: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class StudyRow:
    patient_id: str
    patient_name: str
    study_date: str


@dataclass
class StudySet:
    """One-instance studies in chunk folders (one storescu association each)."""

    chunks: list[list[Path]]
    rows: list[StudyRow]

    def count_patient_id(self, pid: str) -> int:
        return sum(1 for r in self.rows if r.patient_id == pid)

    def count_name_prefix(self, prefix: str) -> int:
        return sum(1 for r in self.rows if r.patient_name.startswith(prefix))

    def count_date_range(self, low: str, high: str) -> int:
        return sum(1 for r in self.rows if low <= r.study_date <= high)


def write_ct(root: Path, slices: int, progress: Progress) -> SeriesSet:
    """One CT study of ``slices`` 512×512 16-bit slices."""
    root.mkdir(parents=True)
    spec = synthetic.StudySpec(
        patient_id="BENCH0001",
        patient_name="BENCHMARK^CT",
        study_date="20250301",
        accession="BENCHCT0001",
        description="CT CHEST ABDOMEN PELVIS W CONTRAST",
    )
    out: SeriesSet | None = None
    for i, ds in enumerate(synthetic.ct_series(spec, slices=slices, rows=512, cols=512)):
        if out is None:
            out = SeriesSet(ds.StudyInstanceUID, ds.SeriesInstanceUID)
        path = root / f"ct{i:05d}.dcm"
        path.write_bytes(synthetic.to_bytes(ds))
        out.sop_uids.append(ds.SOPInstanceUID)
        out.files.append(path)
        progress(1)
    assert out is not None
    return out


def _tiny_template() -> Dataset:
    """A tiny instance as pydicom writes it (so the file meta is complete)."""
    ds = synthetic.tiny_instance(synthetic.StudySpec(), generate_uid(synthetic.UID_ROOT), 1)
    return pydicom.dcmread(BytesIO(synthetic.to_bytes(ds)))


def _check(path: Path, values: dict[str, str]) -> None:
    """Read a written file back with pydicom: the fast writer must produce valid Part 10."""
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        got = str(ds[Tag(keyword)].value)
        if got != value:
            raise AssertionError(f"{path.name}: {keyword} is {got!r}, wrote {value!r}")
    if ds.file_meta.MediaStorageSOPInstanceUID != values["SOPInstanceUID"]:
        raise AssertionError(f"{path.name}: file meta SOP Instance UID differs")
    if ds.pixel_array.shape != (8, 8):
        raise AssertionError(f"{path.name}: pixel data unreadable")


def write_tiny(root: Path, count: int, progress: Progress) -> SeriesSet:
    """``count`` 8×8 secondary captures in one study and series."""
    root.mkdir(parents=True)
    template = _tiny_template()
    writer = TemplateWriter(template, DYNAMIC)
    base = {k: str(template[Tag(k)].value) for k in DYNAMIC}
    base.update(PatientName="BENCHMARK^TINY", PatientID="BENCH0002", AccessionNumber="BENCHTINY1")
    out = SeriesSet(base["StudyInstanceUID"], base["SeriesInstanceUID"])
    for i in range(count):
        values = dict(
            base, SOPInstanceUID=generate_uid(synthetic.UID_ROOT), InstanceNumber=str(i + 1)
        )
        path = root / f"t{i:05d}.dcm"
        path.write_bytes(writer.render(values))
        if i == 0:
            _check(path, values)
        out.sop_uids.append(values["SOPInstanceUID"])
        out.files.append(path)
        progress(1)
    return out


def _patients(rng: random.Random, count: int) -> list[tuple[str, str, str, str]]:
    """(id, name, birth date, sex) with unique ids; names repeat as they do in practice."""
    ids = rng.sample(range(10_000_000, 99_999_999), count)
    out = []
    for pid in ids:
        sex = rng.choice("FM")
        given = rng.choice(GIVEN_F if sex == "F" else GIVEN_M)
        surname = rng.choices(SURNAMES, weights=SURNAME_WEIGHTS)[0]
        birth = f"{rng.randint(1930, 2020)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        out.append((f"MRN{pid}", f"{surname}^{given}", birth, sex))
    return out


def write_studies(root: Path, count: int, chunk: int, seed: int, progress: Progress) -> StudySet:
    """``count`` one-instance studies over ~0.4 × count patients, dated 2014–2025."""
    root.mkdir(parents=True)
    rng = random.Random(seed)
    template = _tiny_template()
    writer = TemplateWriter(template, DYNAMIC)
    patients = _patients(rng, max(1, int(count * 0.4)))
    weights = [rng.expovariate(1.0) for _ in patients]  # some patients have many studies
    chosen = rng.choices(range(len(patients)), weights=weights, k=count)
    rows: list[StudyRow] = []
    chunks: list[list[Path]] = []
    for i, p in enumerate(chosen):
        if i % chunk == 0:
            folder = root / f"c{i // chunk:03d}"
            folder.mkdir()
            chunks.append([])
        pid, name, birth, sex = patients[p]
        modality, description = rng.choice(EXAMS)
        date = f"{rng.randint(2014, 2025)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        time = f"{rng.randint(6, 22):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"
        study_uid = generate_uid(synthetic.UID_ROOT)
        values = {
            "SOPInstanceUID": generate_uid(synthetic.UID_ROOT),
            "StudyDate": date,
            "SeriesDate": date,
            "ContentDate": date,
            "StudyTime": time,
            "SeriesTime": time,
            "ContentTime": time,
            "AccessionNumber": f"A{i + 1:09d}",
            "Modality": modality,
            "InstitutionName": rng.choice(INSTITUTIONS),
            "StudyDescription": description,
            "PatientName": name,
            "PatientID": pid,
            "PatientBirthDate": birth,
            "PatientSex": sex,
            "StudyInstanceUID": study_uid,
            "SeriesInstanceUID": generate_uid(synthetic.UID_ROOT),
            "StudyID": f"{i + 1:08d}",
            "InstanceNumber": "1",
            "FrameOfReferenceUID": generate_uid(synthetic.UID_ROOT),
        }
        path = folder / f"s{i:06d}.dcm"
        path.write_bytes(writer.render(values))
        if i == 0:
            _check(path, values)
        chunks[-1].append(path)
        rows.append(StudyRow(pid, name, date))
        progress(1)
    return StudySet(chunks, rows)


def name_prefixes(studies: StudySet, n: int, seed: int) -> list[str]:
    """Surname prefixes of 3-4 letters that match studies in the set (as a person types them)."""
    rng = random.Random(seed)
    surnames = sorted(Counter(r.patient_name.split("^")[0] for r in studies.rows))
    picks = [rng.choice(surnames) for _ in range(n)]
    return [s[: rng.choice((3, 4))] for s in picks]
