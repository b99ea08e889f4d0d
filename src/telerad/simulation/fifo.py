"""The first-in-first-out baseline: an open worklist where the next free reader takes
the oldest study they may read. What the engine is measured against."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from telerad.workflow.eligibility import eligible
from telerad.workflow.model import Reader, ReadingStudy


def fifo_next(
    reader: Reader, waiting: Iterable[ReadingStudy], now: datetime
) -> ReadingStudy | None:
    """The oldest of ``waiting`` (in arrival order) that ``reader`` is eligible for."""
    on_shift = reader.on_shift(now)
    for study in waiting:
        if eligible(reader, study, now, on_shift=on_shift)[0]:
            return study
    return None
