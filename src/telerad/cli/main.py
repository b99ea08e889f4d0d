"""The ``telerad`` command: thin; every command calls the services."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from telerad.cli.audit import audit_app
from telerad.cli.common import DataDir, DbUrl, console, err, platform_from, settings_from
from telerad.cli.orders import order_app, slots_app, station_app
from telerad.cli.people import facility_app, token_app, user_app
from telerad.cli.readers import reader_app
from telerad.cli.reports import report_app
from telerad.cli.results import outbox_app, worker
from telerad.cli.simulate import simulate
from telerad.cli.templates import template_app

app = typer.Typer(help="telerad: teleradiology platform", no_args_is_help=True)
node_app = typer.Typer(help="Remote DICOM nodes (C-MOVE destinations)")
app.add_typer(node_app, name="node")
app.add_typer(audit_app, name="audit")
app.add_typer(facility_app, name="facility")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(station_app, name="station")
app.add_typer(slots_app, name="slots")
app.add_typer(order_app, name="order")
app.add_typer(reader_app, name="reader")
app.add_typer(outbox_app, name="outbox")
app.command()(worker)
app.add_typer(template_app, name="template")
app.add_typer(report_app, name="report")
app.command()(simulate)


@app.command()
def serve(
    data_dir: DataDir = None,
    database_url: DbUrl = None,
    http_port: Annotated[int | None, typer.Option(help="TELERAD_HTTP_PORT")] = None,
    dicom_port: Annotated[int | None, typer.Option(help="TELERAD_DICOM_PORT")] = None,
    dicom_aet: Annotated[str | None, typer.Option(help="TELERAD_DICOM_AET")] = None,
    http_host: Annotated[str | None, typer.Option(help="TELERAD_HTTP_HOST")] = None,
    dicom_host: Annotated[str | None, typer.Option(help="TELERAD_DICOM_HOST")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TELERAD_TLS_CERT (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TELERAD_TLS_KEY (PEM)")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="TELERAD_TLS_CLIENT_CA (PEM): mutual TLS")
    ] = None,
    dicom_tls_port: Annotated[int | None, typer.Option(help="TELERAD_DICOM_TLS_PORT")] = None,
    mllp_host: Annotated[str | None, typer.Option(help="TELERAD_MLLP_HOST")] = None,
    mllp_port: Annotated[int | None, typer.Option(help="TELERAD_MLLP_PORT")] = None,
    mllp_tls_port: Annotated[int | None, typer.Option(help="TELERAD_MLLP_TLS_PORT")] = None,
    demo: Annotated[bool, typer.Option(help="Load demo studies on first start")] = False,
) -> None:
    """Start the archive: DIMSE and HL7 MLLP listeners, DICOMweb, viewer and study list."""
    from telerad.server import run

    settings = settings_from(
        data_dir=data_dir,
        database_url=database_url,
        http_port=http_port,
        dicom_port=dicom_port,
        dicom_aet=dicom_aet,
        http_host=http_host,
        dicom_host=dicom_host,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        dicom_tls_port=dicom_tls_port,
        mllp_host=mllp_host,
        mllp_port=mllp_port,
        mllp_tls_port=mllp_tls_port,
    )
    run(settings, demo=demo)


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    facility: Annotated[str | None, typer.Option(help="Facility the studies belong to")] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Import DICOM files into the archive, with a progress bar and a summary of failures."""
    from telerad.cli.importer import import_paths

    platform = platform_from(data_dir, database_url)
    platform.start(only=frozenset({"index-sync"}))  # a long import stays durable as it goes
    summary = import_paths(platform, paths, facility, console)
    raise typer.Exit(0 if summary.failed == 0 else 1)


@app.command()
def demo(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Load demo studies across modality families."""
    from telerad.demo import load_demo

    platform = platform_from(data_dir, database_url)
    summary = load_demo(platform, console)
    raise typer.Exit(0 if summary.failed == 0 else 1)


@app.command()
def deid(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")],
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", help="PS3.15 option, repeatable: retain-uids, clean-graphics…"),
    ] = None,
    secret_file: Annotated[
        Path | None, typer.Option(help="Secret for UIDs and date shifts (default: in data dir)")
    ] = None,
    facility: Annotated[str | None, typer.Option(help="Facility the UIDs are keyed to")] = None,
    data_dir: DataDir = None,
) -> None:
    """De-identify DICOM files (PS3.15 Basic Profile); burned-in risks go to quarantine/."""
    from telerad.cli.deid import default_secret_path, run_deid
    from telerad.domain.deid import Option, ProfileError
    from telerad.services.deid import SecretError

    settings = settings_from(data_dir=data_dir)
    try:
        options = [Option(name) for name in profile or []]
        summary = run_deid(
            paths,
            out,
            options,
            secret_file or default_secret_path(settings.data_dir),
            facility or settings.default_facility,
            console,
        )
    except ValueError as exc:  # unknown option, exclusive options, bad secret file
        known = ", ".join(o.value for o in Option)
        hint = "" if isinstance(exc, ProfileError | SecretError) else f" (options: {known})"
        err.print(f"[red]{exc}{hint}[/red]")
        raise typer.Exit(2) from exc
    raise typer.Exit(0 if summary.failed == 0 else 1)


@node_app.command("add")
def node_add(
    ae_title: Annotated[str, typer.Argument(help="AE title of the remote node")],
    host: Annotated[str, typer.Option(help="Host name or address")],
    port: Annotated[int, typer.Option(help="TCP port")],
    facility: Annotated[str | None, typer.Option(help="Facility the node belongs to")] = None,
    cert_sha256: Annotated[
        str, typer.Option(help="SHA-256 of the TLS client certificate it must present")
    ] = "",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Register a remote DICOM node: a C-MOVE destination and a peer allowed to call."""
    from telerad.cli.common import cli_actor, refusals
    from telerad.cli.people import administration

    admin = administration(data_dir, database_url)
    with refusals():
        if facility and admin.index.facility_by_name(facility) is None:
            admin.add_facility(facility, cli_actor())
        node = admin.add_node(ae_title, host, port, cli_actor(), facility, cert_sha256)
    console.print(f"node {node.ae_title} at {node.host}:{node.port} registered")


@node_app.command("list")
def node_list(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """List registered nodes."""
    platform = platform_from(data_dir, database_url)
    for node in platform.index.list_nodes():
        console.print(f"{node.ae_title}\t{node.host}:{node.port}\tfacility={node.facility_id}")


if __name__ == "__main__":
    app()
