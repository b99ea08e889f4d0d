"""Turnaround (TAT) and SLA compliance from completed reads: pure arithmetic.

A read's turnaround runs from the moment the study was ready to read to the
moment it was marked read; it met its SLA when it was read by its deadline
(the contract's target for its tier, see docs/routing.md).
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
    completed_at: datetime

    @property
    def minutes(self) -> float:
        return (self.completed_at - self.ready_at).total_seconds() / 60

    @property
    def met(self) -> bool:
        return self.completed_at <= self.deadline


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
    count: int
    minutes: dict[int, float]  # percentile → minutes
    met: int

    @property
    def compliance(self) -> float:
        return self.met / self.count


@dataclass(frozen=True)
class FacilitySla:
    facility_id: int
    count: int
    met: int
    by_tier: dict[Priority, tuple[int, int]]  # tier → (met, count)

    @property
    def compliance(self) -> float:
        return self.met / self.count


def per_tier(reads: Iterable[Read]) -> list[TierTat]:
    """Turnaround percentiles per tier, most urgent tier first; tiers without reads left out."""
    by: dict[Priority, list[Read]] = defaultdict(list)
    for read in reads:
        by[read.priority].append(read)
    out = []
    for tier in Priority:
        group = by.get(tier)
        if not group:
            continue
        minutes = [r.minutes for r in group]
        out.append(
            TierTat(
                tier,
                len(group),
                {p: percentile(minutes, p) for p in PERCENTILES},
                sum(r.met for r in group),
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
        out.append(FacilitySla(facility_id, len(group), sum(r.met for r in group), tiers))
    return out
