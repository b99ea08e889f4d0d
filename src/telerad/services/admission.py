"""Which facility a write belongs to: one rule for every way data comes in.

* DICOM (C-STORE, MPPS): the calling AE title is a facility's (its writes are the
  facility's) or a registered node's (bound to a facility, or a reading hub whose
  stores go to the default facility and who may query every facility) — and it
  must call from where it was registered (address, network or host name, TLS
  certificate pin). Until the platform has its first account, any AE is admitted
  for the default facility (it listens on loopback only then). A rejected
  association goes into the audit trail as a security alert.
* HL7 v2 (MLLP): MSH-4 names a registered facility that may send from the
  sender's address.
* STOW-RS: the facility the path names (one the caller sees), else the facility
  of the study the path names, else the caller's own: the default facility for a
  network-wide account, their one facility for a facility's account; an account
  serving several facilities must name one.
* `telerad import`: the facility named (registered on first use), else the default.

A name is never proof on its own; a refusal never says whether the facility
exists when the caller may not see it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from telerad.domain.audit import EventID, Outcome
from telerad.domain.identity import Principal
from telerad.domain.model import Facility
from telerad.services.audit import AuditService
from telerad.services.ports import Index

log = logging.getLogger(__name__)

#: Whether a peer calling from an address with a certificate matches its registration:
#: (registered host, certificate pin, address, certificate) → bool (adapters.peers).
PeerCheck = Callable[[str, str, str, str | None], bool]


@dataclass(frozen=True)
class Peer:
    """An admitted DICOM peer: where its C-STOREs go and what it may query and retrieve."""

    ae_title: str
    store_facility_id: int
    #: Facility ids it may query and retrieve; None: every facility (a reading hub).
    scope: frozenset[int] | None
    #: False for an unknown AE title admitted only because the platform is open.
    registered: bool = True


class NoSuchFacility(LookupError):
    """The facility named does not exist, or is not the caller's to see."""


class FacilityNeeded(ValueError):
    """The caller writes for several facilities and named none."""


class Admission:
    def __init__(
        self,
        index: Index,
        default_facility: Callable[[], Facility],
        has_users: Callable[[], bool],
        calls_as_registered: PeerCheck,
        audit: AuditService | None = None,
    ) -> None:
        self.index = index
        self.default_facility = default_facility
        self.has_users = has_users
        self.calls_as_registered = calls_as_registered
        #: Where refused associations are reported (a security alert each).
        self.audit = audit

    def association(self, calling_ae: str, address: str, cert: str | None) -> Peer | None:
        """The peer an association is (:meth:`peer`), or None to reject it, reported as
        a security alert. When the rule cannot be checked (the index is unreachable) the
        association is refused rather than guessed at."""
        try:
            peer = self.peer(calling_ae, address, cert)
        except Exception:
            log.exception("peer check failed; association rejected")
            peer = None
        if peer is None and self.audit is not None:
            self.audit.record(
                EventID.SECURITY_ALERT,
                calling_ae.strip()[:64] or "?",
                source_address=address,
                outcome=Outcome.MINOR_FAILURE,
                detail="association rejected: calling AE title not registered for this address",
            )
        return peer

    def peer(self, calling_ae: str, address: str, cert: str | None) -> Peer | None:
        """The DICOM peer an association is, or None to reject it."""
        ae = calling_ae.strip()
        facility = self.index.facility_by_ae(ae)
        if facility is not None:
            if not self.calls_as_registered(facility.host, facility.cert_sha256, address, cert):
                return None
            return Peer(ae, facility.id, frozenset({facility.id}))
        node = self.index.node_by_ae(ae)
        if node is not None:
            if not self.calls_as_registered(node.host, node.cert_sha256, address, cert):
                return None
            if node.facility_id is not None:
                return Peer(ae, node.facility_id, frozenset({node.facility_id}))
            return Peer(ae, self.default_facility().id, None)
        if self.has_users():
            return None
        default = self.default_facility().id
        return Peer(ae, default, frozenset({default}), registered=False)

    def sender(self, facility_name: str, address: str, cert: str | None) -> Facility | None:
        """The facility an HL7 message is for (MSH-4), when this sender may send for it."""
        facility = self.index.facility_by_name(facility_name) if facility_name else None
        if facility is None:
            return None
        if not self.calls_as_registered(facility.host, facility.cert_sha256, address, cert):
            return None
        return facility

    def account(self, who: Principal, facility_name: str | None, study_uid: str | None) -> Facility:
        """Where an account's STOW-RS request stores (:class:`NoSuchFacility`,
        :class:`FacilityNeeded` when it cannot be told)."""
        if facility_name is not None:
            facility = self.index.facility_by_name(facility_name)
            if facility is None or not who.sees(facility.id):
                raise NoSuchFacility(f"no facility named {facility_name}")
            return facility
        if study_uid is not None:
            owner = self.index.study_facility(study_uid)
            if owner is not None and who.sees(owner, study_uid):
                found = self.index.facility_by_id(owner)
                assert found is not None
                return found
        if who.facility_ids is None:
            return self.default_facility()
        if len(who.facility_ids) == 1:
            found = self.index.facility_by_id(next(iter(who.facility_ids)))
            assert found is not None
            return found
        raise FacilityNeeded(
            "this account stores for several facilities: "
            "POST to /dicom-web/facilities/{name}/studies"
        )

    def named(self, name: str | None) -> Facility:
        """The facility an import is for: the one named (registered on first use) or the
        default."""
        if not name:
            return self.default_facility()
        found = self.index.facility_by_name(name)
        return found if found is not None else self.index.add_facility(name)
