"""``telerad station``, ``telerad slots`` and ``telerad order``: thin, over the order services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from telerad.cli.common import DataDir, DbUrl, cli_actor, console, fail, platform_from
from telerad.domain.orders import OrderError, OrderFilter, OrderStatus
from telerad.services.access_audit import Actor
from telerad.services.orders import Origin
from telerad.services.scheduling import Scheduling, working_hours, zone

if TYPE_CHECKING:
    from telerad.bootstrap import Platform

station_app = typer.Typer(help="Modalities a facility schedules procedures on (stations)")
slots_app = typer.Typer(help="Procedure slots on a station")
order_app = typer.Typer(help="Orders (RIS): what facilities asked to be done")


@contextmanager
def refused() -> Iterator[None]:
    """A refusal (unknown facility, taken AE title, bad times) ends with its reason, exit 2."""
    try:
        yield
    except OrderError as exc:
        raise fail(str(exc)) from exc


def _facility_id(platform: Platform, name: str) -> int:
    found = platform.index.facility_by_name(name)
    if found is None:
        raise fail(f"no facility named {name}")
    return found.id


def _clock(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise fail(f"{text!r} is not a time of day (HH:MM)") from None


@station_app.command("add")
def station_add(
    ae_title: Annotated[str, typer.Argument(help="The modality's AE title")],
    facility: Annotated[str, typer.Option(help="Facility the modality belongs to")],
    modality: Annotated[str, typer.Option(help="DICOM modality: CT, MR, US, DX…")],
    name: Annotated[str, typer.Option(help="Display name (room, model)")] = "",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Register a modality of a facility, to book procedures on."""
    platform = platform_from(data_dir, database_url)
    with refused():
        station = Scheduling(platform.orders).add_station(
            _facility_id(platform, facility), ae_title, modality, name, Origin("CLI", cli_actor())
        )
    console.print(f"station {station.ae_title} ({station.modality}) at {facility}")


@station_app.command("list")
def station_list(
    facility: Annotated[str | None, typer.Option(help="Only this facility's")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """List stations with their facility and modality."""
    platform = platform_from(data_dir, database_url)
    only = frozenset({_facility_id(platform, facility)}) if facility else None
    table = Table("AE title", "modality", "name", "facility")
    for s in Scheduling(platform.orders).stations(only):
        table.add_row(s.ae_title, s.modality, s.name, platform.orders.facility_name(s.facility_id))
    console.print(table)


@slots_app.command("open")
def slots_open(
    ae_title: Annotated[str, typer.Argument(help="The station's AE title")],
    on: Annotated[str, typer.Option("--date", help="Day (YYYY-MM-DD)")],
    until: Annotated[
        str | None, typer.Option(help="Last day (YYYY-MM-DD), inclusive; default: --date")
    ] = None,
    start: Annotated[str, typer.Option("--from", help="First slot starts (HH:MM)")] = "08:00",
    end: Annotated[str, typer.Option("--to", help="Last slot ends by (HH:MM)")] = "18:00",
    minutes: Annotated[int, typer.Option(help="Length of a slot")] = 30,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of --from/--to")] = "UTC",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Open slots on a station for a day (or each day up to --until)."""
    platform = platform_from(data_dir, database_url)
    scheduling = Scheduling(platform.orders)
    station = scheduling.station(ae_title, None)
    if station is None:
        raise fail(f"no station {ae_title}")
    try:
        first = date.fromisoformat(on)
        last = date.fromisoformat(until) if until else first
    except ValueError as exc:
        raise fail(f"not a date (YYYY-MM-DD): {exc}") from exc
    with refused():
        periods = working_hours(first, last, _clock(start), _clock(end), zone(tz))
        opened = scheduling.open_slots(station, periods, minutes)
    kept = opened.requested - opened.added
    console.print(
        f"{opened.added} slot(s) of {minutes} min opened on {station.ae_title}"
        + (f" ({kept} already open)" if kept else "")
    )


@slots_app.command("list")
def slots_list(
    ae_title: Annotated[str, typer.Argument(help="The station's AE title")],
    on: Annotated[str, typer.Option("--date", help="Day (YYYY-MM-DD)")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the day")] = "UTC",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The slots of a day on a station, free and booked."""
    platform = platform_from(data_dir, database_url)
    scheduling = Scheduling(platform.orders)
    station = scheduling.station(ae_title, None)
    if station is None:
        raise fail(f"no station {ae_title}")
    with refused():
        zone_ = zone(tz)
    try:
        day = date.fromisoformat(on)
    except ValueError as exc:
        raise fail(f"not a date (YYYY-MM-DD): {exc}") from exc
    begin = datetime.combine(day, time(), zone_)
    table = Table("slot", "start", "end", "order")
    for s in scheduling.slots(station, begin, begin + timedelta(days=1)):
        table.add_row(
            str(s.id),
            s.start.astimezone(zone_).strftime("%H:%M"),
            s.end.astimezone(zone_).strftime("%H:%M"),
            str(s.order_id) if s.order_id is not None else "free",
        )
    console.print(table)


@order_app.command("list")
def order_list(
    facility: Annotated[str | None, typer.Option(help="Only this facility's")] = None,
    status: Annotated[
        list[OrderStatus] | None, typer.Option(help="Only these statuses, repeatable")
    ] = None,
    accession: Annotated[str | None, typer.Option(help="One accession number")] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 100,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """List orders, oldest first (no patient names: identifiers only)."""
    platform = platform_from(data_dir, database_url)
    only = frozenset({_facility_id(platform, facility)}) if facility else None
    found = platform.orders.search(
        Actor(cli_actor(), source="cli"),
        OrderFilter(
            facility_ids=only,
            statuses=frozenset(status) if status else None,
            accession_number=accession,
            limit=limit,
        ),
        "CLI",
    )
    table = Table("id", "facility", "accession", "status", "priority", "procedure", "scheduled")
    for o in found:
        when = o.scheduled_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if o.scheduled_at else ""
        table.add_row(
            str(o.id),
            platform.orders.facility_name(o.facility_id),
            o.accession_number,
            o.status.value,
            o.priority.value,
            f"{o.procedure.code} {o.procedure.modality}".strip(),
            when + (f" {o.station_ae}" if o.station_ae else ""),
        )
    console.print(table)
    console.print(f"{len(found)} order(s)")
