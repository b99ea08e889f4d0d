"""De-identifying files and folders: outputs, quarantine, failures, the secret file."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from telerad.dicom.part10 import parse_instance
from telerad.domain.deid import Keys, Profile
from telerad.services.deid import (
    QUARANTINE,
    SecretError,
    deidentify_paths,
    load_secret,
)
from telerad.synthetic import StudySpec, ct_series, to_bytes

KEYS = Keys(b"s" * 32, "Facility A")


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    (folder / "ct").mkdir(parents=True)
    for name in ("CT_small.dcm", "US1_UNCR.dcm", "SC_rgb.dcm"):
        shutil.copy(get_testdata_file(name), folder / name)
    for n, ds in enumerate(ct_series(StudySpec(), slices=3, rows=16, cols=16)):
        (folder / "ct" / f"{n}.dcm").write_bytes(to_bytes(ds))
    good = (folder / "ct" / "0.dcm").read_bytes()
    (folder / "ct" / "truncated.dcm").write_bytes(good[: len(good) // 2])
    (folder / "notes.txt").write_text("not DICOM\n")
    return folder


def outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.dcm") if QUARANTINE not in p.parts)


def test_folder_released_quarantined_failed(inbox: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = deidentify_paths([inbox], out, Profile(), KEYS)
    assert summary.released == 4  # CT_small + 3 synthetic slices
    assert sorted(Path(p).name for p, _ in summary.quarantined) == ["SC_rgb.dcm", "US1_UNCR.dcm"]
    assert sorted(Path(p).name for p, _ in summary.failures) == ["notes.txt", "truncated.dcm"]
    released = outputs(out)
    assert len(released) == 4
    study_uids = {str(dcmread(p).StudyInstanceUID) for p in released}
    assert len(study_uids) == 2  # the sample's study and the generated one, kept apart
    for path in released:
        parse_instance(path.read_bytes())  # a whole, valid Part 10 file again
        ds = dcmread(path)
        assert path.name == f"{ds.SOPInstanceUID}.dcm"
        assert path.parent.name == ds.SeriesInstanceUID
        assert path.parent.parent.name == ds.StudyInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert "SourceApplicationEntityTitle" not in ds.file_meta
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientName == "" and ds.PatientID == ""
    quarantine = out / QUARANTINE
    reasons = sorted(p.read_text().strip() for p in quarantine.glob("*.reason.txt"))
    assert reasons == ["modality US without BurnedInAnnotation NO", "secondary capture SOP class"]
    for held in quarantine.glob("*.dcm"):
        ds = dcmread(held)
        assert ds.PatientIdentityRemoved == "YES"
        assert (quarantine / f"{ds.SOPInstanceUID}.reason.txt").is_file()
    assert not list(out.rglob("*.partial"))


def test_pixel_data_untouched_on_disk(tmp_path: Path) -> None:
    source = Path(get_testdata_file("CT_small.dcm"))
    summary = deidentify_paths([source], tmp_path / "out", Profile(), KEYS)
    assert summary.released == 1
    (written,) = outputs(tmp_path / "out")
    before, after = dcmread(source), dcmread(written)
    assert after.PixelData == before.PixelData
    assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
    assert (after.pixel_array == before.pixel_array).all()


def test_compressed_sample_keeps_its_encoding(tmp_path: Path) -> None:
    source = Path(get_testdata_file("US1_J2KR.dcm"))
    summary = deidentify_paths([source], tmp_path / "out", Profile(), KEYS)
    assert [reason for _, reason in summary.quarantined] == [
        "modality US without BurnedInAnnotation NO"
    ]
    (held,) = (tmp_path / "out" / QUARANTINE).glob("*.dcm")
    before, after = dcmread(source), dcmread(held)
    assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
    assert after.PixelData == before.PixelData


def test_same_input_twice_same_files_other_secret_other_files(inbox: Path, tmp_path: Path) -> None:
    names = []
    for run, keys in enumerate((KEYS, KEYS, Keys(b"t" * 32, "Facility A"))):
        out = tmp_path / f"out{run}"
        deidentify_paths([inbox / "ct"], out, Profile(), keys)
        names.append([p.relative_to(out) for p in outputs(out)])
    assert names[0] == names[1] and len(names[0]) == 3
    assert not set(names[0]) & set(names[2])


def test_output_inside_input_is_not_read_back(inbox: Path) -> None:
    first = deidentify_paths([inbox / "ct"], inbox / "ct" / "out", Profile(), KEYS)
    again = deidentify_paths([inbox / "ct"], inbox / "ct" / "out", Profile(), KEYS)
    assert first.released == again.released == 3
    assert again.skipped == 3


def test_missing_path_is_a_failure(tmp_path: Path) -> None:
    summary = deidentify_paths([tmp_path / "nope"], tmp_path / "out", Profile(), KEYS)
    assert summary.failures == [(str(tmp_path / "nope"), "no such file or directory")]


def test_secret_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "deid.secret"
    secret = load_secret(path)
    assert len(secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path) == secret
    assert load_secret(tmp_path / "other.secret") != secret


def test_short_or_missing_secret_rejected(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"abc")
    with pytest.raises(SecretError):
        load_secret(short)
    with pytest.raises(SecretError):
        load_secret(tmp_path / "absent", create=False)
