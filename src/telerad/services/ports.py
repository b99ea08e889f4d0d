"""Ports: what the use cases need from the outside world. Each has a real and a fake."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from telerad.domain.model import (
    Facility,
    InstanceHeader,
    InstanceLocation,
    Level,
    Node,
    StoredObject,
)
from telerad.domain.query import Query
from telerad.domain.read_status import ReadState
from telerad.domain.reading_entries import (
    AlertRow,
    EntryChange,
    FinishedRead,
    History,
    OpenEntry,
    Reopened,
    RosterRow,
)
from telerad.services.readers import ProfileStore
from telerad.workflow.model import ReadingStudy


class UnitOfWork(Protocol):
    """One transaction over the stores a use case writes: all of its writes are kept, or
    none is (storage.db.unit_of_work.SqlUnitOfWork; tests/fakes: FakeUnitOfWork).

    ``with unit:`` opens it on this thread, commits when the block ends and rolls every
    write of the block back when it raises. Opened again inside (a use case calling
    another), it nests: the inner block's writes are undone alone when it raises and
    the outer goes on. Stores written on this thread inside the block write in it;
    outside any, each store write commits on its own. A unit costs nothing until it
    writes.

    Lock order: a use case takes its own locks *before* opening a unit, never inside
    one, so that no thread holding such a lock waits on the unit's transaction while
    the unit waits on that lock.
    """

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def after_commit(self, action: Callable[[], object]) -> None:
        """Run ``action`` once the unit open on this thread is committed (at once when none
        is open; never when it rolls back): for what must not happen for writes that may
        still be undone, such as forwarding an audit record."""
        ...

    def on_rollback(self, action: Callable[[], object]) -> None:
        """Run ``action`` when the innermost unit open on this thread rolls back (nothing
        when none is open): to forget what memory holds of the writes undone."""
        ...


class Immediate:
    """No unit of work: each store write commits on its own, as outside any unit."""

    def __enter__(self) -> Immediate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def after_commit(self, action: Callable[[], object]) -> None:
        action()

    def on_rollback(self, action: Callable[[], object]) -> None:
        return None


class BlobStore(Protocol):
    def put(
        self, facility_id: int, sop_instance_uid: str, data: bytes, sha256: str | None = None
    ) -> StoredObject:
        """Durably write ``data``; return only once it would survive a crash."""
        ...

    def stage(self, facility_id: int, data: bytes, sha256: str | None = None) -> Any:
        """Start writing ``data``; the handle goes to :meth:`commit` or :meth:`discard`."""
        ...

    def commit(self, staged: Any, sop_instance_uid: str) -> StoredObject:
        """Finish a staged write: durable under its final key when this returns."""
        ...

    def discard(self, staged: Any) -> None: ...

    def get(self, key: str, sha256: str | None = None) -> bytes:
        """Read an object; when ``sha256`` is given, raise :class:`IntegrityError` on mismatch."""
        ...

    def path(self, key: str) -> str: ...

    def key_for(self, facility_id: int, sop_instance_uid: str, content_sha256: str) -> str: ...

    def adopt(self, path: Path, key: str) -> None:
        """Move a recovered temporary file to ``key``, durably."""
        ...

    def delete(self, key: str) -> None: ...

    def read_staged(self, path: Path, facility_id: int) -> bytes:
        """The object in a temporary file a crash left behind (decrypted when sealed)."""
        ...


class StorageRefused(RuntimeError):
    """The object may not be kept here (e.g. its facility's data region has no storage)."""


class IntegrityError(RuntimeError):
    """Stored bytes do not match the digest recorded when they were written."""


class Index(Protocol):
    def facility_by_name(self, name: str) -> Facility | None: ...

    def facility_by_ae(self, ae_title: str) -> Facility | None: ...

    def add_facility(self, name: str, ae_title: str | None = None, **details: str) -> Facility: ...

    def update_facility(self, facility_id: int, **values: str | None) -> Facility: ...

    def facility_by_id(self, facility_id: int) -> Facility | None: ...

    def list_facilities(self) -> list[Facility]: ...

    def add_node(self, node: Node) -> Node: ...

    def node_by_ae(self, ae_title: str) -> Node | None: ...

    def list_nodes(self) -> list[Node]: ...

    def find_instance(self, sop_instance_uid: str) -> InstanceLocation | None: ...

    def study_facility(self, study_instance_uid: str) -> int | None: ...

    def study_facilities(self, study_instance_uids: Sequence[str]) -> dict[str, int]:
        """The facility of each of these studies that exists."""
        ...

    def add_instance(
        self,
        facility_id: int,
        header: InstanceHeader,
        blob: StoredObject,
        before_commit: Callable[[], None] | None = None,
    ) -> bool:
        """Index an instance; False when the SOP Instance UID is already indexed.

        ``before_commit``, when given, may be called once the rows are written
        and before they are committed (an exception from it rolls them back),
        so the caller's last step before the commit overlaps the writing. The
        index may also not call it (when refused, or to avoid holding a busy
        writer): the caller checks.
        """
        ...

    def add_instances(
        self, facility_id: int, items: Sequence[tuple[InstanceHeader, StoredObject]]
    ) -> bool:
        """Index every item in one transaction; False, with nothing indexed, when any
        is refused (the caller then indexes them one by one to learn which)."""
        ...

    def search(self, query: Query) -> list[dict[str, object]]: ...

    def instances(
        self,
        level: Level,
        uids: Sequence[str],
        facility_ids: frozenset[int] | None = None,
    ) -> list[InstanceLocation]:
        """Instances under a patient/study/series/instance, in series and instance order."""
        ...

    def get_metadata(self, sop_instance_uids: Sequence[str]) -> dict[str, str]: ...

    def put_metadata(self, items: dict[str, str]) -> None: ...

    def iter_studies(self) -> Iterator[dict[str, object]]: ...


class ReadingStore(ProfileStore, Protocol):
    """Where worklist entries, their history, alerts and the roster are kept
    (storage.db.reading_repository.SqlReading).

    Reader profiles live in the same store: `telerad reader` and the demo hand
    ``ReadingService.store`` to :class:`~telerad.services.readers.ReaderAdmin`.
    """

    def radiologists(self) -> list[RosterRow]: ...

    def live_sessions(
        self, seen_since: datetime, created_since: datetime, tokens_since: datetime | None = None
    ) -> frozenset[int]:
        """Who has a live browser session, or used a bearer token since ``tokens_since``."""
        ...

    def note_token_use(self, user_id: int, at: datetime | None) -> None: ...

    def add_entry(self, study: ReadingStudy) -> int: ...

    def reopen(self, study: ReadingStudy) -> Reopened | None:
        """Take up the study's withdrawn entry again (its routing facts from ``study``,
        its readiness time and deadline kept); None when its latest entry is not
        withdrawn."""
        ...

    def save(self, changes: Iterable[EntryChange]) -> None:
        """Apply what commands changed (values, history rows, alerts) in one transaction."""
        ...

    def open_entries(self) -> list[OpenEntry]: ...

    def history(self, study_uid: str) -> History | None: ...

    def read_states(self, study_uids: Sequence[str]) -> dict[str, ReadState]:
        """The latest read of each of these studies that has been on the worklist."""
        ...

    def finished(
        self, since: datetime, facility_ids: frozenset[int] | None = None
    ) -> list[FinishedRead]: ...

    def live_alerts(self, facility_ids: frozenset[int] | None) -> list[AlertRow]: ...

    def acknowledge_alert(
        self, alert_id: int, user_id: int, at: datetime, facility_ids: frozenset[int] | None
    ) -> AlertRow | None:
        """Mark a live alert seen; None when there is none with that id in scope."""
        ...
