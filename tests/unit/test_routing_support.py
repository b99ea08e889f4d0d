"""Builders shared by the routing tests (no tests here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from telerad.workflow.model import Priority, Reader, ReadingStudy, Shift
from telerad.workflow.rules import Rules

#: A Tuesday afternoon in UTC.
NOW = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
ALWAYS = Shift(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
RULES = Rules()


def make_reader(user_id: int, **changes: Any) -> Reader:
    values: dict[str, Any] = {
        "name": f"Dr {user_id}",
        "licences": frozenset({"US-CA"}),
        "facility_ids": frozenset({7}),
        "modalities": frozenset({"CT", "MR"}),
        "subspecialties": frozenset({"neuro"}),
        "shifts": (ALWAYS,),
        "signed_in": True,
    }
    values.update(changes)
    return Reader(user_id, **values)


def make_study(
    uid: str = "1.2.3",
    priority: Priority = Priority.ROUTINE,
    *,
    ready_at: datetime = NOW,
    rules: Rules = RULES,
    **changes: Any,
) -> ReadingStudy:
    values: dict[str, Any] = {
        "facility_id": 7,
        "jurisdiction": "US-CA",
        "modality": "CT",
        "rvu": 1.0,
    }
    values.update(changes)
    deadline = values.pop("deadline", None) or rules.deadline(
        values["facility_id"], priority, ready_at
    )
    return ReadingStudy(uid, priority=priority, ready_at=ready_at, deadline=deadline, **values)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
