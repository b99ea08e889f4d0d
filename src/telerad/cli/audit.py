"""``telerad audit``: verify the hash chain, export the trail."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from telerad.cli.common import DataDir, DbUrl, console, err, platform_from
from telerad.domain.audit import AuditRecord
from telerad.services.access_audit import Actor

audit_app = typer.Typer(help="The audit trail: verify its hash chain, export it")


class ExportFormat(StrEnum):
    dicom = "dicom"
    fhir = "fhir"


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        err.print(f"[red]--since: not an ISO 8601 date or time: {text!r}[/red]")
        raise typer.Exit(2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit_app.command("verify")
def verify(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Check the hash chain: exit 0 when intact, 1 naming the first bad record."""
    platform = platform_from(data_dir, database_url)
    verdict = platform.audit.verify()
    if verdict.ok:
        console.print(f"audit trail intact: {verdict.checked} records")
        return
    err.print(f"audit trail broken at record {verdict.bad_sequence}: {verdict.reason}")
    err.print(f"({verdict.checked} records before it are intact)")
    raise typer.Exit(1)


@audit_app.command("export")
def export(
    format: Annotated[ExportFormat, typer.Option("--format", help="dicom: PS3.15 XML; fhir")],
    since: Annotated[str | None, typer.Option(help="Only records from this ISO time")] = None,
    output: Annotated[Path | None, typer.Option(help="File to write (default stdout)")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Write the trail, one record per line: DICOM audit message XML or FHIR AuditEvent JSON."""
    from telerad.adapters.audit import dicom_xml, fhir

    start = _since(since)
    platform = platform_from(data_dir, database_url)
    source = platform.settings.dicom_aet

    def formatter(record: AuditRecord) -> str:
        if format is ExportFormat.dicom:
            return dicom_xml.to_xml(record, source)
        return fhir.to_json(record, source)

    out = output.open("w", encoding="utf-8") if output else sys.stdout
    count = 0
    # Reading the trail is itself audited (DICOM "Audit Log Used"), by the service.
    lines = platform.audit.export(
        formatter,
        start,
        by=Actor(getpass.getuser()),
        format_name=format.value,
        since_asked=since or "",
    )
    try:
        for line in lines:
            out.write(line + "\n")
            count += 1
    finally:
        if output:
            out.close()
    err.print(f"{count} audit records exported")
