"""Walking the files a command is given (import, de-identification)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

#: Media directories index a file set; they are not instances.
SKIPPED_NAMES = frozenset({"DICOMDIR"})


def find_files(
    paths: Iterable[Path], on_missing: Callable[[Path], None], on_skipped: Callable[[], None]
) -> Iterator[Path]:
    """Regular files under ``paths``, in a stable order. Missing paths and things
    that are not regular files (DICOMDIR, sockets, broken links) are reported."""
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    candidate = Path(root) / name
                    if name in SKIPPED_NAMES or not candidate.is_file():
                        on_skipped()
                        continue
                    yield candidate
        elif not path.exists():
            on_missing(path)
        else:
            on_skipped()
