"""``telerad template``: report templates in force, importing one, showing one. Thin,
over the template service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from telerad.cli.common import DataDir, DbUrl, cli_actor, console, err, fail, platform_from
from telerad.domain.template_codec import SourceFormat
from telerad.domain.templates import FieldKind, TemplateError

template_app = typer.Typer(help="Report templates (MRRT HTML, TOML, JSON)")


@template_app.command("import")
def template_import(
    file: Annotated[Path, typer.Argument(help="The template file (.html, .toml, .json)")],
    fmt: Annotated[
        SourceFormat | None,
        typer.Option("--format", help="mrrt, toml or json (default: from the extension)"),
    ] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Import a template: validated, kept with its file, audited. It replaces a shipped
    template of the same id, or an imported one of a lower version."""
    platform = platform_from(data_dir, database_url)
    try:
        done = platform.templates.import_file(file, cli_actor(), fmt)
    except TemplateError as exc:
        raise fail(escape(str(exc)), 1) from exc
    for warning in done.warnings:
        err.print(f"[yellow]{escape(warning)}[/yellow]")
    t = done.template
    if done.unchanged:
        console.print(f"{t.id} version {t.version} is already imported: nothing changed")
        return
    replacing = f", replacing the {done.replaced}" if done.replaced else ""
    console.print(
        f"imported {t.id} version {t.version} ({escape(t.title)}): {len(t.sections)} sections, "
        f"{len(t.fields())} fields{replacing}"
    )


@template_app.command("list")
def template_list(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """List the templates in force: shipped, and imported (by whom, when)."""
    platform = platform_from(data_dir, database_url)
    table = Table("id", "version", "title", "modalities", "procedures", "source")
    for entry in platform.templates.listing():
        t = entry.template
        a = t.availability
        modalities = ", ".join(sorted(a.modalities)) or ("any (fallback)" if t.fallback else "any")
        if a.sexes:
            modalities += f" ({', '.join(sorted(s.value for s in a.sexes))})"
        if a.min_age is not None or a.max_age is not None:
            modalities += f" ages {a.min_age if a.min_age is not None else 0}-"
            modalities += f"{a.max_age if a.max_age is not None else ''}"
        source = entry.origin.value
        if entry.imported_at is not None:
            source += f" by {entry.imported_by} {entry.imported_at:%Y-%m-%d %H:%M}"
        if entry.replaces_shipped:
            source += f" (replaces shipped {entry.replaces_shipped})"
        table.add_row(t.id, t.version, t.title, modalities, str(len(t.procedure_codes)), source)
    console.print(table)


@template_app.command("show")
def template_show(
    template_id: Annotated[str, typer.Argument(help="The template's id")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Show a template's sections and fields, with their codes, units and ranges."""
    platform = platform_from(data_dir, database_url)
    t = platform.templates.get(template_id)
    if t is None:
        raise fail(f"no template {template_id!r}", 1)
    tree = Tree(f"[bold]{t.id}[/bold] version {t.version}: {escape(t.title)}")
    if t.procedure_codes:
        tree.add(f"procedures: {', '.join(sorted(t.procedure_codes))}")
    for section in t.sections:
        heading = f" [dim]LN {section.heading.value}[/dim]" if section.heading else ""
        required = " (required)" if section.required else ""
        node = tree.add(f"{escape(section.title)}{heading}{required}")
        for f in section.fields:
            node.add(_describe(f.label, f.kind, f.unit, f.minimum, f.maximum, f.values(), f.group))
    if t.macros:
        tree.add("macros: " + ", ".join(f".{k}" for k in sorted(t.macros)))
    console.print(tree)


def _describe(
    label: str,
    kind: FieldKind,
    unit: str,
    low: float | None,
    high: float | None,
    values: list[str],
    group: str,
) -> str:
    text = escape(f"{group}: {label}" if group else label)
    text += f" [dim]{kind.value}"
    if unit:
        text += f" {escape(unit)}"
    if low is not None or high is not None:
        text += f" {'' if low is None else f'{low:g}'}–{'' if high is None else f'{high:g}'}"
    if values:
        text += f" {escape(' | '.join(values))}"
    return text + "[/dim]"
