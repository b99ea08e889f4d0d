"""Accounts, licences, privileges, browser sessions and break-glass grants (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from telerad.domain.identity import BreakGlassGrant, Role, User
from telerad.storage.db import tables as t
from telerad.storage.db.times import utc


def _user_from(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        role=Role(row.role),
        facility_id=row.facility_id,
        display_name=row.display_name,
        disabled=bool(row.disabled),
        totp_enabled=row.totp_secret is not None,
        token_version=row.token_version,
        failed_logins=row.failed_logins,
        locked_until=utc(row.locked_until),
        oidc_subject=row.oidc_subject,
    )


@dataclass(frozen=True)
class SessionRow:
    user_id: int
    created_at: datetime
    last_seen: datetime
    auth_time: datetime


class SqlIdentity:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- accounts -------------------------------------------------------------------
    def add_user(
        self,
        username: str,
        role: Role,
        facility_id: int | None = None,
        password_hash: str | None = None,
        display_name: str = "",
    ) -> User:
        with self.engine.begin() as conn:
            pk = conn.execute(
                insert(t.app_user)
                .values(
                    username=username,
                    role=role.value,
                    facility_id=facility_id,
                    password_hash=password_hash,
                    display_name=display_name,
                )
                .returning(t.app_user.c.id)
            ).scalar_one()
        user = self.user_by_id(pk)
        assert user is not None
        return user

    def _one(self, where: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(t.app_user).where(where)).first()

    def user_by_name(self, username: str) -> User | None:
        row = self._one(t.app_user.c.username == username)
        return _user_from(row) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        row = self._one(t.app_user.c.id == user_id)
        return _user_from(row) if row else None

    def user_by_oidc_subject(self, subject: str) -> User | None:
        row = self._one(t.app_user.c.oidc_subject == subject)
        return _user_from(row) if row else None

    def credentials(self, user_id: int) -> tuple[str | None, str | None]:
        """(password hash, encrypted TOTP secret) of an account."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.app_user.c.password_hash, t.app_user.c.totp_secret).where(
                    t.app_user.c.id == user_id
                )
            ).one()
        return row.password_hash, row.totp_secret

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.app_user).order_by(t.app_user.c.username)).all()
        return [_user_from(r) for r in rows]

    def count_users(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.app_user)).scalar_one())

    def update_user(self, user_id: int, **values: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t.app_user).where(t.app_user.c.id == user_id).values(**values))

    def set_password(self, user_id: int, password_hash: str) -> None:
        """A new password; tokens issued before it stop working."""
        self.update_user(
            user_id,
            password_hash=password_hash,
            token_version=t.app_user.c.token_version + 1,
            failed_logins=0,
            locked_until=None,
        )

    def revoke_tokens(self, user_id: int) -> None:
        self.update_user(user_id, token_version=t.app_user.c.token_version + 1)
        with self.engine.begin() as conn:
            conn.execute(delete(t.web_session).where(t.web_session.c.user_id == user_id))

    # -- licences and privileges ------------------------------------------------------
    def _add_missing(
        self, table: Any, column: str, user_id: int, values: Sequence[object], have: frozenset[Any]
    ) -> None:
        """Insert the (user, value) rows not there yet (repeats and existing ones skipped)."""
        new = [v for v in dict.fromkeys(values) if v not in have]
        if new:
            with self.engine.begin() as conn:
                conn.execute(insert(table), [{"user_id": user_id, column: v} for v in new])

    def add_licences(self, user_id: int, jurisdictions: Sequence[str]) -> None:
        self._add_missing(t.licence, "jurisdiction", user_id, jurisdictions, self.licences(user_id))

    def licences(self, user_id: int) -> frozenset[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.licence.c.jurisdiction).where(t.licence.c.user_id == user_id)
            ).all()
        return frozenset(r[0] for r in rows)

    def grant_privileges(self, user_id: int, facility_ids: Sequence[int]) -> None:
        self._add_missing(
            t.privilege, "facility_id", user_id, facility_ids, self.privileges(user_id)
        )

    def revoke_privileges(self, user_id: int, facility_ids: Sequence[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(t.privilege).where(
                    t.privilege.c.user_id == user_id,
                    t.privilege.c.facility_id.in_(list(facility_ids)),
                )
            )

    def privileges(self, user_id: int) -> frozenset[int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.privilege.c.facility_id).where(t.privilege.c.user_id == user_id)
            ).all()
        return frozenset(r[0] for r in rows)

    # -- browser sessions --------------------------------------------------------------
    def add_session(self, token_sha256: str, user_id: int, now: datetime, source: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.web_session).values(
                    token_sha256=token_sha256,
                    user_id=user_id,
                    created_at=now,
                    last_seen=now,
                    auth_time=now,
                    source_address=source[:255],
                )
            )

    def session(self, token_sha256: str) -> SessionRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.web_session).where(t.web_session.c.token_sha256 == token_sha256)
            ).first()
        if row is None:
            return None
        return SessionRow(
            row.user_id,
            utc(row.created_at),
            utc(row.last_seen),
            utc(row.auth_time),
        )

    def touch_session(
        self, token_sha256: str, last_seen: datetime, auth_time: datetime | None = None
    ) -> None:
        values: dict[str, datetime] = {"last_seen": last_seen}
        if auth_time is not None:
            values["auth_time"] = auth_time
        with self.engine.begin() as conn:
            conn.execute(
                update(t.web_session)
                .where(t.web_session.c.token_sha256 == token_sha256)
                .values(**values)
            )

    def delete_session(self, token_sha256: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.web_session).where(t.web_session.c.token_sha256 == token_sha256))

    # -- break-glass -----------------------------------------------------------------------
    def add_break_glass(
        self, user_id: int, study_uid: str, reason: str, now: datetime, expires: datetime
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.break_glass).values(
                    user_id=user_id,
                    study_instance_uid=study_uid,
                    reason=reason,
                    granted_at=now,
                    expires_at=expires,
                )
            )

    def active_break_glass(self, user_id: int, now: datetime) -> frozenset[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.break_glass.c.study_instance_uid).where(
                    t.break_glass.c.user_id == user_id, t.break_glass.c.expires_at > now
                )
            ).all()
        return frozenset(r[0] for r in rows)

    def break_glass_grants(self, since: datetime) -> list[BreakGlassGrant]:
        b, u = t.break_glass, t.app_user
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(b, u.c.username)
                .join(u, u.c.id == b.c.user_id)
                .where(b.c.granted_at >= since)
                .order_by(b.c.granted_at)
            ).all()
        return [
            BreakGlassGrant(
                r.id,
                r.user_id,
                r.username,
                r.study_instance_uid,
                r.reason,
                utc(r.granted_at),
                utc(r.expires_at),
            )
            for r in rows
        ]
