"""A simulated reading day: facilities, their arrivals and the roster, from one seed.

Pure and deterministic: :func:`generate` draws everything from ``random.Random(seed)``,
so a seed names a day. The model (docs/routing.md, "Simulation"):

* facilities in US states, Great Britain, Australia and India, each in its own time
  zone, each with a contract (standard, premium or economy turnaround targets);
* arrivals over one UTC day, following a diurnal curve in each facility's local
  time — outpatient (routine) work in office hours, emergency work flatter and
  heavier in the evening; a priority mix with a few per cent stroke and trauma;
  modality, body part and RVU per exam; subspecialty needs (neuro for most brain
  work, msk, body, breast, peds); trauma and some urgent visits bring several
  studies of one patient at once, and some studies carry prior readers;
* a follow-the-sun roster: US day, evening and night shifts, Australian and British
  readers covering the other hemisphere's night, Indian readers day and night;
  licences, privileges, modalities, subspecialties and reading speeds;
* staffed for the day it reads (:func:`staff_roster`, ``simulation/staffing.py``): every
  kind of study the arrivals bring has a qualified reader on the roster, and every kind
  of stroke and trauma study a facility sends has one on shift at every minute.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from telerad.simulation.staffing import Need, Staffing, staff
from telerad.workflow.model import (
    Contract,
    Priority,
    Reader,
    ReadingStudy,
    ReadKind,
    WeeklyShift,
    patient_key,
)
from telerad.workflow.rules import Rules

#: The default day: a Tuesday, midnight UTC.
DAY = datetime(2025, 3, 4, tzinfo=UTC)
DEFAULT_STUDIES = 20_000
DEFAULT_READERS = 120
DEFAULT_SEED = 1


@dataclass(frozen=True)
class Facility:
    id: int
    name: str
    jurisdiction: str
    tz: str
    #: Share of the network's volume.
    weight: float
    contract: Contract


@dataclass(frozen=True)
class Arrival:
    """A study becoming ready to read, as a trace holds it (no deadline rules applied yet)."""

    uid: str
    facility_id: int
    jurisdiction: str
    ready_at: datetime
    modality: str
    priority: Priority
    rvu: float
    body_part: str = ""
    subspecialty: str = ""
    patient_id: str = ""
    read_kind: ReadKind = ReadKind.FINAL
    prior_readers: frozenset[int] = frozenset()
    #: ``None``: the rules' target for the facility and tier.
    deadline: datetime | None = None
    #: This study's reading time against the usual for its RVU (case difficulty, noise).
    effort: float = 1.0

    def study(self, rules: Rules) -> ReadingStudy:
        deadline = self.deadline or rules.deadline(self.facility_id, self.priority, self.ready_at)
        return ReadingStudy(
            self.uid,
            facility_id=self.facility_id,
            jurisdiction=self.jurisdiction,
            modality=self.modality,
            priority=self.priority,
            ready_at=self.ready_at,
            deadline=deadline,
            rvu=self.rvu,
            body_part=self.body_part,
            subspecialty=self.subspecialty,
            patient_key=patient_key(self.facility_id, self.patient_id) if self.patient_id else "",
            read_kind=self.read_kind,
            prior_readers=self.prior_readers,
        )

    @property
    def need(self) -> Need:
        """What reading it takes: who is qualified for it (the engine's qualification key)."""
        return Need(
            self.facility_id, self.jurisdiction, self.modality, self.subspecialty, self.read_kind
        )


@dataclass(frozen=True)
class Scenario:
    """What a simulation replays: arrivals (sorted by ready time) and the roster."""

    arrivals: tuple[Arrival, ...]
    readers: tuple[Reader, ...]
    #: Facility contracts; the rules file's own contracts take precedence.
    contracts: dict[int, Contract] = field(default_factory=dict)
    facilities: tuple[Facility, ...] = ()
    seed: int | None = None
    #: When the simulated day starts; ``None``: midnight UTC before the first arrival.
    day: datetime | None = None
    #: What staffing the generated roster changed (None for a trace read from CSV).
    staffing: Staffing | None = None

    @property
    def start(self) -> datetime:
        if self.day is not None:
            return self.day
        if not self.arrivals:
            return DAY
        first = self.arrivals[0].ready_at.astimezone(UTC)
        return first.replace(hour=0, minute=0, second=0, microsecond=0)

    def rules(self, base: Rules) -> Rules:
        """``base`` with the scenario's contracts under the file's own."""
        return replace(base, contracts={**self.contracts, **base.contracts})


# -- the network ---------------------------------------------------------------------

#: Jurisdiction → (time zone, share of the volume, facilities).
JURISDICTIONS: dict[str, tuple[str, float, int]] = {
    "US-NY": ("America/New_York", 0.09, 4),
    "US-FL": ("America/New_York", 0.08, 4),
    "US-MA": ("America/New_York", 0.05, 2),
    "US-GA": ("America/New_York", 0.05, 2),
    "US-TX": ("America/Chicago", 0.09, 4),
    "US-IL": ("America/Chicago", 0.06, 3),
    "US-CO": ("America/Denver", 0.04, 2),
    "US-AZ": ("America/Phoenix", 0.04, 2),
    "US-CA": ("America/Los_Angeles", 0.10, 4),
    "US-WA": ("America/Los_Angeles", 0.04, 2),
    "GB": ("Europe/London", 0.13, 5),
    "AU-NSW": ("Australia/Sydney", 0.06, 3),
    "AU-VIC": ("Australia/Melbourne", 0.04, 2),
    "IN-MH": ("Asia/Kolkata", 0.05, 2),
    "IN-KA": ("Asia/Kolkata", 0.04, 2),
}
US = tuple(j for j in JURISDICTIONS if j.startswith("US-"))
AU = ("AU-NSW", "AU-VIC")
IN = ("IN-MH", "IN-KA")

#: Contract templates: minutes per tier that differ from the rules' targets.
CONTRACTS: dict[str, tuple[float, dict[Priority, int]]] = {
    "standard": (0.6, {}),
    "premium": (0.25, {Priority.STAT: 45, Priority.URGENT: 180, Priority.ROUTINE: 720}),
    "economy": (0.15, {Priority.URGENT: 360, Priority.ROUTINE: 2880}),
}


def make_facilities(rng: random.Random) -> list[Facility]:
    facilities: list[Facility] = []
    kinds = list(CONTRACTS)
    for jurisdiction, (tz, share, count) in JURISDICTIONS.items():
        sizes = [rng.uniform(0.5, 1.5) for _ in range(count)]
        for size in sizes:
            fid = len(facilities) + 1
            kind = rng.choices(kinds, [CONTRACTS[k][0] for k in kinds])[0]
            facilities.append(
                Facility(
                    id=fid,
                    name=f"{jurisdiction} {kind} facility {fid}",
                    jurisdiction=jurisdiction,
                    tz=tz,
                    weight=share * size / sum(sizes),
                    contract=Contract(fid, dict(CONTRACTS[kind][1])),
                )
            )
    return facilities


# -- arrivals ------------------------------------------------------------------------

#: Relative arrival rate per local hour: outpatient (routine) and emergency work.
OUTPATIENT = (
    0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.6, 2.0, 2.1, 2.0,
    1.7, 1.8, 2.0, 1.9, 1.6, 1.2, 0.8, 0.5, 0.35, 0.25, 0.2, 0.15,
)  # fmt: skip
EMERGENCY = (
    0.6, 0.5, 0.4, 0.35, 0.35, 0.4, 0.5, 0.7, 0.9, 1.1, 1.2, 1.25,
    1.3, 1.3, 1.3, 1.35, 1.4, 1.45, 1.45, 1.4, 1.3, 1.1, 0.9, 0.75,
)  # fmt: skip

PRIORITY_MIX = {
    Priority.STROKE: 0.025,
    Priority.TRAUMA: 0.035,
    Priority.STAT: 0.22,
    Priority.URGENT: 0.22,
    Priority.ROUTINE: 0.50,
}

#: (modality, body part) → (RVU, {subspecialty: share of these exams that need it}).
EXAMS: dict[tuple[str, str], tuple[float, dict[str, float]]] = {
    ("CT", "HEAD"): (0.85, {"neuro": 0.15}),
    ("CT", "HEADNECK"): (1.75, {"neuro": 0.6}),  # CT angiography
    ("CT", "SPINE"): (1.2, {"neuro": 0.2, "msk": 0.2}),
    ("CT", "CHEST"): (1.2, {"body": 0.2}),
    ("CT", "ABDOMENPELVIS"): (1.75, {"body": 0.35}),
    ("CT", "EXTREMITY"): (1.0, {"msk": 0.5}),
    ("MR", "BRAIN"): (1.5, {"neuro": 0.85}),
    ("MR", "SPINE"): (1.6, {"neuro": 0.5, "msk": 0.3}),
    ("MR", "KNEE"): (1.35, {"msk": 0.8}),
    ("MR", "SHOULDER"): (1.35, {"msk": 0.8}),
    ("MR", "ABDOMEN"): (2.0, {"body": 0.8}),
    ("MR", "BREAST"): (1.8, {"breast": 1.0}),
    ("MR", "PROSTATE"): (2.2, {"body": 0.9}),
    ("CR", "CHEST"): (0.22, {}),
    ("CR", "EXTREMITY"): (0.2, {"msk": 0.05}),
    ("DX", "CHEST"): (0.22, {}),
    ("DX", "SPINE"): (0.25, {"msk": 0.05}),
    ("DX", "ABDOMEN"): (0.25, {}),
    ("DX", "EXTREMITY"): (0.2, {"msk": 0.05}),
    ("US", "ABDOMEN"): (0.8, {"body": 0.1}),
    ("US", "PELVIS"): (0.7, {}),
    ("US", "BREAST"): (0.7, {"breast": 1.0}),
    ("US", "EXTREMITY"): (0.5, {}),  # venous Doppler
    ("NM", "BONE"): (0.9, {}),
    ("NM", "HEART"): (1.4, {}),
    ("NM", "THYROID"): (0.7, {}),
    ("PT", "WHOLEBODY"): (2.0, {}),
}

#: Exam mix per tier: (modality, body part) → weight.
EXAM_MIX: dict[Priority, dict[tuple[str, str], float]] = {
    Priority.STROKE: {("CT", "HEAD"): 0.55, ("CT", "HEADNECK"): 0.3, ("MR", "BRAIN"): 0.15},
    Priority.TRAUMA: {
        ("CT", "HEAD"): 0.3, ("CT", "SPINE"): 0.2, ("CT", "CHEST"): 0.1,
        ("CT", "ABDOMENPELVIS"): 0.2, ("DX", "CHEST"): 0.1, ("DX", "EXTREMITY"): 0.1,
    },
    Priority.STAT: {
        ("CT", "HEAD"): 0.18, ("CT", "CHEST"): 0.1, ("CT", "ABDOMENPELVIS"): 0.17,
        ("CR", "CHEST"): 0.2, ("DX", "CHEST"): 0.1, ("DX", "ABDOMEN"): 0.05,
        ("US", "ABDOMEN"): 0.08, ("US", "PELVIS"): 0.05, ("US", "EXTREMITY"): 0.04,
        ("MR", "BRAIN"): 0.03,
    },
    Priority.URGENT: {
        ("CT", "HEAD"): 0.1, ("CT", "CHEST"): 0.08, ("CT", "ABDOMENPELVIS"): 0.12,
        ("CT", "SPINE"): 0.04, ("CR", "CHEST"): 0.15, ("DX", "EXTREMITY"): 0.1,
        ("DX", "SPINE"): 0.03, ("US", "ABDOMEN"): 0.1, ("US", "EXTREMITY"): 0.06,
        ("MR", "BRAIN"): 0.07, ("MR", "SPINE"): 0.06, ("NM", "HEART"): 0.02,
        ("US", "PELVIS"): 0.04, ("CT", "HEADNECK"): 0.03,
    },
    Priority.ROUTINE: {
        ("CR", "CHEST"): 0.14, ("CR", "EXTREMITY"): 0.06, ("DX", "CHEST"): 0.05,
        ("DX", "EXTREMITY"): 0.06, ("DX", "SPINE"): 0.04, ("CT", "HEAD"): 0.04,
        ("CT", "CHEST"): 0.07, ("CT", "ABDOMENPELVIS"): 0.07, ("CT", "EXTREMITY"): 0.02,
        ("MR", "BRAIN"): 0.05, ("MR", "SPINE"): 0.05, ("MR", "KNEE"): 0.04,
        ("MR", "SHOULDER"): 0.02, ("MR", "ABDOMEN"): 0.02, ("MR", "BREAST"): 0.02,
        ("MR", "PROSTATE"): 0.01, ("US", "ABDOMEN"): 0.06, ("US", "PELVIS"): 0.04,
        ("US", "BREAST"): 0.03, ("US", "EXTREMITY"): 0.02, ("NM", "BONE"): 0.02,
        ("NM", "HEART"): 0.01, ("NM", "THYROID"): 0.01, ("PT", "WHOLEBODY"): 0.03,
    },
}  # fmt: skip

#: Share of patients who are children: their studies need a paediatric reader.
PEDS_SHARE = 0.04
#: Share of routine and urgent studies whose patient was read before by someone on the roster.
PRIORS_SHARE = 0.25
#: Companion studies of one visit (same patient, minutes apart): trauma, then others.
COMPANIONS = {Priority.TRAUMA: 0.5, Priority.STAT: 0.1, Priority.URGENT: 0.08}
PRELIM_SHARE = 0.08
#: Spread of reading times around rvu / rvu_per_hour (log-normal, mean 1).
EFFORT_SIGMA = 0.3


def _sample_time(
    rng: random.Random, start: datetime, zone: ZoneInfo, curve: Sequence[float]
) -> datetime:
    """A time in the day from ``start``, drawn by rejection against ``curve`` (local hours)."""
    top = max(curve)
    while True:
        at = start + timedelta(seconds=rng.randrange(86_400))
        if rng.random() * top < curve[at.astimezone(zone).hour]:
            return at


def _exam(rng: random.Random, priority: Priority) -> tuple[str, str]:
    mix = EXAM_MIX[priority]
    return rng.choices(list(mix), list(mix.values()))[0]


def _subspecialty(rng: random.Random, exam: tuple[str, str], child: bool) -> str:
    if child:
        return "peds"
    for name, share in EXAMS[exam][1].items():
        if rng.random() < share:
            return name
    return ""


def make_arrivals(
    rng: random.Random,
    facilities: Sequence[Facility],
    readers: Sequence[Reader],
    count: int,
    start: datetime = DAY,
) -> list[Arrival]:
    """``count`` studies over the day from ``start``, sorted by ready time."""
    weights = [f.weight for f in facilities]
    zones = {f.id: ZoneInfo(f.tz) for f in facilities}
    tiers, tier_weights = list(PRIORITY_MIX), list(PRIORITY_MIX.values())
    privileged: dict[int, list[int]] = {f.id: [] for f in facilities}
    for reader in readers:
        for fid in reader.facility_ids:
            privileged.setdefault(fid, []).append(reader.user_id)
    patients: dict[int, int] = {f.id: 0 for f in facilities}
    arrivals: list[Arrival] = []
    while len(arrivals) < count:
        facility = rng.choices(facilities, weights)[0]
        priority = rng.choices(tiers, tier_weights)[0]
        curve = OUTPATIENT if priority is Priority.ROUTINE else EMERGENCY
        at = _sample_time(rng, start, zones[facility.id], curve)
        patients[facility.id] += 1
        patient = f"P{facility.id:03d}-{patients[facility.id]:06d}"
        child = rng.random() < PEDS_SHARE
        visit = 1 + (rng.random() < COMPANIONS.get(priority, 0.0)) * rng.choice((1, 1, 2))
        for n in range(visit):
            if len(arrivals) >= count:
                break
            exam = _exam(rng, priority)
            priors: frozenset[int] = frozenset()
            pool = privileged.get(facility.id, [])
            if (
                pool
                and priority in (Priority.ROUTINE, Priority.URGENT)
                and rng.random() < PRIORS_SHARE
            ):
                priors = frozenset(rng.sample(pool, min(len(pool), rng.choice((1, 1, 2)))))
            rvu = round(EXAMS[exam][0] * rng.uniform(0.9, 1.1), 2)
            arrivals.append(
                Arrival(
                    uid=f"SIM{len(arrivals) + 1:06d}",
                    facility_id=facility.id,
                    jurisdiction=facility.jurisdiction,
                    ready_at=at + timedelta(seconds=rng.randrange(0, 300) if n else 0),
                    modality=exam[0],
                    priority=priority,
                    rvu=rvu,
                    body_part=exam[1],
                    subspecialty=_subspecialty(rng, exam, child),
                    patient_id=patient,
                    read_kind=ReadKind.PRELIMINARY
                    if rng.random() < PRELIM_SHARE
                    else ReadKind.FINAL,
                    prior_readers=priors,
                    effort=round(math.exp(rng.gauss(-(EFFORT_SIGMA**2) / 2, EFFORT_SIGMA)), 3),
                )
            )
    arrivals.sort(key=lambda a: (a.ready_at, a.uid))
    return arrivals


# -- the roster ----------------------------------------------------------------------

#: Home zone → (share of readers, {licence group: chance of holding it}, shifts as
#: (local start hour, hours, share of the region's readers)). A reader with US licences
#: holds each state's with :data:`US_STATE_SHARE` (and always their home state's).
Shifts = tuple[tuple[int, int, float], ...]
REGIONS: dict[str, tuple[float, dict[str, float], Shifts]] = {
    "America/New_York": (
        0.24, {"US": 1.0},
        ((7, 10, 0.5), (10, 10, 0.25), (14, 10, 0.15), (22, 10, 0.1)),
    ),
    "America/Chicago": (
        0.15, {"US": 1.0},
        ((7, 10, 0.5), (10, 10, 0.25), (14, 10, 0.15), (22, 10, 0.1)),
    ),
    "America/Denver": (0.06, {"US": 1.0}, ((8, 10, 0.6), (14, 10, 0.3), (22, 10, 0.1))),
    "America/Los_Angeles": (
        0.13, {"US": 1.0},
        ((7, 10, 0.5), (10, 10, 0.25), (14, 10, 0.15), (22, 10, 0.1)),
    ),
    # Australians read the US and British nights in their day, and their own country.
    "Australia/Sydney": (
        0.12, {"AU": 1.0, "US": 0.5, "GB": 0.4},
        ((8, 10, 0.5), (11, 10, 0.3), (17, 10, 0.2)),
    ),
    # The British read their own country and the Australian night in their day.
    "Europe/London": (
        0.16, {"GB": 1.0, "AU": 0.45, "US": 0.2},
        ((8, 10, 0.5), (12, 10, 0.3), (21, 10, 0.2)),
    ),
    # Indian readers: their own country, British work, and US days in their evening;
    # a night shift (22:00-08:00) so that Indian facilities have readers at 04:00-08:00.
    "Asia/Kolkata": (
        0.14, {"IN": 1.0, "GB": 0.5, "US": 0.3},
        ((8, 10, 0.25), (13, 10, 0.3), (18, 10, 0.25), (22, 10, 0.2)),
    ),
}  # fmt: skip

SUBSPECIALTY_SHARE = {"neuro": 0.35, "msk": 0.25, "body": 0.3, "breast": 0.12, "peds": 0.12}
MODALITY_SHARE = {"CR": 1.0, "DX": 1.0, "CT": 0.97, "US": 0.8, "MR": 0.75, "NM": 0.25, "PT": 0.2}
PRIVILEGE_SHARE = 0.75
US_STATE_SHARE = 0.7
#: RVU per hour, uniform between these.
SPEED = (11.0, 21.0)
FINAL_ONLY_SHARE = 0.1


def _licences(rng: random.Random, chances: dict[str, float], home_state: str) -> set[str]:
    held: set[str] = set()
    for group, chance in chances.items():
        if rng.random() >= chance:
            continue
        if group == "US":
            held |= {j for j in US if rng.random() < US_STATE_SHARE}
            held |= {home_state} if home_state else set()
        else:
            held |= set(AU if group == "AU" else IN if group == "IN" else (group,))
    return held


def make_readers(rng: random.Random, facilities: Sequence[Facility], count: int) -> list[Reader]:
    zones = list(REGIONS)
    shares = [REGIONS[z][0] for z in zones]
    # Home zones in proportion, so that every region has its readers even in a small roster.
    homes = [z for z, share in zip(zones, shares, strict=True) for _ in range(round(share * count))]
    homes = (homes + rng.choices(zones, shares, k=count))[:count]
    rng.shuffle(homes)
    readers = []
    for uid, zone in enumerate(homes, start=1):
        _, chances, shifts = REGIONS[zone]
        home_state = ""
        if zone.startswith("America/"):
            home_state = rng.choice([j for j in US if JURISDICTIONS[j][0] == zone] or list(US))
        licences = _licences(rng, chances, home_state)
        privileges = frozenset(
            f.id
            for f in facilities
            if f.jurisdiction in licences
            and (f.jurisdiction == home_state or rng.random() < PRIVILEGE_SHARE)
        )
        modalities = frozenset(m for m, share in MODALITY_SHARE.items() if rng.random() < share)
        subs = frozenset(s for s, share in SUBSPECIALTY_SHARE.items() if rng.random() < share)
        begin, hours, _ = rng.choices(shifts, [s[2] for s in shifts])[0]
        shift = WeeklyShift(frozenset(range(7)), clock(begin), clock((begin + hours) % 24), zone)
        readers.append(
            Reader(
                uid,
                name=f"Reader {uid}",
                licences=frozenset(licences),
                facility_ids=privileges,
                subspecialties=subs,
                modalities=modalities,
                shifts=(shift,),
                signed_in=False,
                rvu_per_hour=round(rng.uniform(*SPEED), 1),
                read_kinds=frozenset({ReadKind.FINAL})
                if rng.random() < FINAL_ONLY_SHARE
                else frozenset(ReadKind),
            )
        )
    return _cover(rng, facilities, readers)


def _cover(
    rng: random.Random, facilities: Sequence[Facility], readers: list[Reader]
) -> list[Reader]:
    """A network sells only what it can read: every facility gets at least one reader
    privileged there for each subspecialty and modality (some hours may still have none)."""
    needs = [("subspecialties", s) for s in SUBSPECIALTY_SHARE] + [
        ("modalities", m) for m in MODALITY_SHARE
    ]
    by_id = {r.user_id: r for r in readers}
    for facility in facilities:
        there = [r.user_id for r in by_id.values() if facility.id in r.facility_ids]
        if not there:
            continue
        for attribute, value in needs:
            if not any(value in getattr(by_id[uid], attribute) for uid in there):
                uid = rng.choice(there)
                held = getattr(by_id[uid], attribute)
                by_id[uid] = replace(by_id[uid], **{attribute: held | {value}})
    return [by_id[r.user_id] for r in readers]


# -- staffing: the roster a network would run for the day (simulation/staffing.py) -----

#: Tiers the contracts promise in minutes: a qualified reader on shift around the clock
#: for every kind of study of these tiers a facility sends.
AROUND_THE_CLOCK = (Priority.STROKE, Priority.TRAUMA)


def licensable(reader: Reader) -> frozenset[str]:
    """The jurisdictions ``reader``'s home region works for (its licence groups in
    :data:`REGIONS`): an Australian may hold Californian and British licences, not an
    Indian one."""
    home = next((s.tz for s in reader.shifts if isinstance(s, WeeklyShift)), "")
    groups = REGIONS[home][1] if home in REGIONS else {}
    return frozenset(j for j in JURISDICTIONS if j.split("-")[0] in groups)


def staff_roster(
    readers: Sequence[Reader], arrivals: Sequence[Arrival], start: datetime
) -> tuple[list[Reader], Staffing]:
    """The drawn roster staffed for the day: every kind of study it brings has a
    qualified reader, and those of :data:`AROUND_THE_CLOCK` one on shift at every minute."""
    needs = {a.need for a in arrivals}
    critical = {a.need for a in arrivals if a.priority in AROUND_THE_CLOCK}
    shifts = {zone: [(b, h) for b, h, _ in table] for zone, (_, _, table) in REGIONS.items()}
    return staff(readers, needs, critical, start=start, licensable=licensable, shifts=shifts)


def generate(
    seed: int = DEFAULT_SEED,
    studies: int = DEFAULT_STUDIES,
    readers: int = DEFAULT_READERS,
    start: datetime = DAY,
) -> Scenario:
    """The day named by ``seed``: the same seed and sizes always give the same scenario."""
    if studies < 0 or readers < 0:
        raise ValueError("studies and readers must not be negative")
    rng = random.Random(seed)
    facilities = make_facilities(rng)
    drawn = make_readers(rng, facilities, readers)
    # The arrivals are drawn from the roster as drawn (priors name readers privileged
    # there), then the roster is staffed for them: staffing only adds, and draws nothing.
    arrivals = make_arrivals(rng, facilities, drawn, studies, start)
    roster, staffing = staff_roster(drawn, arrivals, start)
    return Scenario(
        arrivals=tuple(arrivals),
        readers=tuple(roster),
        contracts={f.id: f.contract for f in facilities if f.contract.minutes},
        facilities=tuple(facilities),
        seed=seed,
        day=start,
        staffing=staffing,
    )
