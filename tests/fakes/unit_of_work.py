"""A unit of work over the fake stores (the real one: storage.db.unit_of_work.SqlUnitOfWork).

Entering takes a copy of every store it covers; a block that raises puts the copies
back, so the fake stores undo their writes as a rolled-back transaction would. Nested
blocks are savepoints: each copies on entry and is undone alone. Row ids handed out
meanwhile are not given back (a database's sequences are not either). It counts what
happened (``commits``, ``rollbacks`` of outermost units; ``undone`` of any level) so a
test can tell a unit was used.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

Action = Callable[[], object]


@dataclass
class _Level:
    copies: list[dict[str, Any]]
    after_commit: list[Action] = field(default_factory=list)
    on_rollback: list[Action] = field(default_factory=list)


def _shared(value: object, memo: dict[int, Any]) -> None:
    """Kept as they are, not copied: other stores, clocks, id counters."""
    if isinstance(value, itertools.count) or (callable(value) and not isinstance(value, type)):
        memo[id(value)] = value
    elif isinstance(value, dict):
        for item in value.values():
            _shared(item, memo)


class FakeUnitOfWork:
    def __init__(self, *stores: object) -> None:
        self.stores = stores
        self.commits = 0
        self.rollbacks = 0
        self.undone = 0
        self._local = threading.local()

    @property
    def _levels(self) -> list[_Level]:
        levels: list[_Level] | None = getattr(self._local, "levels", None)
        if levels is None:
            levels = self._local.levels = []
        return levels

    @property
    def open(self) -> bool:
        return bool(self._levels)

    def _copies(self) -> list[dict[str, Any]]:
        memo: dict[int, Any] = {id(store): store for store in self.stores}
        for store in self.stores:
            for value in vars(store).values():
                _shared(value, memo)
        return [copy.deepcopy(vars(store), memo) for store in self.stores]

    def __enter__(self) -> FakeUnitOfWork:
        self._levels.append(_Level(self._copies()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        level = self._levels.pop()
        outermost = not self._levels
        if exc_type is not None:
            for store, kept in zip(self.stores, level.copies, strict=True):
                vars(store).clear()
                vars(store).update(kept)
            self.undone += 1
            self.rollbacks += outermost
            for action in level.on_rollback:
                action()
            return
        if not outermost:
            parent = self._levels[-1]
            parent.after_commit.extend(level.after_commit)
            parent.on_rollback.extend(a for a in level.on_rollback if a not in parent.on_rollback)
            return
        self.commits += 1
        for action in level.after_commit:
            action()

    def after_commit(self, action: Action) -> None:
        if not self._levels:
            action()
            return
        self._levels[-1].after_commit.append(action)

    def on_rollback(self, action: Action) -> None:
        if self._levels and action not in self._levels[-1].on_rollback:
            self._levels[-1].on_rollback.append(action)
