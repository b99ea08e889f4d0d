"""``telerad facility``, ``telerad user`` and ``telerad token``: thin, over services.people."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from telerad.cli.common import (
    DataDir,
    DbUrl,
    cli_actor,
    console,
    fail,
    platform_from,
    refusals,
    settings_from,
)
from telerad.domain.identity import Permission, Role, parse_permissions
from telerad.services.people import Administration

facility_app = typer.Typer(help="Facilities (tenants): hospitals, clinics, diagnostic centers")
user_app = typer.Typer(help="Accounts: radiologists, facility staff, admins, auditors, services")
token_app = typer.Typer(help="Bearer tokens for the APIs")


def administration(data_dir: Path | None, database_url: str | None) -> Administration:
    platform = platform_from(data_dir, database_url)
    return Administration(platform.index, platform.auth, platform.audit)


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise fail("no password on standard input")
    return password


@facility_app.command("add")
def facility_add(
    name: Annotated[str, typer.Argument(help="Facility name")],
    ae: Annotated[
        str | None, typer.Option("--ae", help="AE title its modalities call with")
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address, network (CIDR) or host name its AE calls from")
    ] = "",
    country: Annotated[str, typer.Option(help="ISO 3166-1 country code (US, GB)")] = "",
    state: Annotated[str, typer.Option(help="State or province code (CA, NY)")] = "",
    region: Annotated[str, typer.Option(help="Data region where its objects are kept")] = "",
    cert_sha256: Annotated[
        str, typer.Option(help="SHA-256 of the TLS client certificate its AE must present")
    ] = "",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Register a facility (or update it) and the AE title it sends from."""
    admin = administration(data_dir, database_url)
    with refusals():
        f = admin.add_facility(
            name,
            cli_actor(),
            ae_title=ae,
            host=host,
            country=country,
            state=state,
            region=region,
            cert_sha256=cert_sha256,
        )
    where = f" from {f.host}" if f.host else ""
    console.print(f"facility {f.name}" + (f" (AE {f.ae_title}{where})" if f.ae_title else ""))


@facility_app.command("list")
def facility_list(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """List facilities."""
    admin = administration(data_dir, database_url)
    for f in admin.index.list_facilities():
        console.print(
            f"{f.name}\tAE={f.ae_title or '-'}\thost={f.host or '*'}\t"
            f"jurisdiction={f.jurisdiction or '-'}\tregion={f.region or '-'}"
        )


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[Role, typer.Option(help="Role")],
    facility: Annotated[
        str | None, typer.Option(help="Facility (facility staff, services)")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    name: Annotated[str, typer.Option(help="Display name")] = "",
    licence: Annotated[
        list[str] | None, typer.Option(help="Jurisdiction licensed in (US-CA…), repeatable")
    ] = None,
    privilege: Annotated[
        list[str] | None, typer.Option(help="Facility credentialed at, repeatable")
    ] = None,
    totp: Annotated[bool, typer.Option("--totp", help="Enrol a TOTP second factor")] = False,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Create an account."""
    admin = administration(data_dir, database_url)
    password = _read_password() if password_stdin else None
    with refusals():
        user = admin.add_user(
            username,
            role,
            cli_actor(),
            facility=facility,
            password=password,
            display_name=name,
            licences=licence or [],
            privileges=privilege or [],
        )
    console.print(f"user {user.username} ({user.role.value}) created")
    if totp:
        console.print(f"second factor: {admin.enroll_totp(user, cli_actor())}")


@user_app.command("list")
def user_list(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """List accounts with their role, facility, licences and privileges."""
    admin = administration(data_dir, database_url)
    names = {f.id: f.name for f in admin.index.list_facilities()}
    identity = admin.auth.identity
    for u in identity.list_users():
        privileges = ", ".join(sorted(names.get(i, "?") for i in identity.privileges(u.id)))
        licences = ", ".join(sorted(identity.licences(u.id)))
        flags = " ".join(f for f, on in (("mfa", u.totp_enabled), ("disabled", u.disabled)) if on)
        console.print(
            f"{u.username}\t{u.role.value}\tfacility={names.get(u.facility_id or 0, '-')}\t"
            f"licences={licences or '-'}\tprivileges={privileges or '-'}\t{flags}"
        )


@user_app.command("passwd")
def user_passwd(
    username: str,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Set a password (read from standard input); older tokens stop working."""
    admin = administration(data_dir, database_url)
    with refusals():
        admin.set_password(admin.user(username), _read_password(), cli_actor())
    console.print(f"password of {username} set")


@user_app.command("totp")
def user_totp(username: str, data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Enrol (or replace) a TOTP second factor; prints the otpauth:// URI for the app."""
    admin = administration(data_dir, database_url)
    with refusals():
        uri = admin.enroll_totp(admin.user(username), cli_actor())
    console.print(uri, soft_wrap=True)


@user_app.command("grant")
def user_grant(
    username: str,
    facility: Annotated[list[str], typer.Option(help="Facility, repeatable")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Grant a radiologist privileges at facilities."""
    admin = administration(data_dir, database_url)
    with refusals():
        admin.grant(admin.user(username), facility, cli_actor())
    console.print(f"{username} privileged at {', '.join(facility)}")


@user_app.command("revoke-privilege")
def user_revoke_privilege(
    username: str,
    facility: Annotated[list[str], typer.Option(help="Facility, repeatable")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Withdraw a radiologist's privileges at facilities."""
    admin = administration(data_dir, database_url)
    with refusals():
        admin.revoke_privileges(admin.user(username), facility, cli_actor())
    console.print(f"{username} no longer privileged at {', '.join(facility)}")


@user_app.command("license")
def user_license(
    username: str,
    jurisdiction: Annotated[list[str], typer.Argument(help="US-CA, GB, DE-BY…")],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Record a radiologist's licences."""
    admin = administration(data_dir, database_url)
    with refusals():
        admin.add_licences(admin.user(username), jurisdiction, cli_actor())
    console.print(f"{username} licensed in {', '.join(jurisdiction)}")


@user_app.command("link")
def user_link(
    username: str,
    subject: Annotated[
        str,
        typer.Option(
            help="The person at the identity provider: SUB (of TELERAD_OIDC_ISSUER) or ISSUER|SUB"
        ),
    ],
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Link an account to its OpenID Connect identity before the first sign-in."""
    admin = administration(data_dir, database_url)
    issuer = settings_from().oidc_issuer
    if "|" not in subject and issuer:
        subject = f"{issuer}|{subject}"
    with refusals():
        admin.link_identity(admin.user(username), subject, cli_actor())
    console.print(f"{username} linked to {subject}")


@user_app.command("disable")
def user_disable(username: str, data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Disable an account; its tokens and sessions stop working at once."""
    admin = administration(data_dir, database_url)
    with refusals():
        admin.disable(admin.user(username), cli_actor())
    console.print(f"{username} disabled")


@token_app.command("create")
def token_create(
    username: str,
    scope: Annotated[
        str | None, typer.Option(help=f"Scopes ({' '.join(p.value for p in Permission)})")
    ] = None,
    minutes: Annotated[
        int | None, typer.Option(help="Lifetime (default TELERAD_TOKEN_MINUTES)")
    ] = None,
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Print a bearer token for USERNAME (and nothing else)."""
    admin = administration(data_dir, database_url)
    with refusals():
        user = admin.user(username)
        token = admin.create_token(
            user,
            cli_actor(),
            parse_permissions(scope),
            timedelta(minutes=minutes) if minutes is not None else None,
        )
    print(token)


@token_app.command("revoke")
def token_revoke(username: str, data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """Revoke every token and session of USERNAME."""
    admin = administration(data_dir, database_url)
    with refusals():
        admin.revoke_tokens(admin.user(username), cli_actor())
    console.print(f"tokens of {username} revoked")
