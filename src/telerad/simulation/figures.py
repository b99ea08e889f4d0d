"""What a simulated day's figures are: breaches, turnaround percentiles, utilisation, queues.

* **SLA breach rate**: the share of studies read after their deadline, with studies
  never read by the end of the run counted as breaches.
* **Turnaround (TAT)**: from ready to read done, in minutes, over the studies read;
  percentiles interpolate linearly between order statistics.
* **Utilisation**: per reader, time reading over time signed in, both within the day.
* **Queue**: studies ready and not yet opened, sampled through the run.
* **Cover**: whether the roster could have read a study in time at all — a reader
  qualified for it on shift before its deadline (``on_duty``), qualified readers but
  none on shift in time (``off_duty``), or nobody qualified (``nobody_qualified``).
  Breaches and unread studies are counted by cover, so that what routing could
  change (``on_duty``) is told apart from what only the roster can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from telerad.simulation.replay import Cover, Outcome, Run
from telerad.workflow.model import Priority

PERCENTILES = (50, 90, 99)
#: Issue 4's targets on the default day.
TARGET_BREACH_RATIO = 0.5
TARGET_STROKE_P90_MINUTES = 20.0
#: Issue 9's: no tier worse than FIFO (breach rate and p90), and these.
TARGET_BREACH_RATIO_STRICT = 0.2
TARGET_STROKE_BREACH_RATE = 0.01


def percentile(ordered: list[float], q: float) -> float | None:
    """The ``q``-th percentile of ascending ``ordered`` (linear interpolation), or None."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class TierFigures:
    studies: int
    read: int
    breached: int
    #: Minutes at each of :data:`PERCENTILES` (None when nothing was read).
    tat: dict[int, float | None]
    mean_tat: float | None
    #: Studies, and breaches, by what the roster allowed (every cover is a key).
    studies_by_cover: dict[Cover, int]
    breached_by_cover: dict[Cover, int]

    @property
    def breach_rate(self) -> float:
        return self.breached / self.studies if self.studies else 0.0

    @property
    def on_duty_breach_rate(self) -> float | None:
        """Breaches among the studies a qualified reader was on shift for in time."""
        studies = self.studies_by_cover[Cover.ON_DUTY]
        return self.breached_by_cover[Cover.ON_DUTY] / studies if studies else None


@dataclass(frozen=True)
class Figures:
    policy: str
    studies: int
    read: int
    breached: int
    tiers: dict[Priority, TierFigures]
    #: Turnaround minutes of the studies read, ascending, per tier.
    tats: dict[Priority, list[float]]
    utilisation: dict[int, float]
    queue: list[tuple[float, int]]
    assignments: int
    reassignments: int
    abandoned: int
    supervisor_alerts: int
    ended_hours: float
    #: Studies never read, by cover.
    unread_by_cover: dict[Cover, int]
    #: Studies nobody on the roster may read, by what they need.
    unreadable: dict[str, int]

    @property
    def breach_rate(self) -> float:
        return self.breached / self.studies if self.studies else 0.0

    @property
    def mean_utilisation(self) -> float:
        values = list(self.utilisation.values())
        return sum(values) / len(values) if values else 0.0

    @property
    def max_queue(self) -> int:
        return max((n for _, n in self.queue), default=0)


def _tats(outcomes: list[Outcome]) -> list[float]:
    return sorted(t for o in outcomes if (t := o.tat_minutes) is not None)


def _by_cover(outcomes: list[Outcome]) -> dict[Cover, int]:
    counts = dict.fromkeys(Cover, 0)
    for outcome in outcomes:
        counts[outcome.cover] += 1
    return counts


def _tier(outcomes: list[Outcome], tats: list[float]) -> TierFigures:
    return TierFigures(
        studies=len(outcomes),
        read=len(tats),
        breached=sum(o.breached for o in outcomes),
        tat={q: percentile(tats, q) for q in PERCENTILES},
        mean_tat=sum(tats) / len(tats) if tats else None,
        studies_by_cover=_by_cover(outcomes),
        breached_by_cover=_by_cover([o for o in outcomes if o.breached]),
    )


def figures(run: Run) -> Figures:
    by_tier: dict[Priority, list[Outcome]] = {p: [] for p in Priority}
    for outcome in run.outcomes:
        by_tier[outcome.priority].append(outcome)
    tats = {p: _tats(outs) for p, outs in by_tier.items()}
    utilisation = {
        reader: min(run.busy.get(reader, 0.0) / seconds, 1.0)
        for reader, seconds in sorted(run.on_duty.items())
        if seconds > 0
    }
    return Figures(
        policy=str(run.policy),
        studies=len(run.outcomes),
        read=sum(o.done is not None for o in run.outcomes),
        breached=sum(o.breached for o in run.outcomes),
        tiers={p: _tier(outs, tats[p]) for p, outs in by_tier.items()},
        tats=tats,
        utilisation=utilisation,
        queue=list(run.queue),
        assignments=run.assignments,
        reassignments=run.reassignments,
        abandoned=run.abandoned,
        supervisor_alerts=run.supervisor_alerts,
        ended_hours=run.ended / 3600,
        unread_by_cover=_by_cover([o for o in run.outcomes if o.done is None]),
        unreadable=dict(sorted(run.unreadable.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _per_tier(f: Figures, what: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for tier, t in f.tiers.items():
        if what == "breach":
            out[tier.value] = round(t.breach_rate, 4)
        elif what == "on_duty_breach":
            out[tier.value] = _round(t.on_duty_breach_rate, 4)
        else:
            out[tier.value] = _round(t.tat[int(what)])
    return out


def _breaches(f: Figures) -> dict[str, dict[str, int]]:
    return {
        tier.value: {cover.value: n for cover, n in t.breached_by_cover.items()}
        for tier, t in f.tiers.items()
    }


def _on_duty_rate(f: Figures) -> float | None:
    studies = sum(t.studies_by_cover[Cover.ON_DUTY] for t in f.tiers.values())
    breached = sum(t.breached_by_cover[Cover.ON_DUTY] for t in f.tiers.values())
    return round(breached / studies, 4) if studies else None


def not_worse(engine: Figures, fifo: Figures) -> dict[str, dict[str, bool]]:
    """Per tier: is the engine's breach rate, and its p90, no worse than FIFO's?"""
    out = {}
    for tier, e in engine.tiers.items():
        f = fifo.tiers[tier]
        e90, f90 = e.tat[90], f.tat[90]
        out[tier.value] = {
            "breach": e.breach_rate <= f.breach_rate,
            "p90": e90 is None or (f90 is not None and e90 <= f90),
        }
    return out


def report(engine: Figures, fifo: Figures) -> dict[str, object]:
    """The side-by-side figures as one JSON-ready object (the baseline is FIFO)."""
    ratio = engine.breach_rate / fifo.breach_rate if fifo.breach_rate else None
    stroke_p90 = engine.tiers[Priority.STROKE].tat[90]
    out: dict[str, object] = {
        "sla_breach_rate": _per_tier(engine, "breach"),
        "baseline_sla_breach_rate": _per_tier(fifo, "breach"),
    }
    for q in PERCENTILES:
        out[f"p{q}_tat_minutes"] = _per_tier(engine, str(q))
        out[f"baseline_p{q}_tat_minutes"] = _per_tier(fifo, str(q))
    stroke_rate = engine.tiers[Priority.STROKE].breach_rate
    out |= {
        "breaches": _breaches(engine),
        "baseline_breaches": _breaches(fifo),
        "on_duty_sla_breach_rate": _per_tier(engine, "on_duty_breach"),
        "baseline_on_duty_sla_breach_rate": _per_tier(fifo, "on_duty_breach"),
        "overall_on_duty_sla_breach_rate": _on_duty_rate(engine),
        "baseline_overall_on_duty_sla_breach_rate": _on_duty_rate(fifo),
    }
    out |= {
        "overall_sla_breach_rate": round(engine.breach_rate, 4),
        "baseline_overall_sla_breach_rate": round(fifo.breach_rate, 4),
        "breach_rate_ratio": _round(ratio, 3),
        "sla_compliance": round(1 - engine.breach_rate, 4),
        "baseline_sla_compliance": round(1 - fifo.breach_rate, 4),
        "mean_stroke_tat_minutes": _round(engine.tiers[Priority.STROKE].mean_tat),
        "baseline_mean_stroke_tat_minutes": _round(fifo.tiers[Priority.STROKE].mean_tat),
        "studies_per_tier": {p.value: t.studies for p, t in engine.tiers.items()},
        "unread": engine.studies - engine.read,
        "baseline_unread": fifo.studies - fifo.read,
        "unread_reasons": {c.value: n for c, n in engine.unread_by_cover.items()},
        "baseline_unread_reasons": {c.value: n for c, n in fifo.unread_by_cover.items()},
        "unreadable": engine.unreadable,
        "mean_utilisation": round(engine.mean_utilisation, 4),
        "baseline_mean_utilisation": round(fifo.mean_utilisation, 4),
        "utilisation": {str(r): round(u, 4) for r, u in engine.utilisation.items()},
        "baseline_utilisation": {str(r): round(u, 4) for r, u in fifo.utilisation.items()},
        "max_queue": engine.max_queue,
        "baseline_max_queue": fifo.max_queue,
        "assignments": engine.assignments,
        "reassignments": engine.reassignments,
        "abandoned_reads": engine.abandoned,
        "supervisor_alerts": engine.supervisor_alerts,
        "ineligible_assignments": 0,  # the replay stops on the first one
        "hours_simulated": round(engine.ended_hours, 2),
        "baseline_hours_simulated": round(fifo.ended_hours, 2),
        "targets": {
            "breach_rate_ratio_max": TARGET_BREACH_RATIO,
            "stroke_p90_tat_minutes_max": TARGET_STROKE_P90_MINUTES,
            "breach_rate_ratio_met": engine.breach_rate <= TARGET_BREACH_RATIO * fifo.breach_rate,
            "stroke_p90_met": stroke_p90 is not None and stroke_p90 <= TARGET_STROKE_P90_MINUTES,
            "strict_breach_rate_ratio_max": TARGET_BREACH_RATIO_STRICT,
            "strict_breach_rate_ratio_met": engine.breach_rate
            <= TARGET_BREACH_RATIO_STRICT * fifo.breach_rate,
            "stroke_breach_rate_max": TARGET_STROKE_BREACH_RATE,
            "stroke_breach_rate_met": stroke_rate <= TARGET_STROKE_BREACH_RATE,
            "not_worse_than_fifo": not_worse(engine, fifo),
        },
    }
    return out
