"""Helpers every tier shares: waiting for a condition, and the DICOM sample files."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def eventually(
    condition: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``condition`` until it returns something true, and return that.

    The one way tests wait for another thread or process: poll, never sleep a guessed
    time. An exception of a type in ``ignoring`` counts as "not yet" (a server still
    starting refuses connections); any other propagates at once. After ``timeout``
    seconds the test fails, naming ``message`` and the last value or error seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignoring as error:
            last: object = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{message}: still not true after {timeout:g} s (last: {last!r})"
            ) from (last if isinstance(last, BaseException) else None)
        time.sleep(interval)


@cache
def sample_files(pattern: str = "*.dcm") -> tuple[Path, ...]:
    """pydicom's sample files on this machine: those it ships and those of the
    pydicom-data package, sorted by name, each once.

    Unlike ``pydicom.data.get_testdata_files`` this never downloads: that function
    fetches the files it does not find from GitHub on every call (seconds each, and
    a different set of files on a machine with or without network).
    """
    from pydicom.data.data_manager import DATA_ROOT, external_data_sources

    found = {p.name: p for p in (Path(DATA_ROOT) / "test_files").glob(pattern)}
    for source in external_data_sources().values():
        for name in source.get_paths(pattern, 0):  # 0: DICOM datasets
            found.setdefault(Path(name).name, Path(name))
    return tuple(found[name] for name in sorted(found))
