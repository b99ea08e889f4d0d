"""``telerad report show ACCESSION``: a study's signed report, its versions and where
it was delivered. Thin, over the report and results services; what it reads is
audited as any read (the operator as the actor)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from telerad.cli.common import DataDir, DbUrl, cli_actor, console, fail, platform_from
from telerad.domain.identity import Permission, Principal
from telerad.domain.templates import narrative
from telerad.services.access_audit import Actor
from telerad.services.reports import ReportFilter

report_app = typer.Typer(help="Reports: show a study's signed report")


def operator() -> Principal:
    """The operator at the machine: reads what was signed (drafts stay with readers)."""
    return Principal(cli_actor(), None, None, frozenset({Permission.READ}), method="cli")


@report_app.command("show")
def report_show(
    accession: Annotated[str, typer.Argument(help="The accession number")],
    facility: Annotated[str, typer.Option(help="The facility, when several use it")] = "",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """The signed report of ACCESSION: its text, versions, addenda and deliveries."""
    platform = platform_from(data_dir, database_url)
    who = operator()
    scope = None
    if facility:
        found = platform.index.facility_by_name(facility)
        if found is None:
            raise fail(f"no facility named {escape(facility)!r}", 1)
        scope = frozenset({found.id})
    listed = platform.reports.find(
        who, ReportFilter(facility_ids=scope, accession_number=accession.strip(), limit=10)
    )
    if not listed:
        raise fail(f"no signed report for accession {escape(accession)!r}", 1)
    if len({s.facility_id for s in listed}) > 1:
        raise fail("several facilities use this accession number: name one with --facility", 1)
    for summary in listed:
        report = platform.reports.get(who, summary.id, "cli")
        template = platform.reports.template_of(report)
        signed = report.signed
        assert signed is not None
        console.print(
            f"[bold]{escape(template.title)}[/bold] · accession {escape(report.accession_number)}"
            f" · {report.status.value.upper()} · version {signed.number}"
            f" · signed by {escape(signed.author)} {signed.made_at:%Y-%m-%d %H:%M} UTC"
        )
        for section in template.sections:
            prose = narrative(section, signed.content.text(section.id), signed.content.fields)
            if prose:
                console.print(f"\n[cyan]{escape(section.title)}[/cyan]")
                console.print(escape(prose))
        for v in report.addenda():
            console.print(
                f"\n[cyan]Addendum[/cyan] ({escape(v.author)}, {v.made_at:%Y-%m-%d %H:%M} UTC)"
            )
            console.print(escape(v.addendum))
        versions = Table("version", "status", "what", "by", "at (UTC)")
        for v in report.versions:
            versions.add_row(
                str(v.number),
                v.status.value,
                v.event.value + (" (signed)" if v.signed else ""),
                escape(v.author),
                f"{v.made_at:%Y-%m-%d %H:%M:%S}",
            )
        console.print(versions)
        traces = platform.results.deliveries(
            Actor(cli_actor(), "", True, "cli"), None, report.id or 0
        )
        if traces:
            sent = Table("channel", "message", "version", "state", "attempts", "answer")
            for t in traces:
                m = t.message
                sent.add_row(
                    m.channel.value,
                    escape(m.message_id),
                    str(m.report_version),
                    m.state.value,
                    str(len(t.attempts)),
                    escape((m.answer or m.last_error or "")[:60]),
                )
            console.print(sent)
        else:
            console.print("[dim]nothing delivered: the facility has no results endpoint[/dim]")
