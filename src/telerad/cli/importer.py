"""``telerad import``: DICOM files from disk into the archive, each through ``Archive.store``.

Folders are searched recursively. A file that is not DICOM, is truncated, or
conflicts with what is stored is reported with its path and the reason, and
nothing of it is kept. The report names paths only, never patient data.

Warnings raised while reading the files (pydicom's about non-conformant values)
are counted instead of printed, so they neither break the progress bar nor show
the values they quote (a malformed birth date or name is PHI); the summary says
how many, of which kind, in how many files.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from telerad.bootstrap import Platform
from telerad.cli.progress import file_progress
from telerad.domain.model import Facility
from telerad.services import files
from telerad.services.archive import StoreTally

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def without_values(message: str) -> str:
    """A warning's text with what it quotes left out: "Invalid value for VR DA: '…'"."""
    return _QUOTED.sub("'…'", message)


@dataclass
class Summary(StoreTally):
    skipped: int = 0
    #: Warnings while reading, by text without the values they quote.
    warnings: Counter[str] = field(default_factory=Counter)
    warned_files: set[str] = field(default_factory=set)


@contextmanager
def counted_warnings(summary: Summary, current: list[str]) -> Iterator[None]:
    """Count every warning (``current[0]``: the file being read) instead of printing it."""

    def count(message: Warning | str, *_: Any, **__: Any) -> None:
        summary.warnings[without_values(str(message))] += 1
        summary.warned_files.add(current[0])

    with warnings.catch_warnings():
        warnings.simplefilter("always")  # each one counted, not only the first per place
        warnings.showwarning = count
        yield


def find_files(paths: Iterable[Path], summary: Summary) -> Iterator[Path]:
    def missing(path: Path) -> None:
        summary.fail(str(path), "no such file or directory")

    def skipped() -> None:
        summary.skipped += 1

    return files.find_files(paths, missing, skipped)


def facility_for(platform: Platform, name: str | None) -> Facility:
    """The facility the files are for (the admission rule: named, else the default)."""
    return platform.admission.named(name)


def import_paths(
    platform: Platform,
    paths: Iterable[Path],
    facility_name: str | None = None,
    console: Console | None = None,
) -> Summary:
    """Store every file under ``paths`` for the named facility (created if missing)."""
    console = console or Console(quiet=True)
    facility = facility_for(platform, facility_name)
    summary = Summary()
    files = list(find_files(paths, summary))
    progress = file_progress("import", console)
    current = [""]
    with progress, counted_warnings(summary, current):
        task = progress.add_task("import", total=len(files), state="")
        for path in files:
            current[0] = str(path)
            _import_one(platform, facility.id, path, summary)
            progress.update(
                task,
                advance=1,
                state=f"{summary.stored} stored, {summary.duplicates} dup, {summary.failed} failed",
            )
    print_summary(console, summary, facility.name)
    return summary


def _import_one(platform: Platform, facility_id: int, path: Path, summary: Summary) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        summary.fail(str(path), f"cannot read: {exc.strerror or exc}")
        return
    summary.count(str(path), platform.archive.store(facility_id, data))


def print_summary(console: Console, summary: Summary, facility: str) -> None:
    skipped = f", {summary.skipped} skipped" if summary.skipped else ""
    console.print(
        f"import into facility '{facility}': {summary.stored} stored, "
        f"{summary.duplicates} duplicates, {summary.failed} failed{skipped}"
    )
    if summary.failures:
        failures = Table("file", "reason", title="files not imported")
        for path, reason in summary.failures:
            failures.add_row(path, reason)
        console.print(failures)
    if summary.warnings:
        total = sum(summary.warnings.values())
        files = len(summary.warned_files)
        table = Table(
            "warning (values left out)",
            "times",
            title=f"{total} warnings while reading {files} file{'s' if files != 1 else ''}",
        )
        for message, times in summary.warnings.most_common():
            table.add_row(message, str(times))
        console.print(table)
