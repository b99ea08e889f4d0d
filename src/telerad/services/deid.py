"""De-identify DICOM files and folders for one facility (PS3.15 Annex E, see domain.deid).

Each instance is read and checked like an import (a truncated or non-DICOM file fails
with its reason), de-identified in memory, then written whole under a name made of the
new UIDs only: ``<out>/<study>/<series>/<instance>.dcm``. Instances whose pixels may carry
burned-in text are de-identified the same way but go to ``<out>/quarantine/`` with a
``.reason.txt`` beside them, for a person to check: pixel data is never altered.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from telerad.dicom.part10 import IMPLEMENTATION_VERSION, InvalidInstance, parse_instance, read
from telerad.domain.deid import Keys, Profile, burned_in_risk, deidentify
from telerad.services import files

SECRET_FILE = "deid.secret"
SECRET_BYTES = 32
QUARANTINE = "quarantine"


class SecretError(ValueError):
    """A secret file that is unreadable, too short or readable by others."""


def load_secret(path: Path, create: bool = True) -> bytes:
    """The facility secret in ``path``; with ``create``, 32 random bytes (mode 0600) if absent."""
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(SECRET_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise SecretError(f"cannot read the secret file: {exc.strerror or exc}") from exc
    if len(secret) < 16:
        raise SecretError("the secret file holds fewer than 16 bytes")
    return secret


@dataclass
class DeidSummary:
    released: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (source path, reason)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source path, reason)
    skipped: int = 0

    @property
    def failed(self) -> int:
        return len(self.failures)


@dataclass(frozen=True)
class DeidOutcome:
    path: Path
    quarantine_reason: str | None


def deidentify_bytes(
    data: bytes, profile: Profile, keys: Keys
) -> tuple[bytes, Dataset, str | None]:
    """Part 10 bytes in, de-identified Part 10 bytes out, with the quarantine reason if any."""
    parse_instance(data)  # completeness and UID checks, as for an import
    ds = read(data)
    transfer_syntax = ds.file_meta.TransferSyntaxUID
    reason = burned_in_risk(ds)
    deidentify(ds, profile, keys)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta  # the source AE title and the old instance UID go with the old meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue(), ds, reason


def deidentify_file(source: Path, out_dir: Path, profile: Profile, keys: Keys) -> DeidOutcome:
    """De-identify one file into ``out_dir``; raises InvalidInstance or OSError on failure."""
    encoded, ds, reason = deidentify_bytes(source.read_bytes(), profile, keys)
    sop_uid = str(ds.SOPInstanceUID)
    if reason is None:
        target = out_dir / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID) / f"{sop_uid}.dcm"
    else:
        target = out_dir / QUARANTINE / f"{sop_uid}.dcm"
        _write_atomically(target.with_suffix(".reason.txt"), f"{reason}\n".encode())
    _write_atomically(target, encoded)
    return DeidOutcome(target, reason)


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)


def find_files(paths: Iterable[Path], summary: DeidSummary) -> Iterator[Path]:
    def missing(path: Path) -> None:
        summary.failures.append((str(path), "no such file or directory"))

    def skipped() -> None:
        summary.skipped += 1

    return files.find_files(paths, missing, skipped)


def deidentify_paths(
    paths: Iterable[Path],
    out_dir: Path,
    profile: Profile,
    keys: Keys,
    on_file: Callable[[DeidSummary], None] | None = None,
    files: list[Path] | None = None,
    summary: DeidSummary | None = None,
) -> DeidSummary:
    """De-identify every file under ``paths``; ``on_file`` is called after each one."""
    summary = summary or DeidSummary()
    out_resolved = out_dir.resolve()
    if files is None:
        files = list(find_files(paths, summary))
    for source in files:
        if out_resolved in source.resolve().parents:
            summary.skipped += 1  # our own output, when --out lies inside an input folder
        else:
            _one(source, out_dir, profile, keys, summary)
        if on_file is not None:
            on_file(summary)
    return summary


def _one(source: Path, out_dir: Path, profile: Profile, keys: Keys, summary: DeidSummary) -> None:
    try:
        outcome = deidentify_file(source, out_dir, profile, keys)
    except InvalidInstance as exc:
        summary.failures.append((str(source), str(exc)))
    except OSError as exc:
        summary.failures.append((str(source), f"cannot read or write: {exc.strerror or exc}"))
    except Exception as exc:  # a malformed value pydicom only trips on while rewriting
        summary.failures.append((str(source), f"cannot de-identify: {type(exc).__name__}"))
    else:
        if outcome.quarantine_reason is None:
            summary.released += 1
        else:
            summary.quarantined.append((str(source), outcome.quarantine_reason))


@dataclass
class StudyExport:
    """A study de-identified for release: what goes out, and what a person must check first."""

    released: list[bytes] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # reasons, never patient data


def deidentify_instances(instances: Iterable[bytes], profile: Profile, keys: Keys) -> StudyExport:
    """De-identify stored instances; those that may carry burned-in text are held back."""
    export = StudyExport()
    for data in instances:
        encoded, _ds, reason = deidentify_bytes(data, profile, keys)
        if reason is None:
            export.released.append(encoded)
        else:
            export.quarantined.append(reason)
    return export
