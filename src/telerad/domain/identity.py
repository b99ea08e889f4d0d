"""People, roles and what each may see: pure rules, no I/O.

The reading network (the platform operator) serves facilities (the tenants).
Who may see what is decided here once, and every adapter (DICOMweb, REST,
DIMSE) asks the same question: which facilities' data does this principal see?

* network admins see every facility;
* facility users and admins see their own facility;
* radiologists see the facilities where they hold privileges (credentialing is
  data: :class:`Privilege` rows, not code);
* auditors see the audit trail, no patient data;
* service accounts (AI engines, edge gateways) see their facility, or every
  facility when they are registered for the whole network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from telerad.domain.modalities import InstanceOrigin


class Role(enum.StrEnum):
    RADIOLOGIST = "radiologist"
    FACILITY_USER = "facility-user"
    FACILITY_ADMIN = "facility-admin"
    NETWORK_ADMIN = "network-admin"
    AUDITOR = "auditor"
    SERVICE = "service"


class Permission(enum.StrEnum):
    """Token scopes; a token carries a subset of its user's role permissions."""

    READ = "dicomweb:read"  # search and retrieve images and metadata
    WRITE = "dicomweb:write"  # store instances (STOW-RS, C-STORE)
    ADMIN = "admin"  # facilities, users, nodes (own facility for facility admins)
    AUDIT = "audit"  # read and export the audit trail
    ORDERS_READ = "orders:read"  # orders, stations and slots of the facilities seen
    ORDERS_WRITE = "orders:write"  # place, revise, cancel and schedule orders; stations, slots
    READING = "reading"  # the own reading worklist: see, claim, release, mark read


_ORDERS = frozenset({Permission.ORDERS_READ, Permission.ORDERS_WRITE})
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # Radiologists read the orders of the facilities they read for; the RIS writes them.
    Role.RADIOLOGIST: frozenset(
        {Permission.READ, Permission.WRITE, Permission.ORDERS_READ, Permission.READING}
    ),
    Role.FACILITY_USER: frozenset({Permission.READ, Permission.WRITE}) | _ORDERS,
    Role.FACILITY_ADMIN: frozenset({Permission.READ, Permission.WRITE, Permission.ADMIN}) | _ORDERS,
    Role.NETWORK_ADMIN: frozenset(Permission),
    Role.AUDITOR: frozenset({Permission.AUDIT}),
    Role.SERVICE: frozenset({Permission.READ, Permission.WRITE}) | _ORDERS,  # a RIS, a gateway
}

#: Roles bound to exactly one facility.
FACILITY_ROLES = frozenset({Role.FACILITY_USER, Role.FACILITY_ADMIN})


class IdentityError(ValueError):
    """An account definition that breaks the rules (a facility user without a facility…)."""


def check_account(role: Role, facility_id: int | None) -> None:
    if role in FACILITY_ROLES and facility_id is None:
        raise IdentityError(f"a {role} account needs a facility")
    if role in (Role.NETWORK_ADMIN, Role.AUDITOR, Role.RADIOLOGIST) and facility_id is not None:
        raise IdentityError(
            f"a {role} account belongs to the reading network, not to a facility"
            + (" (grant privileges instead)" if role is Role.RADIOLOGIST else "")
        )


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    facility_id: int | None = None
    display_name: str = ""
    disabled: bool = False
    totp_enabled: bool = False
    token_version: int = 0
    failed_logins: int = 0
    locked_until: datetime | None = None
    oidc_subject: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who is acting, and the facilities whose data they see (``None``: every facility)."""

    username: str
    role: Role | None
    facility_ids: frozenset[int] | None
    permissions: frozenset[Permission]
    user_id: int | None = None
    #: When the person last proved who they are (password/TOTP/IdP), for signing actions.
    auth_time: datetime | None = None
    #: How the request was authenticated: token, session, oidc, open (no users yet), dimse.
    method: str = "token"
    #: Studies opened by break-glass, readable beyond ``facility_ids`` until they expire.
    break_glass: frozenset[str] = field(default_factory=frozenset)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def sees(self, facility_id: int, study_uid: str = "") -> bool:
        """Whether data of ``facility_id`` (in study ``study_uid``) is visible."""
        return (
            self.facility_ids is None
            or facility_id in self.facility_ids
            or (bool(study_uid) and study_uid in self.break_glass)
        )

    @property
    def is_user(self) -> bool:
        return self.role is not Role.SERVICE


@dataclass(frozen=True)
class BreakGlassGrant:
    """One study opened beyond an account's scope, with the reason given."""

    id: int
    user_id: int
    username: str
    study_instance_uid: str
    reason: str
    granted_at: datetime
    expires_at: datetime


#: Roles of the reading network itself (not of a facility).
NETWORK_ROLES = frozenset({Role.RADIOLOGIST, Role.NETWORK_ADMIN, Role.AUDITOR})


def origin_of(who: Principal) -> InstanceOrigin:
    """Who makes what ``who`` stores: the reading network (its users, its network-wide
    service accounts such as AI engines) or a facility (its staff, RIS, gateway)."""
    if who.role in NETWORK_ROLES or (who.role is Role.SERVICE and who.facility_ids is None):
        return InstanceOrigin.READING
    return InstanceOrigin.ACQUISITION


#: The principal of a platform that has no user yet: it only listens on loopback
#: (the server refuses anything else), so whoever reaches it is on this machine.
OPEN_ACCESS = Principal("local", None, None, frozenset(Permission), method="open")


def visible_facilities(
    role: Role, facility_id: int | None, privileges: frozenset[int]
) -> frozenset[int] | None:
    """The facility scope of an account; ``None`` is the whole network."""
    if role is Role.NETWORK_ADMIN:
        return None
    if role in FACILITY_ROLES:
        return frozenset({facility_id}) if facility_id is not None else frozenset()
    if role is Role.RADIOLOGIST:
        return privileges
    if role is Role.SERVICE:
        return None if facility_id is None else frozenset({facility_id})
    return frozenset()  # auditors: no patient data


def principal_for(
    user: User,
    privileges: frozenset[int],
    permissions: frozenset[Permission] | None = None,
    *,
    method: str = "token",
    auth_time: datetime | None = None,
    break_glass: frozenset[str] = frozenset(),
) -> Principal:
    """The principal of ``user``; ``permissions`` narrows the role's (a token's scopes)."""
    allowed = ROLE_PERMISSIONS[user.role]
    return Principal(
        user.username,
        user.role,
        visible_facilities(user.role, user.facility_id, privileges),
        allowed if permissions is None else allowed & permissions,
        user.id,
        auth_time,
        method,
        break_glass,
    )


# -- sign-in policy ------------------------------------------------------------------


@dataclass(frozen=True)
class LockoutPolicy:
    """Lock an account for ``lock_for`` after ``max_failures`` failed sign-ins in a row."""

    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)

    def is_locked(self, user: User, now: datetime) -> bool:
        return user.locked_until is not None and user.locked_until > now

    def after_failure(self, failures: int, now: datetime) -> tuple[int, datetime | None]:
        """The new failure count and lock expiry after one more failed attempt."""
        failures += 1
        if failures >= self.max_failures:
            return 0, now + self.lock_for
        return failures, None


def parse_permissions(text: str | None) -> frozenset[Permission] | None:
    """``"dicomweb:read admin"`` (space or comma separated) → permissions; None/empty: all."""
    if not text or not text.strip():
        return None
    names = text.replace(",", " ").split()
    known = {p.value: p for p in Permission}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise IdentityError(
            f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return frozenset(known[n] for n in names)
