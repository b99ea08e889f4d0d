"""Reader profiles as use cases: set what a radiologist reads, add and remove shifts.

Every change is audited like the other account changes (who changed whose profile).
A running server picks changes up at the worklist's next tick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from telerad.domain.audit import EventID
from telerad.domain.identity import Role, User
from telerad.domain.readers import (
    ProfileError,
    ReaderProfile,
    ShiftRule,
    check_zone,
    modality,
    read_kind,
    subspecialty,
)
from telerad.services.audit import AuditService


class ProfileStore(Protocol):
    """Where reader profiles and shifts are kept (storage.db.reading_repository.SqlReading)."""

    def profile(self, user_id: int) -> ReaderProfile | None: ...

    def put_profile(self, profile: ReaderProfile, now: datetime) -> None: ...

    def add_shift(self, user_id: int, rule: ShiftRule) -> int: ...

    def remove_shift(self, user_id: int, shift_id: int) -> bool: ...


class Accounts(Protocol):
    """The accounts a profile belongs to (storage.db.identity_repository.SqlIdentity)."""

    def user_by_name(self, username: str) -> User | None: ...

    def licences(self, user_id: int) -> frozenset[str]: ...

    def privileges(self, user_id: int) -> frozenset[int]: ...


@dataclass(frozen=True)
class ProfileChange:
    """What ``telerad reader set`` asks for; None leaves a field as it is."""

    subspecialties: Sequence[str] | None = None
    modalities: Sequence[str] | None = None
    read_kinds: Sequence[str] | None = None
    rvu_per_hour: float | None = None
    queue_cap_rvu: float | None = None
    clear_cap: bool = False
    tz: str | None = None


@dataclass(frozen=True)
class ReaderCard:
    """Everything routing knows of one radiologist, for `telerad reader show`."""

    user: User
    licences: frozenset[str]
    facility_ids: frozenset[int]
    profile: ReaderProfile | None


class ReaderAdmin:
    def __init__(
        self,
        store: ProfileStore,
        identity: Accounts,
        audit: AuditService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.identity = identity
        self.audit = audit
        self.clock = clock
        #: Facility id → name, for showing privileges.
        self.facility_name: Callable[[int], str] = str

    def _log(self, actor: str, detail: str) -> None:
        self.audit.record(EventID.SECURITY_ALERT, actor, actor_is_user=True, detail=detail)

    def radiologist(self, username: str) -> User:
        user = self.identity.user_by_name(username)
        if user is None:
            raise ProfileError(f"no user named {username}")
        if user.role is not Role.RADIOLOGIST:
            raise ProfileError(f"{username} is a {user.role}: reader profiles are for radiologists")
        return user

    def set_profile(self, username: str, change: ProfileChange, actor: str) -> ReaderProfile:
        user = self.radiologist(username)
        profile = self.store.profile(user.id) or ReaderProfile(user.id)
        values: dict[str, object] = {}
        if change.subspecialties is not None:
            values["subspecialties"] = frozenset(subspecialty(s) for s in change.subspecialties)
        if change.modalities is not None:
            values["modalities"] = frozenset(modality(m) for m in change.modalities)
        if change.read_kinds is not None:
            values["read_kinds"] = frozenset(read_kind(k) for k in change.read_kinds)
        if change.rvu_per_hour is not None:
            values["rvu_per_hour"] = change.rvu_per_hour
        if change.clear_cap:
            values["queue_cap_rvu"] = None
        elif change.queue_cap_rvu is not None:
            values["queue_cap_rvu"] = change.queue_cap_rvu
        if change.tz is not None:
            values["tz"] = check_zone(change.tz.strip())
        updated = replace(profile, **values)  # type: ignore[arg-type]
        self.store.put_profile(updated, self.clock())
        self._log(actor, f"reader profile of {user.username} set: {', '.join(sorted(values))}")
        return updated

    def add_shift(self, username: str, rule: ShiftRule, actor: str) -> ShiftRule:
        user = self.radiologist(username)
        if self.store.profile(user.id) is None:
            self.store.put_profile(ReaderProfile(user.id), self.clock())
        shift_id = self.store.add_shift(user.id, rule)
        profile = self.store.profile(user.id)
        assert profile is not None
        added = replace(rule, id=shift_id)
        self._log(actor, f"shift of {user.username} added: {added.describe(profile.tz)}")
        return added

    def remove_shift(self, username: str, shift_id: int, actor: str) -> None:
        user = self.radiologist(username)
        if not self.store.remove_shift(user.id, shift_id):
            raise ProfileError(f"{username} has no shift {shift_id}")
        self._log(actor, f"shift {shift_id} of {user.username} removed")

    def card(self, username: str) -> ReaderCard:
        user = self.radiologist(username)
        return ReaderCard(
            user,
            self.identity.licences(user.id),
            self.identity.privileges(user.id),
            self.store.profile(user.id),
        )
