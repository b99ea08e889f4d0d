"""What every command shares: settings from the environment and flags, consoles, the actor."""

from __future__ import annotations

import atexit
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from telerad.config import Settings

if TYPE_CHECKING:
    from telerad.bootstrap import Platform

console = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="TELERAD_DATA_DIR")]
DbUrl = Annotated[str | None, typer.Option("--database-url", help="TELERAD_DATABASE_URL")]


def settings_from(**overrides: object) -> Settings:
    """Environment settings, with command-line flags taking precedence when given."""
    base = Settings()
    values = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=values) if values else base


def platform_from(data_dir: Path | None, database_url: str | None) -> Platform:
    """The platform, opened for the command that runs and closed when the command's
    process ends (also on an error or a refusal): the next start finds a clean stop and
    has nothing to recover. A command is one process, so the process's end is the
    command's."""
    from telerad.bootstrap import open_platform

    platform = open_platform(settings_from(data_dir=data_dir, database_url=database_url))
    atexit.register(platform.close)
    return platform


def cli_actor() -> str:
    """Who runs an administrative command, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment
        return "cli"


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)


@contextmanager
def refusals() -> Iterator[None]:
    """A change the rules refuse ends the command with its reason (exit 2), no traceback."""
    from telerad.domain.identity import IdentityError
    from telerad.services.people import AdminError

    try:
        yield
    except (AdminError, IdentityError) as exc:
        raise fail(str(exc)) from exc
