"""The unit of work over the SQL stores: one connection and one transaction per thread.

:class:`SqlUnitOfWork` is the port (:class:`~telerad.services.ports.UnitOfWork`) for
the stores of one engine. While a unit is open on a thread, every store of that engine
writing on that thread writes through :func:`writing`, and reads through
:func:`reading`, on the unit's connection; outside a unit they open their own, as they
always did. Nothing is taken until the first write: the connection is opened and the
transaction begun then (on SQLite with ``BEGIN IMMEDIATE``, so the write lock is taken
before anything is read on that connection and the unit never has to upgrade a read
snapshot, which SQLite would refuse at once). A unit that only reads costs nothing.

A unit opened inside another is a savepoint, and so is each store write inside a unit:
a write the store refuses and handles (a duplicate key turned into a domain error) is
undone alone and the unit goes on, on PostgreSQL too, where a failed statement would
otherwise abort the whole transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import NestedTransaction

log = logging.getLogger(__name__)

Action = Callable[[], object]


@dataclass
class _Level:
    """One ``with`` of a unit: its savepoint (once the unit writes) and its callbacks."""

    savepoint: NestedTransaction | None = None
    after_commit: list[Action] = field(default_factory=list)
    on_rollback: list[Action] = field(default_factory=list)


@dataclass
class _Unit:
    levels: list[_Level]
    conn: Connection | None = None


_local = threading.local()


def _units() -> dict[Engine, _Unit]:
    units: dict[Engine, _Unit] | None = getattr(_local, "units", None)
    if units is None:
        units = _local.units = {}
    return units


def _open(engine: Engine) -> _Unit | None:
    return _units().get(engine)


def _begun(engine: Engine, unit: _Unit) -> Connection:
    """The unit's connection, its transaction begun on first use with a savepoint for
    each level opened inside the outermost one."""
    if unit.conn is None:
        conn = engine.connect()
        try:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.begin()
            for level in unit.levels[1:]:
                level.savepoint = conn.begin_nested()
        except BaseException:
            conn.close()
            raise
        unit.conn = conn
    return unit.conn


def joined(engine: Engine) -> Connection | None:
    """The connection of the unit open on this thread, begun (None outside a unit): for a
    store that manages its own transaction outside one (the audit trail)."""
    unit = _open(engine)
    return _begun(engine, unit) if unit is not None else None


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection for one store write, in a transaction: the unit's (as a savepoint)
    when one is open on this thread, else its own, committed when the block ends."""
    unit = _open(engine)
    if unit is None:
        with engine.begin() as conn:
            yield conn
        return
    conn = _begun(engine, unit)
    with conn.begin_nested():
        yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection to read with: the unit's once it has written (so it reads its own
    writes), else one of its own."""
    unit = _open(engine)
    if unit is None or unit.conn is None:
        with engine.connect() as conn:
            yield conn
        return
    yield unit.conn


def _run(actions: list[Action], what: str) -> None:
    for action in actions:
        try:
            action()
        except Exception:
            log.exception("unit of work: an action %s failed", what)


class SqlUnitOfWork:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> SqlUnitOfWork:
        unit = _open(self.engine)
        if unit is None:
            _units()[self.engine] = _Unit([_Level()])
            return self
        level = _Level()
        if unit.conn is not None:
            level.savepoint = unit.conn.begin_nested()
        unit.levels.append(level)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        unit = _units()[self.engine]
        level = unit.levels.pop()
        if unit.levels:
            self._leave(unit.levels[-1], level, failed=exc_type is not None)
            return
        del _units()[self.engine]
        conn = unit.conn
        if conn is None:  # nothing was written
            _run(level.on_rollback if exc_type else level.after_commit, "after the unit")
            return
        try:
            if exc_type is None:
                conn.commit()
            else:
                conn.rollback()
        except BaseException:
            conn.close()
            _run(level.on_rollback, "on rollback")
            raise
        conn.close()
        _run(level.on_rollback if exc_type else level.after_commit, "after the unit")

    @staticmethod
    def _leave(parent: _Level, level: _Level, failed: bool) -> None:
        """Close a nested level: its savepoint released into the parent, or rolled back."""
        if level.savepoint is not None:
            if failed:
                level.savepoint.rollback()
            else:
                level.savepoint.commit()
        if failed:
            _run(level.on_rollback, "on rollback")
            return
        parent.after_commit.extend(level.after_commit)
        parent.on_rollback.extend(a for a in level.on_rollback if a not in parent.on_rollback)

    def after_commit(self, action: Action) -> None:
        unit = _open(self.engine)
        if unit is None:
            action()
            return
        unit.levels[-1].after_commit.append(action)

    def on_rollback(self, action: Action) -> None:
        unit = _open(self.engine)
        if unit is not None and action not in unit.levels[-1].on_rollback:
            unit.levels[-1].on_rollback.append(action)
