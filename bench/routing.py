"""Routing-decision benchmark: how long one decision takes on a full worklist.

``python -m bench.routing [--studies 10000] [--readers 500] [--decisions 2000] [--seed 1]``

Builds a reading network (facilities in several US states and time zones, a roster
with licences, privileges, subspecialties, modalities and weekly shifts in each
reader's own zone, some of them overseas for the night) and an open worklist of
``--studies`` studies pushed through the real :class:`~telerad.workflow.worklist.Worklist`.
Then it times ``--decisions`` routing decisions for new studies (the engine alone,
and the worklist's ``add``: decision plus bookkeeping) and, side by side, the
first-in-first-out baseline's decision: the next free reader takes the oldest
waiting study they are eligible for. The target is a median ≤ 5 ms per decision.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as clock

from telerad.simulation.fifo import fifo_next
from telerad.workflow.eligibility import eligible
from telerad.workflow.model import (
    Priority,
    Reader,
    ReadingStudy,
    ReadKind,
    WeeklyShift,
    patient_key,
)
from telerad.workflow.routing import Roster, assign
from telerad.workflow.rules import Rules, default_rules
from telerad.workflow.worklist import Worklist

TARGET_MS = 5.0
#: A weekday afternoon on the US east coast.
NOW = datetime(2025, 3, 4, 19, 0, tzinfo=UTC)

STATES = {  # state → the zone most of its facilities keep
    "CA": "America/Los_Angeles",
    "WA": "America/Los_Angeles",
    "AZ": "America/Phoenix",
    "CO": "America/Denver",
    "TX": "America/Chicago",
    "IL": "America/Chicago",
    "NY": "America/New_York",
    "FL": "America/New_York",
    "MA": "America/New_York",
    "GA": "America/New_York",
}
OVERSEAS = ("Australia/Sydney", "Europe/London", "Asia/Kolkata")  # US-licensed night readers
#: Modality: (share of studies, RVU range, share of readers who read it)
MODALITIES = {
    "CR": (0.35, (0.2, 0.4), 1.0),
    "CT": (0.30, (1.0, 2.0), 0.95),
    "MR": (0.15, (1.4, 2.5), 0.7),
    "US": (0.12, (0.6, 1.0), 0.5),
    "MG": (0.05, (0.7, 1.0), 0.15),
    "NM": (0.03, (0.8, 1.5), 0.1),
}
SUBSPECIALTIES = {  # subspecialty: share of studies that need it
    "neuro": 0.12,
    "msk": 0.08,
    "body": 0.08,
    "breast": 0.05,
    "peds": 0.03,
}
PRIORITY_MIX = {
    Priority.STROKE: 0.02,
    Priority.TRAUMA: 0.04,
    Priority.STAT: 0.14,
    Priority.URGENT: 0.20,
    Priority.ROUTINE: 0.60,
}


@dataclass(frozen=True)
class Site:
    id: int
    state: str

    @property
    def jurisdiction(self) -> str:
        return f"US-{self.state}"


def make_sites(rng: random.Random, count: int = 60) -> list[Site]:
    states = list(STATES)
    return [Site(i + 1, states[i % len(states)] if i < len(states) else rng.choice(states))
            for i in range(count)]  # fmt: skip


def make_roster(rng: random.Random, sites: list[Site], count: int) -> list[Reader]:
    states = list(STATES)
    readers = []
    for uid in range(1, count + 1):
        licensed = set(rng.sample(states, rng.randint(3, len(states))))
        privileged = frozenset(s.id for s in sites if s.state in licensed and rng.random() < 0.6)
        modalities = frozenset(m for m, (_, _, share) in MODALITIES.items() if rng.random() < share)
        subs = frozenset(rng.sample(sorted(SUBSPECIALTIES), rng.choice((0, 1, 1, 2))))
        if "MG" in modalities:
            subs |= {"breast"}
        overseas = rng.random() < 0.15
        zone = rng.choice(OVERSEAS) if overseas else STATES[rng.choice(sorted(licensed))]
        start = rng.choice((7, 8, 9, 10, 12, 14)) if not overseas else rng.choice((8, 9, 10))
        hours = rng.choice((8, 9, 10))
        days = frozenset(rng.sample(range(7), 5))
        shift = WeeklyShift(days, clock(start), clock((start + hours) % 24), zone)
        night = rng.random() < 0.1  # a US nighthawk as well
        shifts = (shift,) if not night else (shift, WeeklyShift(days, clock(22), clock(7), zone))
        readers.append(
            Reader(
                uid,
                name=f"Dr {uid}",
                licences=frozenset(f"US-{s}" for s in licensed),
                facility_ids=privileged,
                subspecialties=subs,
                modalities=modalities,
                shifts=shifts,
                signed_in=rng.random() < 0.9,
                rvu_per_hour=rng.uniform(6.0, 14.0),
                read_kinds=frozenset(ReadKind),
            )
        )
    return readers


def make_study(
    rng: random.Random, uid: str, sites: list[Site], rules: Rules, now: datetime
) -> ReadingStudy:
    site = rng.choice(sites)
    modality = rng.choices(list(MODALITIES), [v[0] for v in MODALITIES.values()])[0]
    low, high = MODALITIES[modality][1]
    priority = rng.choices(list(PRIORITY_MIX), list(PRIORITY_MIX.values()))[0]
    target = rules.target(site.id, priority)
    ready_at = now - target * rng.uniform(0.0, 0.6)
    subspecialty = ""
    if modality == "MG":
        subspecialty = "breast"
    elif rng.random() < 0.3:
        subspecialty = rng.choices(list(SUBSPECIALTIES), list(SUBSPECIALTIES.values()))[0]
    patient = patient_key(site.id, f"P{rng.randrange(40_000)}")
    return ReadingStudy(
        uid,
        facility_id=site.id,
        jurisdiction=site.jurisdiction,
        modality=modality,
        priority=priority,
        ready_at=ready_at,
        deadline=ready_at + target,
        rvu=round(rng.uniform(low, high), 2),
        subspecialty=subspecialty,
        patient_key=patient,
        read_kind=ReadKind.PRELIMINARY if rng.random() < 0.1 else ReadKind.FINAL,
        prior_readers=frozenset(rng.sample(range(1, 500), rng.choice((0, 0, 1, 2)))),
    )


def _percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=10)
    figures = {"median_ms": statistics.median(samples), "p90_ms": cuts[8], "max_ms": max(samples)}
    return {k: round(v, 4) for k, v in figures.items()}


def run(studies: int, readers: int, decisions: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    rules = default_rules()
    sites = make_sites(rng)
    roster = Roster(make_roster(rng, sites, readers))
    worklist = Worklist(rules, roster)

    started = time.perf_counter()
    backlog = sorted(
        (make_study(rng, f"open-{i}", sites, rules, NOW) for i in range(studies)),
        key=lambda s: s.ready_at,
    )
    for study in backlog:
        worklist.add(study, NOW)
    build_s = time.perf_counter() - started

    held, waiting_count = len(worklist.holds), len(worklist.pending)

    fresh = [make_study(rng, f"new-{i}", sites, rules, NOW) for i in range(decisions)]
    engine_ms, placed_ms, unplaced, wrong = [], [], 0, 0
    for study in fresh:
        t0 = time.perf_counter_ns()
        decision = assign(study, roster, worklist.workload, rules, NOW)
        elapsed = (time.perf_counter_ns() - t0) / 1e6
        engine_ms.append(elapsed)
        if decision.reader is None:
            unplaced += 1
        else:
            placed_ms.append(elapsed)
            wrong += not eligible(decision.reader, study, NOW)[0]

    add_ms = []
    for study in fresh:
        t0 = time.perf_counter_ns()
        worklist.add(study, NOW)
        add_ms.append((time.perf_counter_ns() - t0) / 1e6)

    # FIFO: an open worklist in arrival order; a free reader takes the oldest they may read.
    waiting = sorted(worklist.studies.values(), key=lambda s: s.ready_at)
    on_duty = [r for r in roster if r.signed_in and r.on_shift(NOW)]
    fifo_ms, fifo_none = [], 0
    for i in range(decisions):
        reader = on_duty[i % len(on_duty)]
        t0 = time.perf_counter_ns()
        taken = fifo_next(reader, waiting, NOW)
        fifo_ms.append((time.perf_counter_ns() - t0) / 1e6)
        fifo_none += taken is None

    return {
        "studies_open": studies,
        "readers": readers,
        "readers_on_duty": len(on_duty),
        "decisions": decisions,
        "seed": seed,
        "build_s": round(build_s, 2),
        "held_after_build": held,
        "waiting_after_build": waiting_count,
        "engine": _percentiles(engine_ms),
        "engine_placed": _percentiles(placed_ms),
        "worklist_add": _percentiles(add_ms),
        "fifo": _percentiles(fifo_ms),
        "no_reader_share": unplaced / decisions,
        "fifo_no_study_share": fifo_none / decisions,
        "ineligible_assignments": wrong,
        "target_median_ms": TARGET_MS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--studies", type=int, default=10_000, help="open studies on the worklist")
    parser.add_argument("--readers", type=int, default=500, help="radiologists on the roster")
    parser.add_argument("--decisions", type=int, default=2_000, help="decisions timed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.studies, args.readers, args.decisions, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['studies_open']} open studies, {result['readers']} readers "
            f"({result['readers_on_duty']} signed in and on shift at {NOW:%a %H:%M} UTC), "
            f"{result['decisions']} decisions, seed {result['seed']}; "
            f"worklist built in {result['build_s']} s: {result['held_after_build']} held by "
            f"readers, {result['waiting_after_build']} waiting (queues at their caps)"
        )
        print(f"{'':34}{'median':>10}{'p90':>10}{'max':>10}")
        for key, label in (
            ("engine", "routing decision (engine)"),
            ("engine_placed", "  of which a reader was chosen"),
            ("worklist_add", "worklist add (decision + state)"),
            ("fifo", "FIFO baseline (oldest eligible)"),
        ):
            f = result[key]
            assert isinstance(f, dict)
            print(f"{label:34}{f['median_ms']:>8.3f}ms{f['p90_ms']:>8.3f}ms{f['max_ms']:>8.2f}ms")
        engine = result["engine"]
        assert isinstance(engine, dict)
        verdict = "PASS" if engine["median_ms"] <= TARGET_MS else "FAIL"
        print(
            f"target: median ≤ {TARGET_MS:g} ms per decision → {verdict} "
            f"({engine['median_ms']:.3f} ms); no reader for {result['no_reader_share']:.1%} of "
            f"new studies; ineligible assignments: {result['ineligible_assignments']}"
        )
    engine_figures = result["engine"]
    assert isinstance(engine_figures, dict)
    return (
        0
        if engine_figures["median_ms"] <= TARGET_MS and not result["ineligible_assignments"]
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
