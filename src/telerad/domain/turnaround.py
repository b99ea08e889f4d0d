"""Turnaround (TAT) and SLA compliance from completed reads: pure arithmetic.

A read's turnaround runs from the moment the study was ready to read to the
moment it was marked read; it met its SLA when it was read by its deadline
(the contract's target for its tier, see docs/routing.md). A study still unread
after its deadline has already missed it: it counts as a breach in compliance
(``open_breaches``), though it has no turnaround yet.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from telerad.workflow.model import Priority

PERCENTILES = (50, 90, 95)


@dataclass(frozen=True)
class Read:
    facility_id: int
    priority: Priority
    ready_at: datetime
    deadline: datetime
    #: None: still open (only open reads past their deadline are counted).
    completed_at: datetime | None

    @property
    def done(self) -> bool:
        return self.completed_at is not None

    @property
    def minutes(self) -> float:
        assert self.completed_at is not None
        return (self.completed_at - self.ready_at).total_seconds() / 60

    @property
    def met(self) -> bool:
        return self.completed_at is not None and self.completed_at <= self.deadline


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class TierTat:
    priority: Priority
    count: int  # completed reads
    minutes: dict[int, float]  # percentile → minutes (empty: none completed yet)
    met: int
    #: Open studies of the tier already past their deadline.
    open_breaches: int = 0

    @property
    def compliance(self) -> float:
        return self.met / (self.count + self.open_breaches)


@dataclass(frozen=True)
class FacilitySla:
    facility_id: int
    count: int  # completed reads and open breaches: every read that is due
    met: int
    by_tier: dict[Priority, tuple[int, int]]  # tier → (met, count)
    open_breaches: int = 0

    @property
    def compliance(self) -> float:
        return self.met / self.count


def per_tier(reads: Iterable[Read]) -> list[TierTat]:
    """Turnaround percentiles per tier (of completed reads), most urgent tier first; tiers
    with neither completed reads nor open breaches left out."""
    by: dict[Priority, list[Read]] = defaultdict(list)
    for read in reads:
        by[read.priority].append(read)
    out = []
    for tier in Priority:
        group = by.get(tier)
        if not group:
            continue
        minutes = [r.minutes for r in group if r.done]
        out.append(
            TierTat(
                tier,
                len(minutes),
                {p: percentile(minutes, p) for p in PERCENTILES} if minutes else {},
                sum(r.met for r in group),
                sum(not r.done for r in group),
            )
        )
    return out


def per_facility(reads: Iterable[Read]) -> list[FacilitySla]:
    """SLA compliance per facility (ascending id), overall and per tier."""
    by: dict[int, list[Read]] = defaultdict(list)
    for read in reads:
        by[read.facility_id].append(read)
    out = []
    for facility_id in sorted(by):
        group = by[facility_id]
        tiers: dict[Priority, tuple[int, int]] = {}
        for tier in Priority:
            of_tier = [r for r in group if r.priority is tier]
            if of_tier:
                tiers[tier] = (sum(r.met for r in of_tier), len(of_tier))
        met = sum(r.met for r in group)
        out.append(FacilitySla(facility_id, len(group), met, tiers, sum(not r.done for r in group)))
    return out
