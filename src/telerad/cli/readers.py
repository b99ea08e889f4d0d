"""``telerad reader``: what a radiologist reads and when (thin, over services.readers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from telerad.cli.common import DataDir, DbUrl, cli_actor, console, fail, platform_from
from telerad.domain.readers import ProfileError, once_rule, weekly_rule
from telerad.services.readers import ProfileChange, ReaderAdmin

reader_app = typer.Typer(help="Reader profiles: subspecialties, modalities, speed, shifts")
shift_app = typer.Typer(help="A reader's shifts: weekly in their time zone, or once (UTC)")
reader_app.add_typer(shift_app, name="shift")


def _admin(data_dir: Path | None, database_url: str | None) -> ReaderAdmin:
    platform = platform_from(data_dir, database_url)
    admin = ReaderAdmin(platform.reading.store, platform.identity, platform.audit)
    admin.facility_name = lambda fid: (
        f.name if (f := platform.index.facility_by_id(fid)) else str(fid)
    )
    return admin


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except ProfileError as exc:
        raise fail(str(exc)) from exc


@reader_app.command("set")
def reader_set(
    username: Annotated[str, typer.Argument(help="The radiologist's user name")],
    subspecialty: Annotated[
        list[str] | None,
        typer.Option("--subspecialty", help="neuro, msk, body…; repeatable; replaces the list"),
    ] = None,
    modality: Annotated[
        list[str] | None,
        typer.Option("--modality", help="CT, MR, CR…; repeatable; replaces the list"),
    ] = None,
    read_kind: Annotated[
        list[str] | None,
        typer.Option("--read-kind", help="preliminary or final; repeatable; replaces the list"),
    ] = None,
    rvu_per_hour: Annotated[
        float | None, typer.Option("--rvu-per-hour", help="Reading speed", min=0.1)
    ] = None,
    queue_cap: Annotated[
        float | None, typer.Option("--queue-cap", help="Queue cap in RVU (else the rules')")
    ] = None,
    default_cap: Annotated[
        bool, typer.Option("--default-cap", help="Use the rules' queue cap again")
    ] = False,
    tz: Annotated[
        str | None, typer.Option("--tz", help="IANA time zone of their weekly shifts")
    ] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Set what a radiologist reads; options left out keep their value."""
    admin = _admin(data_dir, database_url)
    change = ProfileChange(
        subspecialties=subspecialty,
        modalities=modality,
        read_kinds=read_kind,
        rvu_per_hour=rvu_per_hour,
        queue_cap_rvu=queue_cap,
        clear_cap=default_cap,
        tz=tz,
    )
    with _refusals():
        admin.set_profile(username, change, cli_actor())
    _show(admin, username)


@shift_app.command("add")
def shift_add(
    username: Annotated[str, typer.Argument(help="The radiologist's user name")],
    days: Annotated[
        str | None, typer.Option("--days", help="mon-fri, sat,sun, daily (weekly shift)")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="HH:MM local time (weekly shift)")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="HH:MM local time; before --from: overnight")
    ] = None,
    starts_at: Annotated[
        str | None, typer.Option("--starts-at", help="YYYY-MM-DDTHH:MM (once; UTC unless offset)")
    ] = None,
    ends_at: Annotated[str | None, typer.Option("--ends-at", help="End of a one-off shift")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Add a weekly shift (--days --from --to) or a one-off one (--starts-at --ends-at)."""
    admin = _admin(data_dir, database_url)
    with _refusals():
        if starts_at or ends_at:
            if days or start or end or not (starts_at and ends_at):
                raise ProfileError("a one-off shift takes --starts-at and --ends-at only")
            rule = once_rule(starts_at, ends_at)
        else:
            if not (days and start and end):
                raise ProfileError("a weekly shift takes --days, --from and --to")
            rule = weekly_rule(days, start, end)
        added = admin.add_shift(username, rule, cli_actor())
    console.print(f"shift {added.id} added")
    _show(admin, username)


@shift_app.command("remove")
def shift_remove(
    username: Annotated[str, typer.Argument(help="The radiologist's user name")],
    shift_id: Annotated[int, typer.Argument(help="The shift's number (telerad reader show)")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Remove one of a reader's shifts."""
    admin = _admin(data_dir, database_url)
    with _refusals():
        admin.remove_shift(username, shift_id, cli_actor())
    _show(admin, username)


@reader_app.command("show")
def reader_show(
    username: Annotated[str, typer.Argument(help="The radiologist's user name")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Everything routing knows of a radiologist."""
    admin = _admin(data_dir, database_url)
    with _refusals():
        _show(admin, username)


def _show(admin: ReaderAdmin, username: str) -> None:
    card = admin.card(username)
    user, profile = card.user, card.profile
    console.print(f"[bold]{user.username}[/bold] {user.display_name}".rstrip())
    console.print(f"  licensed in:   {', '.join(sorted(card.licences)) or '(none)'}")
    facilities = sorted(admin.facility_name(f) for f in card.facility_ids)
    console.print(f"  privileged at: {', '.join(facilities) or '(none)'}")
    if profile is None:
        console.print("  no reader profile: routing gives them nothing (telerad reader set)")
        return
    console.print(f"  modalities:    {', '.join(sorted(profile.modalities)) or '(none)'}")
    console.print(f"  subspecialty:  {', '.join(sorted(profile.subspecialties)) or '(general)'}")
    console.print(f"  reads:         {', '.join(sorted(k.value for k in profile.read_kinds))}")
    console.print(f"  speed:         {profile.rvu_per_hour:g} RVU/hour")
    cap = f"{profile.queue_cap_rvu:g} RVU" if profile.queue_cap_rvu else "the rules' default"
    console.print(f"  queue cap:     {cap}")
    console.print(f"  time zone:     {profile.tz}")
    if not profile.shifts:
        console.print("  shifts:        none: never on shift (telerad reader shift add)")
    for shift in profile.shifts:
        console.print(f"  shift {shift.id}:       {shift.describe(profile.tz)}")
