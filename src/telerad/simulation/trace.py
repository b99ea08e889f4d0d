"""Simulation traces as CSV: one file of arrivals, one of the roster.

Text in, text out (the command line reads and writes the files). Lists inside a
cell are separated by spaces, shifts by ``;``. Errors name the file, the line and
the column: ``arrivals.csv, line 7: priority: unknown tier 'asap'; known: stroke,
trauma, stat, urgent, routine``. The columns are documented in docs/routing.md.

Arrivals: ``uid, facility_id, jurisdiction, ready_at, priority, modality, rvu`` are
required; ``body_part, subspecialty, patient_id, read_kind, prior_readers, deadline,
effort`` may be left out or blank (a blank deadline is the rules' target).

Roster: ``user_id, licences, facility_ids, modalities, shifts`` are required;
``name, subspecialties, rvu_per_hour, queue_cap_rvu, read_kinds`` may be left out.
A shift is ``DAYS HH:MM-HH:MM ZONE`` (days: ``daily``, ``mon-fri`` or
``mon,wed,sat``; a shift that ends before it starts runs overnight) or a fixed
interval ``START/END`` in ISO 8601 with a UTC offset.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, time
from typing import TypeVar
from zoneinfo import ZoneInfoNotFoundError

from telerad.simulation.scenario import Arrival, Scenario
from telerad.workflow.model import Priority, Reader, ReadKind, Shift, WeeklyShift
from telerad.workflow.rules import Rules

ARRIVAL_COLUMNS = (
    "uid", "facility_id", "jurisdiction", "ready_at", "priority", "modality", "rvu",
    "body_part", "subspecialty", "patient_id", "read_kind", "prior_readers", "deadline",
    "effort",
)  # fmt: skip
ARRIVAL_REQUIRED = frozenset(ARRIVAL_COLUMNS[:7])
ROSTER_COLUMNS = (
    "user_id", "name", "licences", "facility_ids", "modalities", "subspecialties",
    "shifts", "rvu_per_hour", "queue_cap_rvu", "read_kinds",
)  # fmt: skip
ROSTER_REQUIRED = frozenset({"user_id", "licences", "facility_ids", "modalities", "shifts"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

T = TypeVar("T")


class TraceError(ValueError):
    """A trace file that cannot be replayed, with the line and column at fault."""


class _Cell(ValueError):
    """A bad value; the row loop adds the file, the line and the column read last."""

    def __init__(self, message: str, column: str = "") -> None:
        super().__init__(message)
        self.column = column


# -- cells ---------------------------------------------------------------------------


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _Cell(f"not a whole number: {text!r}") from None


def _number(text: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Cell(f"not a number: {text!r}") from None
    if value != value or value < 0 or (positive and value == 0):  # NaN, negative
        raise _Cell(f"must be {'> 0' if positive else '≥ 0'}, got {text!r}")
    return value


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Cell(f"not an ISO 8601 date and time: {text!r}") from None
    if value.tzinfo is None:
        raise _Cell(f"needs a UTC offset (2025-03-04T08:00:00+00:00): {text!r}")
    return value


def _enum(kind: Callable[[str], T], known: Iterable[str], text: str) -> T:
    try:
        return kind(text)
    except ValueError:
        raise _Cell(f"unknown value {text!r}; known: {', '.join(known)}") from None


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _days(text: str) -> frozenset[int]:
    text = text.lower()
    if text == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise _Cell(f"unknown days {part!r}: use daily, mon-fri or mon,wed,sat")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days |= set(range(a, b + 1)) if a <= b else set(range(a, 7)) | set(range(0, b + 1))
    return frozenset(days)


def _clock(text: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise _Cell(f"not a time of day HH:MM: {text!r}") from None


def _shift(text: str) -> Shift | WeeklyShift:
    parts = text.split()
    try:
        if len(parts) == 1 and "/" in text:
            start, end = text.split("/")
            return Shift(_when(start), _when(end))
        if len(parts) == 3:
            begin, _, end = parts[1].partition("-")
            return WeeklyShift(_days(parts[0]), _clock(begin), _clock(end), parts[2])
    except ZoneInfoNotFoundError:
        raise _Cell(f"unknown time zone {parts[-1]!r}") from None
    except _Cell:
        raise
    except ValueError as exc:
        raise _Cell(f"{text!r}: {exc}") from None
    raise _Cell(f"{text!r}: a shift is 'DAYS HH:MM-HH:MM ZONE' or 'START/END'")


def shift_text(shift: Shift | WeeklyShift) -> str:
    if isinstance(shift, Shift):
        return f"{shift.start.isoformat()}/{shift.end.isoformat()}"
    days = "daily" if len(shift.days) == 7 else ",".join(DAYS[d] for d in sorted(shift.days))
    return f"{days} {shift.start:%H:%M}-{shift.end:%H:%M} {shift.tz}"


# -- rows ----------------------------------------------------------------------------


def _rows(
    text: str, name: str, columns: tuple[str, ...], required: frozenset[str]
) -> Iterable[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames
    if not header:
        raise TraceError(f"{name}: empty file; the first line names the columns")
    header = [h.strip() for h in header]
    reader.fieldnames = header
    missing = sorted(required - set(header))
    unknown = sorted(set(header) - set(columns))
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        raise TraceError(f"{name}, line 1: {'; '.join(problems)}; known: {', '.join(columns)}")
    for row in reader:
        if None in row:
            raise TraceError(f"{name}, line {reader.line_num}: more cells than columns")
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}


class _Row:
    """One row's cells, read by column; a bad value is tagged with its column."""

    def __init__(self, values: Mapping[str, str], required: frozenset[str]) -> None:
        self.values = values
        self.required = required

    def text(self, column: str) -> str:
        value = self.values.get(column, "")
        if not value and column in self.required:
            raise _Cell("required, but blank", column)
        return value

    def get(self, column: str, parse: Callable[[str], T], default: T) -> T:
        """The parsed cell, or ``default`` when it is blank or left out."""
        text = self.text(column)
        if not text:
            return default
        try:
            return parse(text)
        except _Cell as exc:
            raise _Cell(str(exc), exc.column or column) from None


def _parse(
    text: str,
    name: str,
    columns: tuple[str, ...],
    required: frozenset[str],
    build: Callable[[_Row], T],
    key: Callable[[T], object],
) -> list[T]:
    out = []
    seen: dict[object, int] = {}
    for line, values in _rows(text, name, columns, required):
        try:
            item = build(_Row(values, required))
        except _Cell as exc:
            raise TraceError(f"{name}, line {line}: {exc.column}: {exc}") from None
        except ValueError as exc:  # a value the model refuses
            raise TraceError(f"{name}, line {line}: {exc}") from None
        first = seen.setdefault(key(item), line)
        if first != line:
            what = columns[0]
            raise TraceError(f"{name}, line {line}: {what}: {key(item)} is already on line {first}")
        out.append(item)
    return out


def _ints(text: str) -> frozenset[int]:
    return frozenset(_int(v) for v in text.split())


def _upper(text: str) -> frozenset[str]:
    return frozenset(v.upper() for v in text.split())


def _positive(text: str) -> float:
    return _number(text, positive=True)


def _priority(text: str) -> Priority:
    return _enum(Priority, (p.value for p in Priority), text.lower())


def _kind(text: str) -> ReadKind:
    return _enum(ReadKind, (k.value for k in ReadKind), text.lower())


def _shifts(text: str) -> tuple[Shift | WeeklyShift, ...]:
    return tuple(_shift(s.strip()) for s in text.split(";") if s.strip())


def _arrival(row: _Row) -> Arrival:
    arrival = Arrival(
        uid=row.text("uid"),
        facility_id=row.get("facility_id", _int, 0),
        jurisdiction=row.text("jurisdiction"),
        ready_at=row.get("ready_at", _when, datetime.min),
        priority=row.get("priority", _priority, Priority.ROUTINE),
        modality=row.text("modality").upper(),
        rvu=row.get("rvu", _number, 0.0),
        body_part=row.text("body_part"),
        subspecialty=row.text("subspecialty"),
        patient_id=row.text("patient_id"),
        read_kind=row.get("read_kind", _kind, ReadKind.FINAL),
        prior_readers=row.get("prior_readers", _ints, frozenset()),
        deadline=row.get("deadline", _when, None),
        effort=row.get("effort", _positive, 1.0),
    )
    if arrival.deadline is not None and arrival.deadline <= arrival.ready_at:
        raise _Cell(f"{row.text('deadline')} is not after ready_at", "deadline")
    return arrival


def _reader(row: _Row) -> Reader:
    return Reader(
        user_id=row.get("user_id", _int, 0),
        name=row.text("name"),
        licences=row.get("licences", _words, frozenset()),
        facility_ids=row.get("facility_ids", _ints, frozenset()),
        modalities=row.get("modalities", _upper, frozenset()),
        subspecialties=row.get("subspecialties", _words, frozenset()),
        shifts=row.get("shifts", _shifts, ()),
        signed_in=False,
        rvu_per_hour=row.get("rvu_per_hour", _positive, 10.0),
        queue_cap_rvu=row.get("queue_cap_rvu", _positive, None),
        read_kinds=row.get(
            "read_kinds", lambda t: frozenset(_kind(k) for k in t.split()), frozenset(ReadKind)
        ),
    )


def parse_arrivals(text: str, name: str = "arrivals.csv") -> list[Arrival]:
    """The arrivals of a trace, sorted by ready time."""
    arrivals = _parse(text, name, ARRIVAL_COLUMNS, ARRIVAL_REQUIRED, _arrival, lambda a: a.uid)
    return sorted(arrivals, key=lambda a: (a.ready_at, a.uid))


def parse_roster(text: str, name: str = "roster.csv") -> list[Reader]:
    return _parse(text, name, ROSTER_COLUMNS, ROSTER_REQUIRED, _reader, lambda r: r.user_id)


def load_scenario(
    arrivals_text: str,
    roster_text: str,
    arrivals_name: str = "arrivals.csv",
    roster_name: str = "roster.csv",
) -> Scenario:
    arrivals = parse_arrivals(arrivals_text, arrivals_name)
    if not arrivals:
        raise TraceError(f"{arrivals_name}: no arrivals")
    readers = parse_roster(roster_text, roster_name)
    return Scenario(arrivals=tuple(arrivals), readers=tuple(readers))


# -- writing -------------------------------------------------------------------------


def _write(columns: tuple[str, ...], rows: Iterable[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _ids(values: Iterable[object]) -> str:
    return " ".join(str(v) for v in sorted(values))  # type: ignore[type-var]


def arrivals_csv(scenario: Scenario, rules: Rules) -> str:
    """The scenario's arrivals, deadlines filled in from ``rules`` and its contracts."""
    rules = scenario.rules(rules)
    return _write(
        ARRIVAL_COLUMNS,
        (
            {
                "uid": a.uid,
                "facility_id": a.facility_id,
                "jurisdiction": a.jurisdiction,
                "ready_at": a.ready_at.isoformat(),
                "priority": a.priority.value,
                "modality": a.modality,
                "rvu": a.rvu,
                "body_part": a.body_part,
                "subspecialty": a.subspecialty,
                "patient_id": a.patient_id,
                "read_kind": a.read_kind.value,
                "prior_readers": _ids(a.prior_readers),
                "deadline": a.study(rules).deadline.isoformat(),
                "effort": a.effort,
            }
            for a in scenario.arrivals
        ),
    )


def roster_csv(readers: Iterable[Reader]) -> str:
    return _write(
        ROSTER_COLUMNS,
        (
            {
                "user_id": r.user_id,
                "name": r.name,
                "licences": _ids(r.licences),
                "facility_ids": _ids(r.facility_ids),
                "modalities": _ids(r.modalities),
                "subspecialties": _ids(r.subspecialties),
                "shifts": "; ".join(shift_text(s) for s in r.shifts),
                "rvu_per_hour": r.rvu_per_hour,
                "queue_cap_rvu": "" if r.queue_cap_rvu is None else r.queue_cap_rvu,
                "read_kinds": _ids(k.value for k in r.read_kinds),
            }
            for r in readers
        ),
    )
