"""Leases in the database: one holder per duty, renewed before it expires.

Every step is one conditional statement, so two processes racing for a lease
cannot both get it: the database decides (SQLite's single writer, PostgreSQL's
row lock on UPDATE and the primary key on INSERT).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from telerad.domain.leases import Lease
from telerad.storage.db import tables as t
from telerad.storage.db.times import utc

_L = t.runtime_lease


class SqlLeases:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acquire(self, name: str, holder: str, address: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease: True when ``holder`` holds it until ``now + ttl``."""
        until = now + ttl
        with self.engine.begin() as conn:
            done = conn.execute(
                update(_L)
                .where(_L.c.name == name, or_(_L.c.holder == holder, _L.c.expires_at < now))
                .values(holder=holder, address=address, expires_at=until)
            )
            if done.rowcount:
                return True
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(_L).values(name=name, holder=holder, address=address, expires_at=until)
                )
            return True
        except IntegrityError:  # someone else holds it, or took it first
            return False

    def holder(self, name: str, now: datetime) -> Lease | None:
        """Who holds the lease now (None: nobody, or it expired)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_L).where(_L.c.name == name)).first()
        if row is None:
            return None
        expires = utc(row.expires_at)
        assert expires is not None
        if expires < now:
            return None
        return Lease(row.name, row.holder, row.address, expires)

    def release(self, name: str, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_L).where(_L.c.name == name, _L.c.holder == holder))
