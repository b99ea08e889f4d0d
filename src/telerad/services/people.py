"""Administration use cases: facilities, accounts, licences, privileges. Each is audited.

Used by the CLI (``telerad facility``, ``telerad user``, ``telerad token``) and the
admin API alike. ``actor`` names who made the change (an OS user for the CLI).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import timedelta

from telerad.domain.audit import EventID
from telerad.domain.identity import Permission, Role, User
from telerad.domain.model import Facility, Node
from telerad.services.audit import AuditService
from telerad.services.auth import AuthService
from telerad.services.ports import Index

_AE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: no backslash, no controls
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_STATE = re.compile(r"^[A-Z0-9]{1,3}$")
_JURISDICTION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class AdminError(ValueError):
    """A change that cannot be made; the message says why."""


def check_ae_title(ae_title: str) -> str:
    value = ae_title.strip()
    if not _AE.match(value) or not value:
        raise AdminError(f"'{ae_title}' is not an AE title (1-16 characters, no backslash)")
    return value


def check_host(host: str) -> str:
    """An address, a network in CIDR notation, or a host name."""
    value = host.strip()
    if not value:
        return ""
    try:
        ipaddress.ip_network(value, strict=False)
        return value
    except ValueError:
        pass
    if re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$", value):
        return value.lower()
    raise AdminError(f"'{host}' is not an address, a network (CIDR) or a host name")


def check_fingerprint(value: str) -> str:
    clean = value.replace(":", "").strip().lower()
    if clean and not _FINGERPRINT.match(clean):
        raise AdminError("a certificate fingerprint is 64 hexadecimal digits (SHA-256)")
    return clean


def jurisdiction(text: str) -> str:
    value = text.strip().upper()
    if not _JURISDICTION.match(value):
        raise AdminError(f"'{text}' is not a jurisdiction (ISO 3166: US-CA, GB, DE-BY)")
    return value


class Administration:
    def __init__(self, index: Index, auth: AuthService, audit: AuditService) -> None:
        self.index = index
        self.auth = auth
        self.audit = audit

    def _log(self, actor: str, detail: str, facility: str = "") -> None:
        self.audit.record(
            EventID.SECURITY_ALERT, actor, actor_is_user=True, facility=facility, detail=detail
        )

    # -- facilities ---------------------------------------------------------------------
    def add_facility(
        self,
        name: str,
        actor: str,
        *,
        ae_title: str | None = None,
        host: str = "",
        country: str = "",
        state: str = "",
        region: str = "",
        cert_sha256: str = "",
    ) -> Facility:
        name = name.strip()
        if not name or len(name) > 128:
            raise AdminError("a facility name has 1 to 128 characters")
        details = {
            "host": check_host(host),
            "country": country.strip().upper(),
            "state": state.strip().upper(),
            "region": region.strip().lower(),
            "cert_sha256": check_fingerprint(cert_sha256),
        }
        if details["country"] and not _COUNTRY.match(details["country"]):
            raise AdminError("a country is two letters (ISO 3166-1: US, GB, DE)")
        if details["state"] and not _STATE.match(details["state"]):
            raise AdminError("a state is an ISO 3166-2 subdivision code (CA, NY, BY)")
        if details["region"] and not _REGION.match(details["region"]):
            raise AdminError("a data region is a short lower-case name (eu, us-east)")
        ae = check_ae_title(ae_title) if ae_title else None
        if ae is not None:
            taken = self.index.facility_by_ae(ae) or self.index.node_by_ae(ae)
            if taken is not None and getattr(taken, "name", None) != name:
                raise AdminError(f"AE title {ae} is already registered")
        existing = self.index.facility_by_name(name)
        if existing is not None:
            facility = self.index.update_facility(existing.id, ae_title=ae, **details)
            self._log(actor, f"facility updated: {name}", name)
        else:
            facility = self.index.add_facility(name, ae, **details)
            self._log(actor, f"facility added: {name}", name)
        return facility

    def facility(self, name: str) -> Facility:
        found = self.index.facility_by_name(name)
        if found is None:
            raise AdminError(f"no facility named {name}")
        return found

    def add_node(
        self,
        ae_title: str,
        host: str,
        port: int,
        actor: str,
        facility: str | None = None,
        cert_sha256: str = "",
    ) -> Node:
        ae = check_ae_title(ae_title)
        if not host.strip():
            raise AdminError("a node needs a host")
        if not 0 < port < 65536:
            raise AdminError("a port is between 1 and 65535")
        if self.index.facility_by_ae(ae) is not None:
            raise AdminError(f"AE title {ae} is already a facility's")
        facility_id = self.facility(facility).id if facility else None
        node = self.index.add_node(
            Node(
                ae, check_host(host), port, facility_id, cert_sha256=check_fingerprint(cert_sha256)
            )
        )
        self._log(actor, f"node registered: {ae} at {host}:{port}", facility or "")
        return node

    # -- accounts ---------------------------------------------------------------------------
    def add_user(
        self,
        username: str,
        role: Role,
        actor: str,
        *,
        facility: str | None = None,
        password: str | None = None,
        display_name: str = "",
        licences: Sequence[str] = (),
        privileges: Sequence[str] = (),
    ) -> User:
        facility_id = self.facility(facility).id if facility else None
        try:
            user = self.auth.create_user(username, role, facility_id, password, display_name)
        except ValueError as exc:
            raise AdminError(str(exc)) from exc
        self._log(actor, f"user added: {user.username} ({role.value})", facility or "")
        if licences:
            self.add_licences(user, licences, actor)
        if privileges:
            self.grant(user, privileges, actor)
        return user

    def user(self, username: str) -> User:
        found = self.auth.identity.user_by_name(username)
        if found is None:
            raise AdminError(f"no user named {username}")
        return found

    def add_licences(self, user: User, jurisdictions: Sequence[str], actor: str) -> None:
        if user.role is not Role.RADIOLOGIST:
            raise AdminError("licences are held by radiologists")
        values = [jurisdiction(j) for j in jurisdictions]
        self.auth.identity.add_licences(user.id, values)
        self._log(actor, f"licences of {user.username}: +{', '.join(values)}")

    def grant(self, user: User, facilities: Sequence[str], actor: str) -> None:
        """Privileges (credentialing) at facilities: the radiologist may read their studies."""
        if user.role is not Role.RADIOLOGIST:
            raise AdminError("privileges are granted to radiologists")
        found = [self.facility(name) for name in facilities]
        self.auth.identity.grant_privileges(user.id, [f.id for f in found])
        self.auth.forget(user.id)
        for f in found:
            self._log(actor, f"privilege granted to {user.username}", f.name)

    def revoke_privileges(self, user: User, facilities: Sequence[str], actor: str) -> None:
        found = [self.facility(name) for name in facilities]
        self.auth.identity.revoke_privileges(user.id, [f.id for f in found])
        self.auth.forget(user.id)
        for f in found:
            self._log(actor, f"privilege revoked from {user.username}", f.name)

    def set_password(self, user: User, password: str, actor: str) -> None:
        try:
            self.auth.set_password(user, password)
        except ValueError as exc:
            raise AdminError(str(exc)) from exc
        self._log(actor, f"password set for {user.username}")

    def enroll_totp(self, user: User, actor: str) -> str:
        uri = self.auth.enroll_totp(user)
        self._log(actor, f"second factor enrolled for {user.username}")
        return uri

    def link_identity(self, user: User, subject: str, actor: str) -> None:
        """Tie an account to a person at the identity provider (``issuer|sub``)."""
        issuer, bar, sub = subject.strip().partition("|")
        if not bar or not issuer or not sub or len(subject.strip()) > 255:
            raise AdminError("an OpenID subject is ISSUER|SUB (at most 255 characters)")
        subject = f"{issuer.rstrip('/')}|{sub}"
        taken = self.auth.identity.user_by_oidc_subject(subject)
        if taken is not None and taken.id != user.id:
            raise AdminError(f"{subject} is already linked to {taken.username}")
        self.auth.identity.update_user(user.id, oidc_subject=subject)
        self.auth.forget(user.id)
        self._log(actor, f"identity linked for {user.username}: {subject}")

    def disable(self, user: User, actor: str) -> None:
        self.auth.disable(user)
        self._log(actor, f"user disabled: {user.username}")

    def revoke_tokens(self, user: User, actor: str) -> None:
        self.auth.revoke(user)
        self._log(actor, f"tokens and sessions revoked for {user.username}")

    def create_token(
        self,
        user: User,
        actor: str,
        permissions: frozenset[Permission] | None = None,
        lifetime: timedelta | None = None,
    ) -> str:
        try:
            token = self.auth.issue_token(user, permissions, lifetime)
        except ValueError as exc:
            raise AdminError(str(exc)) from exc
        self._log(actor, f"bearer token issued for {user.username}")
        return token
