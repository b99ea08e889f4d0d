"""What every fake shares: a settable clock, row ids, and the database's refusal."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError


class Clock:
    """A clock the test moves by hand; every fake and service of a test reads the same one."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def after(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def ids() -> Iterator[int]:
    """Primary keys as a table hands them out: 1, 2, 3…"""
    return itertools.count(1)


def duplicate(constraint: str) -> IntegrityError:
    """The error the SQL stores let through when a unique constraint refuses a row, so a
    caller that handles one handles the other."""
    return IntegrityError(f"fake insert ({constraint})", {}, Exception(f"UNIQUE {constraint}"))
