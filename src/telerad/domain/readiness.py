"""When a study may be read: complete, stable, and what is missing if it is not.

A study arrives as a stream of instances with no "last one" marker, so it is
readable only when (1) nothing has arrived for a while (stable), (2) the modality
said it finished, where it sends MPPS, and (3) nothing is visibly missing: no gap
in a series' instance numbers, and every series and instance the MPPS listed has
arrived. What is missing is said in words, for the person who looks at the
reconciliation queue and for the radiologist.

A study with problems is held (``INCOMPLETE``) until the problems go, a person
releases it, or nothing has changed for ``hold_limit``: then it is read with the
problems shown, because an unread stroke is worse than an incomplete one.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

#: The most missing numbers listed by name in one problem.
SHOW_MISSING = 8


class Readiness(enum.StrEnum):
    ARRIVING = "arriving"  # instances arrived within the stable time
    UNMATCHED = "unmatched"  # stable, but no order: waits for a person
    INCOMPLETE = "incomplete"  # stable, matched, something missing: held
    READY = "ready"  # on the reading worklist


@dataclass(frozen=True)
class SeriesFacts:
    uid: str
    modality: str = ""
    number: int | None = None
    #: Instance Number of each instance (None where absent).
    instance_numbers: tuple[int | None, ...] = ()
    #: How many are acquired images (:func:`~telerad.domain.modalities.is_acquired_image`);
    #: None: not known, every instance counts.
    acquired: int | None = None

    @property
    def acquired_count(self) -> int:
        return len(self.instance_numbers) if self.acquired is None else self.acquired

    @property
    def label(self) -> str:
        number = f"series {self.number}" if self.number is not None else "a series"
        return f"{number} ({self.modality})" if self.modality else number


@dataclass(frozen=True)
class StudyFacts:
    """What the archive knows of a study, as readiness and reconciliation need it."""

    uid: str
    facility_id: int
    patient_id: str
    accession_number: str
    study_date: str  # YYYYMMDD or ""
    modalities: frozenset[str]
    last_change: datetime
    num_instances: int = 0
    series: tuple[SeriesFacts, ...] = ()
    pk: int | None = None

    @property
    def acquired(self) -> int:
        """Acquired images among the instances: what the modality sent, not what reading made."""
        return sum(s.acquired_count for s in self.series)


@dataclass(frozen=True)
class PerformedStep:
    """A Modality Performed Procedure Step as the modality reported it."""

    status: str  # IN PROGRESS, COMPLETED, DISCONTINUED
    #: Performed series: Series Instance UID → number of referenced instances.
    series: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    state: Readiness
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadingState:
    """A study's reconciliation and readiness, as kept between passes."""

    study_pk: int
    study_uid: str
    facility_id: int
    state: Readiness
    last_change: datetime
    instances: int = 0
    #: Acquired images when last looked at: only more of these reopen a ready study.
    acquired: int = 0
    order_id: int | None = None
    matched_by: str = ""  # a MatchedBy value, "" when unmatched
    #: Why it waits or what is missing, in words.
    problems: tuple[str, ...] = ()
    ready_at: datetime | None = None
    #: Set when a person sent it to reading without an order: the tier they chose.
    released_as: str = ""
    patient_id: str = ""
    accession_number: str = ""
    modalities: str = ""
    study_date: str = ""
    study_description: str = ""


def missing_numbers(numbers: Sequence[int | None]) -> list[int]:
    """Instance numbers missing between the lowest and highest, when the run looks whole.

    Only a series numbered once each (no repeats, no blanks) with at least three
    instances is checked, and only when fewer than half the numbers in its range
    are missing: sparse numbering is a scheme, not a gap.
    """
    present = [n for n in numbers if n is not None]
    if len(present) < 3 or len(present) != len(numbers) or len(set(present)) != len(present):
        return []
    low, high = min(present), max(present)
    missing = sorted(set(range(low, high + 1)) - set(present))
    if len(missing) * 2 >= high - low + 1:
        return []
    return missing


def _numbers(values: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in values[:SHOW_MISSING])
    more = len(values) - SHOW_MISSING
    return shown + (f" and {more} more" if more > 0 else "")


def problems_of(study: StudyFacts, steps: Sequence[PerformedStep] = ()) -> list[str]:
    """Everything visibly missing from the study, in words."""
    problems: list[str] = []
    for series in study.series:
        if series.acquired == 0:  # reports, key objects, presentation states
            continue
        missing = missing_numbers(series.instance_numbers)
        if missing:
            noun = "instance" if len(missing) == 1 else "instances"
            problems.append(f"{series.label}: {noun} {_numbers(missing)} missing")
    if steps:
        finished = [s for s in steps if s.status in ("COMPLETED", "DISCONTINUED")]
        if len(finished) < len(steps):
            problems.append("the modality has not completed the procedure (MPPS in progress)")
        received = {s.uid: s for s in study.series}
        for step in finished:
            for uid, expected in step.series.items():
                got = received.get(uid)
                if got is None:
                    problems.append(
                        f"a series of {expected} instance(s) listed by MPPS not received"
                    )
                elif len(got.instance_numbers) < expected:
                    problems.append(
                        f"{got.label}: {len(got.instance_numbers)} of {expected} instances "
                        "listed by MPPS received"
                    )
    return problems


def assess(
    study: StudyFacts,
    steps: Sequence[PerformedStep],
    *,
    matched: bool,
    now: datetime,
    stable_for: timedelta,
    hold_limit: timedelta,
) -> Assessment:
    """Where the study stands now."""
    problems = tuple(problems_of(study, steps))
    quiet = now - study.last_change
    if quiet < stable_for:
        return Assessment(Readiness.ARRIVING, problems)
    if not matched:
        return Assessment(Readiness.UNMATCHED, problems)
    if problems and quiet < hold_limit:
        return Assessment(Readiness.INCOMPLETE, problems)
    return Assessment(Readiness.READY, problems)
