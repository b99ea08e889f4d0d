"""``telerad deid``: de-identified copies of DICOM files, with a progress bar and a summary.

The summary names source paths and fixed reasons only, never a value from a dataset.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from telerad.cli.progress import file_progress
from telerad.domain.deid import Keys, Option, Profile
from telerad.services.deid import (
    QUARANTINE,
    SECRET_FILE,
    DeidSummary,
    deidentify_paths,
    find_files,
    load_secret,
)


def default_secret_path(data_dir: Path) -> Path:
    return data_dir / SECRET_FILE


def run_deid(
    paths: Iterable[Path],
    out_dir: Path,
    options: Iterable[Option],
    secret_file: Path,
    facility: str,
    console: Console,
) -> DeidSummary:
    """Load (or create) the secret, de-identify everything, print the summary."""
    profile = Profile.of(options)
    keys = Keys(load_secret(secret_file), facility)
    summary = DeidSummary()
    files = list(find_files(paths, summary))
    progress = file_progress("deid", console)
    with progress:
        task = progress.add_task("deid", total=len(files), state="")

        def advance(done: DeidSummary) -> None:
            progress.update(
                task,
                advance=1,
                state=f"{done.released} released, {len(done.quarantined)} quarantined, "
                f"{done.failed} failed",
            )

        deidentify_paths(paths, out_dir, profile, keys, advance, files=files, summary=summary)
    print_summary(console, summary, out_dir)
    return summary


def print_summary(console: Console, summary: DeidSummary, out_dir: Path) -> None:
    skipped = f", {summary.skipped} skipped" if summary.skipped else ""
    console.print(
        f"de-identified into {out_dir}: {summary.released} released, "
        f"{len(summary.quarantined)} quarantined (in {QUARANTINE}/), "
        f"{summary.failed} failed{skipped}"
    )
    if summary.quarantined:
        held = Table("file", "reason", title="quarantined: may carry burned-in text")
        for path, reason in summary.quarantined:
            held.add_row(path, reason)
        console.print(held)
    if summary.failures:
        failures = Table("file", "reason", title="files not de-identified")
        for path, reason in summary.failures:
            failures.add_row(path, reason)
        console.print(failures)
