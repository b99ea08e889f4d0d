"""``telerad deid`` run as a user runs it, its output read by dcmtk."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from telerad.synthetic import StudySpec, ct_series, to_bytes

PHI = "DOE^JANE"  # the synthetic patient's name, which must never be printed


def telerad(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TELERAD_DATA_DIR=str(data_dir), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "telerad.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for n, ds in enumerate(ct_series(StudySpec(patient_name=PHI), slices=3, rows=16, cols=16)):
        (folder / f"ct{n}.dcm").write_bytes(to_bytes(ds))
    shutil.copy(get_testdata_file("US1_UNCR.dcm"), folder / "us.dcm")
    return folder


def released(out: Path) -> list[Path]:
    return sorted(p.relative_to(out) for p in out.rglob("*.dcm") if "quarantine" not in p.parts)


def test_deid_command(inbox: Path, tmp_path: Path) -> None:
    data_dir, out = tmp_path / "data", tmp_path / "out"
    result = telerad(data_dir, "deid", str(inbox), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 released, 1 quarantined" in result.stdout and "0 failed" in result.stdout
    assert PHI not in result.stdout + result.stderr
    secret = data_dir / "deid.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_bytes()) == 32
    files = released(out)
    assert len(files) == 3 and len({f.parent for f in files}) == 1  # one series
    assert len(list((out / "quarantine").glob("*.reason.txt"))) == 1
    dcmdump = shutil.which("dcmdump")
    if dcmdump:  # a real peer reads what we wrote
        dump = subprocess.run(
            [dcmdump, str(out / files[0])], capture_output=True, text=True, timeout=60
        )
        assert dump.returncode == 0, dump.stderr
        assert "PatientIdentityRemoved" in dump.stdout and PHI not in dump.stdout

    again = telerad(data_dir, "deid", str(inbox), "--out", str(tmp_path / "again"))
    assert again.returncode == 0
    assert released(tmp_path / "again") == files  # the same secret: the same UIDs

    other_secret = tmp_path / "other.secret"
    other_secret.write_bytes(os.urandom(32))
    other = telerad(
        data_dir,
        "deid",
        str(inbox),
        "--out",
        str(tmp_path / "o"),
        "--secret-file",
        str(other_secret),
    )
    assert other.returncode == 0
    assert not set(released(tmp_path / "o")) & set(files)


def test_options_recorded(inbox: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--profile", "retain-full-dates", "--profile", "retain-patient-characteristics"]
    result = telerad(tmp_path / "data", "deid", str(inbox / "ct0.dcm"), "--out", str(out), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = released(out)
    ds = dcmread(out / path)
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == [
        "113100",
        "113106",
        "113108",
    ]
    assert ds.StudyDate == StudySpec().study_date and ds.PatientSex == StudySpec().sex


def test_failures_exit_1_and_bad_options_exit_2(inbox: Path, tmp_path: Path) -> None:
    (inbox / "broken.dcm").write_bytes((inbox / "ct0.dcm").read_bytes()[:300])
    result = telerad(tmp_path / "data", "deid", str(inbox), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "1 failed" in result.stdout and "broken.dcm" in result.stdout
    assert PHI not in result.stdout + result.stderr
    assert len(released(tmp_path / "out")) == 3  # the others still went through

    bad = telerad(
        tmp_path / "data",
        "deid",
        str(inbox),
        "--out",
        str(tmp_path / "x"),
        "--profile",
        "retain-everything",
    )
    assert bad.returncode == 2 and "retain-uids" in bad.stderr
    both = telerad(
        tmp_path / "data",
        "deid",
        str(inbox),
        "--out",
        str(tmp_path / "x"),
        "--profile",
        "retain-full-dates",
        "--profile",
        "retain-modified-dates",
    )
    assert both.returncode == 2 and "exclude each other" in both.stderr
    assert not (tmp_path / "x").exists()
