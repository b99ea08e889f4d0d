"""``telerad facility results``, ``telerad outbox`` and ``telerad worker``: where each
facility takes its results, what the outbox holds, and a process that only delivers."""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from telerad.cli.common import DataDir, DbUrl, cli_actor, console, fail, platform_from
from telerad.cli.people import facility_app
from telerad.domain.outbox import Channel, MessageState, OutboxError
from telerad.services.access_audit import Actor
from telerad.services.outbox import OutboxFilter
from telerad.services.results import NotFound

outbox_app = typer.Typer(help="The results outbox: deliveries to facilities, dead letters")


def _actor() -> Actor:
    return Actor(cli_actor(), source="cli")


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "-"


@facility_app.command("results")
def facility_results(
    facility: Annotated[str, typer.Argument(help="Facility name")],
    hl7: Annotated[
        str | None, typer.Option("--hl7", help="HOST:PORT of its HL7 results receiver (MLLP)")
    ] = None,
    tls: Annotated[
        bool, typer.Option("--tls", help="The HL7 (or DICOM) endpoint takes TLS")
    ] = False,
    fhir: Annotated[str | None, typer.Option("--fhir", help="Base URL of its FHIR server")] = None,
    dicom: Annotated[
        str | None, typer.Option("--dicom", help="AE@HOST:PORT taking SR and PDF (C-STORE)")
    ] = None,
    remove: Annotated[
        list[Channel] | None, typer.Option("--remove", help="Stop sending it this kind")
    ] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Set where a facility takes its results (each kind replaces the one it had), then
    list its endpoints. Messages already queued go to the new address."""
    platform = platform_from(data_dir, database_url)
    found = platform.index.facility_by_name(facility)
    if found is None:
        raise fail(f"no facility named {facility}")
    results = platform.results
    wanted = [(Channel.HL7, hl7), (Channel.FHIR, fhir), (Channel.DICOM, dicom)]
    try:
        for kind, address in wanted:
            if address is not None:
                secure = tls and kind is not Channel.FHIR  # a URL says https itself
                results.set_endpoint(_actor(), None, found.id, kind, address, secure)
        for kind in remove or []:
            results.remove_endpoint(_actor(), None, found.id, kind)
    except (OutboxError, NotFound) as exc:
        raise fail(str(exc)) from exc
    endpoints = results.endpoints_of(None, found.id)
    if not endpoints:
        console.print(f"{facility}: no results endpoint (results are kept, not sent)")
    for e in endpoints:
        console.print(f"{facility}\t{e.kind.value}\t{e.address}" + ("\tTLS" if e.tls else ""))


@outbox_app.command("list")
def outbox_list(
    state: Annotated[
        list[MessageState] | None, typer.Option(help="pending, sent or dead; repeatable")
    ] = None,
    facility: Annotated[str | None, typer.Option(help="Facility name")] = None,
    report: Annotated[int | None, typer.Option(help="Report id: its deliveries")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """List outbox messages, newest first (identifiers and answers only, no report text)."""
    platform = platform_from(data_dir, database_url)
    names = {f.id: f.name for f in platform.index.list_facilities()}
    only = None
    if facility is not None:
        ids = [i for i, n in names.items() if n == facility]
        if not ids:
            raise fail(f"no facility named {facility}")
        only = frozenset(ids)
    found = platform.results.messages(
        _actor(),
        None,
        OutboxFilter(frozenset(state or ()), only, report, limit=limit),
    )
    table = Table(
        "id", "facility", "report", "channel", "message id", "state", "tries", "when", "last"
    )
    for m in found:
        when = m.sent_at if m.state is MessageState.SENT else m.next_at
        last = m.last_error if m.state is not MessageState.SENT else ""
        table.add_row(
            str(m.id),
            names.get(m.facility_id, str(m.facility_id)),
            f"{m.report_id} v{m.report_version}",
            m.channel.value,
            m.message_id,
            m.state.value,
            str(m.attempts),
            _when(when),
            last,
        )
    console.print(table)
    counts = platform.results.counts(only)
    console.print(", ".join(f"{n} {s.value}" for s, n in counts.items()))


@outbox_app.command("show")
def outbox_show(
    outbox_id: Annotated[int, typer.Argument(help="The message's id (outbox list)")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A message and every attempt to deliver it: when, where, what came back."""
    platform = platform_from(data_dir, database_url)
    try:
        trace = platform.results.trace(_actor(), None, outbox_id)
    except NotFound as exc:
        raise fail(str(exc)) from exc
    m = trace.message
    console.print(
        f"message {m.id}: {m.channel.value} {m.message_id}, report {m.report_id} "
        f"version {m.report_version}, {m.state.value}, queued {_when(m.queued_at)}"
    )
    table = Table("at", "to", "outcome", "detail")
    for a in trace.attempts:
        table.add_row(_when(a.at), a.destination, a.outcome.value, a.detail)
    console.print(table)


@outbox_app.command("retry")
def outbox_retry(
    outbox_id: Annotated[int, typer.Argument(help="The dead letter's id (outbox list)")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Send a dead letter again (the running platform's outbox worker sends it)."""
    platform = platform_from(data_dir, database_url)
    try:
        message = platform.results.retry(_actor(), None, outbox_id)
    except (NotFound, OutboxError) as exc:
        raise fail(str(exc)) from exc
    console.print(f"message {message.id} ({message.message_id}) is pending again")


def worker(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Deliver the outbox and nothing else, until stopped (SIGINT, SIGTERM). Any number
    may run beside `telerad serve` processes on one PostgreSQL."""
    platform = platform_from(data_dir, database_url)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    platform.start(only=frozenset({"index-sync", "outbox"}))
    console.print("outbox worker running (Ctrl-C stops it)")
    stop.wait()
    platform.close()
