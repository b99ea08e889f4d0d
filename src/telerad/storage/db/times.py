"""Times read back from the index: always aware, always UTC.

SQLite hands back naive datetimes (and CURRENT_TIMESTAMP columns as text);
everything the platform writes is UTC, so that is what they mean.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def utc(value: None) -> None: ...


@overload
def utc(value: datetime | str) -> datetime: ...


def utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
