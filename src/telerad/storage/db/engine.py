"""Engines and migrations. Built in bootstrap, never at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, durable: bool = True) -> Engine:
    """``durable``: commits survive power loss too (SQLite synchronous=FULL)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the writer. FULL syncs the WAL on every
            # commit, so an acknowledged instance's index row survives power loss
            # as its fsynced blob does; NORMAL survives a process crash only.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA case_sensitive_like=ON")
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration."""
    command.upgrade(alembic_config(engine), "head")
