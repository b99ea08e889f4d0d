"""In-memory accounts, licences, privileges, sessions and break-glass grants
(the real store: storage.db.identity_repository.SqlIdentity).

The same refusals as the tables: a user name, an OpenID subject and a session
token are unique (``sqlalchemy.exc.IntegrityError``); an unknown column in
``update_user`` is an error. The reading store's fake reads its roster and live
sessions from here, as the SQL one reads these tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime

from tests.fakes.common import duplicate, ids

from telerad.domain.identity import Role, User


@dataclass
class Account:
    """An account: the user the services see, and what only sign-in and the roster read."""

    user: User
    password_hash: str | None = None
    totp_secret: str | None = None
    token_seen_at: datetime | None = None


_USER_COLUMNS = frozenset(f.name for f in fields(User)) - {"id", "totp_enabled"}
_OTHER_COLUMNS = frozenset({"password_hash", "totp_secret", "token_seen_at"})


@dataclass(frozen=True)
class SessionRow:
    user_id: int
    created_at: datetime
    last_seen: datetime
    auth_time: datetime
    source_address: str = ""


@dataclass(frozen=True)
class Grant:
    id: int
    user_id: int
    username: str
    study_instance_uid: str
    reason: str
    granted_at: datetime
    expires_at: datetime


class FakeIdentity:
    def __init__(self) -> None:
        self.users: dict[int, Account] = {}
        self._user_ids = ids()
        self._licences: dict[int, set[str]] = {}
        self._privileges: dict[int, set[int]] = {}
        self.sessions: dict[str, SessionRow] = {}
        self.grants: list[Grant] = []
        self._grant_ids = ids()

    # -- accounts -------------------------------------------------------------------
    def add_user(
        self,
        username: str,
        role: Role,
        facility_id: int | None = None,
        password_hash: str | None = None,
        display_name: str = "",
    ) -> User:
        if self._find(lambda u: u.username == username) is not None:
            raise duplicate("app_user.username")
        user = User(next(self._user_ids), username, role, facility_id, display_name)
        self.users[user.id] = Account(user, password_hash)
        return user

    def _find(self, where: Callable[[User], bool]) -> User | None:
        return next((a.user for a in self.users.values() if where(a.user)), None)

    def user_by_name(self, username: str) -> User | None:
        return self._find(lambda u: u.username == username)

    def user_by_id(self, user_id: int) -> User | None:
        account = self.users.get(user_id)
        return account.user if account else None

    def user_by_oidc_subject(self, subject: str) -> User | None:
        return self._find(lambda u: u.oidc_subject == subject)

    def credentials(self, user_id: int) -> tuple[str | None, str | None]:
        account = self.users[user_id]  # the SQL store's .one() fails on a missing one too
        return account.password_hash, account.totp_secret

    def list_users(self) -> list[User]:
        return sorted((a.user for a in self.users.values()), key=lambda u: u.username)

    def count_users(self) -> int:
        return len(self.users)

    def update_user(self, user_id: int, **values: object) -> None:
        unknown = set(values) - _USER_COLUMNS - _OTHER_COLUMNS
        if unknown:
            raise ValueError(f"app_user has no column {sorted(unknown)}")
        subject = values.get("oidc_subject")
        if subject is not None:
            other = self._find(lambda u: u.oidc_subject == subject and u.id != user_id)
            if other is not None:
                raise duplicate("app_user.oidc_subject")
        account = self.users.get(user_id)
        if account is None:
            return  # an UPDATE that matches no row changes nothing
        if "disabled" in values:
            values["disabled"] = bool(values["disabled"])
        kept = {k: v for k, v in values.items() if k in _OTHER_COLUMNS}
        account = replace(account, **kept)  # type: ignore[arg-type]
        changed = {k: v for k, v in values.items() if k in _USER_COLUMNS}
        totp = account.totp_secret is not None
        account.user = replace(account.user, **changed, totp_enabled=totp)  # type: ignore[arg-type]
        self.users[user_id] = account

    def set_password(self, user_id: int, password_hash: str) -> None:
        self.update_user(
            user_id,
            password_hash=password_hash,
            token_version=self.users[user_id].user.token_version + 1,
            failed_logins=0,
            locked_until=None,
        )

    def revoke_tokens(self, user_id: int) -> None:
        account = self.users.get(user_id)
        if account is not None:
            self.update_user(user_id, token_version=account.user.token_version + 1)
        for key in [k for k, s in self.sessions.items() if s.user_id == user_id]:
            del self.sessions[key]

    # -- licences and privileges ------------------------------------------------------
    def add_licences(self, user_id: int, jurisdictions: Sequence[str]) -> None:
        self._licences.setdefault(user_id, set()).update(jurisdictions)

    def licences(self, user_id: int) -> frozenset[str]:
        return frozenset(self._licences.get(user_id, ()))

    def grant_privileges(self, user_id: int, facility_ids: Sequence[int]) -> None:
        self._privileges.setdefault(user_id, set()).update(facility_ids)

    def revoke_privileges(self, user_id: int, facility_ids: Sequence[int]) -> None:
        self._privileges.get(user_id, set()).difference_update(facility_ids)

    def privileges(self, user_id: int) -> frozenset[int]:
        return frozenset(self._privileges.get(user_id, ()))

    # -- browser sessions --------------------------------------------------------------
    def add_session(self, token_sha256: str, user_id: int, now: datetime, source: str) -> None:
        if token_sha256 in self.sessions:
            raise duplicate("web_session.token_sha256")
        self.sessions[token_sha256] = SessionRow(user_id, now, now, now, source[:255])

    def session(self, token_sha256: str) -> SessionRow | None:
        return self.sessions.get(token_sha256)

    def touch_session(
        self, token_sha256: str, last_seen: datetime, auth_time: datetime | None = None
    ) -> None:
        row = self.sessions.get(token_sha256)
        if row is not None:
            self.sessions[token_sha256] = replace(
                row, last_seen=last_seen, auth_time=auth_time or row.auth_time
            )

    def delete_session(self, token_sha256: str) -> None:
        self.sessions.pop(token_sha256, None)

    # -- break-glass -----------------------------------------------------------------------
    def add_break_glass(
        self, user_id: int, study_uid: str, reason: str, now: datetime, expires: datetime
    ) -> None:
        username = self.users[user_id].user.username
        grant = Grant(next(self._grant_ids), user_id, username, study_uid, reason, now, expires)
        self.grants.append(grant)

    def active_break_glass(self, user_id: int, now: datetime) -> frozenset[str]:
        return frozenset(
            g.study_instance_uid for g in self.grants if g.user_id == user_id and g.expires_at > now
        )

    def break_glass_grants(self, since: datetime) -> list[Grant]:
        return sorted((g for g in self.grants if g.granted_at >= since), key=lambda g: g.granted_at)
